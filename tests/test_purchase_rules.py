"""What a purchase earns (points_bridge/purchase_rules.py), against a plain model of the rules.

The model below is written from schemas/points-rules.md ("What a purchase earns") as a
list of (where, kind, campaign, points) steps in precedence order, then cut from the end
by the daily cap; hypothesis checks the module against it for every rule combination.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from points_bridge.exc import BadInput, BadRule
from points_bridge.purchase_rules import (
    EarnRates,
    Line,
    PurchaseContext,
    allocate,
    discount_of,
    purchase_award,
)
from points_bridge.rules import Campaign, PointsPolicy

AT = datetime(2026, 6, 1, 12, tzinfo=UTC)
SKUS = ("A", "B", "C")


def model(lines, rates, tier_bp, region, tier, birthday, earned_today, spent, campaigns,  # noqa: C901
          policy, at=AT):
    """Points per line, bonus points, total and campaign charges: the rules, plainly."""
    spent = dict(spent)
    steps = []  # (line index or None, campaign id or None, points)
    live = sorted((c for c in campaigns if c.starts_at <= at < c.ends_at),
                  key=lambda c: c.campaign_id)

    def fits(c, sku):
        return ((c.regions is None or region in c.regions)
                and (c.tiers is None or tier in c.tiers)
                and (c.skus is None or sku in c.skus))

    def room(c):
        return None if c.budget is None else max(0, c.budget - spent.get(c.campaign_id, 0))

    for i, line in enumerate(lines):
        rate = rates.by_sku.get(line.sku)
        if rate is None:
            category = rates.category_of.get(line.sku)
            rate = rates.by_category.get(category, rates.default_bp)
        base = line.amount * rate // 1_000_000
        steps.append((i, None, base))
        steps.append((i, None, base * (tier_bp - 10_000) // 10_000))
        best = None
        for c in live:
            if not fits(c, line.sku):
                continue
            want = base * (c.multiplier_bp - 10_000) // 10_000
            got = want if room(c) is None else min(want, room(c))
            if got > 0 and (best is None or (got, c.multiplier_bp) > (best[0], best[1])):
                best = (got, c.multiplier_bp, c)
        if best is not None:
            steps.append((i, best[2].campaign_id, best[0]))
            spent[best[2].campaign_id] = spent.get(best[2].campaign_id, 0) + best[0]
        if birthday:
            steps.append((i, None, base * (policy.birthday_multiplier_bp - 10_000) // 10_000))
    if birthday:
        steps.append((None, None, policy.birthday_bonus))
    for c in live:
        if c.bonus and any(fits(c, line.sku) for line in lines):
            got = c.bonus if room(c) is None else min(c.bonus, room(c))
            steps.append((None, c.campaign_id, got))
            spent[c.campaign_id] = spent.get(c.campaign_id, 0) + got
    total = sum(p for _, _, p in steps)
    cap_room = None if policy.daily_cap is None else max(0, policy.daily_cap - earned_today)
    cut = 0 if cap_room is None else max(0, total - cap_room)
    kept = []
    for where, campaign, points in reversed(steps):
        taken = min(points, cut)
        cut -= taken
        kept.append((where, campaign, points - taken))
    per_line = [sum(p for w, _, p in kept if w == i) for i in range(len(lines))]
    bonus = sum(p for w, _, p in kept if w is None)
    charges = {}
    for _, campaign, points in kept:
        if campaign is not None and points:
            charges[campaign] = charges.get(campaign, 0) + points
    return per_line, bonus, sum(per_line) + bonus, charges


lines_st = st.lists(
    st.builds(Line, st.sampled_from(SKUS), st.integers(1, 5), st.integers(0, 2_000_000)),
    min_size=1, max_size=6)
rates_st = st.builds(
    EarnRates,
    st.sampled_from([0, 5_000, 10_000, 15_000, 30_000]),
    st.dictionaries(st.sampled_from(SKUS), st.sampled_from([0, 10_000, 20_000]), max_size=2),
    st.dictionaries(st.sampled_from(["lip", "eye"]), st.integers(0, 50_000), max_size=2),
    st.dictionaries(st.sampled_from(SKUS), st.sampled_from(["lip", "eye"]), max_size=3),
)


@st.composite
def campaigns_st(draw):
    found = []
    for n in range(draw(st.integers(0, 4))):
        multiplier = draw(st.sampled_from([10_000, 12_500, 15_000, 20_000, 30_000]))
        bonus = draw(st.sampled_from([0, 0, 10, 50]))
        if multiplier == 10_000 and bonus == 0:
            bonus = 5
        start = AT - timedelta(days=draw(st.sampled_from([1, -1])))
        found.append(Campaign(
            f"c{n}", start, start + timedelta(days=3), multiplier, bonus,
            regions=draw(st.sampled_from([None, frozenset({"SD"}), frozenset({"BJ"})])),
            tiers=draw(st.sampled_from([None, frozenset({"gold"})])),
            skus=draw(st.sampled_from([None, frozenset({"A"}), frozenset({"B", "C"})])),
            budget=draw(st.sampled_from([None, 0, 30, 500, 10_000])),
        ))
    return found


@settings(max_examples=400, deadline=None)
@given(
    lines=lines_st, rates=rates_st, campaigns=campaigns_st(),
    tier_bp=st.sampled_from([10_000, 12_000, 15_000]),
    region=st.sampled_from([None, "SD", "BJ"]), tier=st.sampled_from(["silver", "gold"]),
    birthday=st.booleans(), earned_today=st.integers(0, 3_000),
    spent=st.dictionaries(st.sampled_from(["c0", "c1", "c2"]), st.integers(0, 600)),
    policy=st.builds(PointsPolicy, st.sampled_from([10_000, 20_000]),
                     st.sampled_from([0, 100]),
                     st.sampled_from([None, 0, 500, 5_000])),
)
def test_a_purchase_earns_what_the_model_of_the_rules_says(
    lines, rates, campaigns, tier_bp, region, tier, birthday, earned_today, spent, policy
):
    context = PurchaseContext(tuple(lines), AT, region, tier, tier_bp, birthday, earned_today,
                              spent)
    got = purchase_award(context, rates, campaigns, policy)
    per_line, bonus, total, charges = model(lines, rates, tier_bp, region, tier, birthday,
                                            earned_today, spent, campaigns, policy)
    assert [line.points for line in got.lines] == per_line
    assert got.bonus_points == bonus
    assert got.points == total == sum(r.delta for r in got.applied)
    assert dict(got.campaign_spend) == charges
    assert got.capped == (policy.daily_cap is not None and total < sum(
        r.delta for r in got.applied if r.delta > 0))
    for campaign in campaigns:  # never past a budget
        if campaign.budget is not None:
            before = spent.get(campaign.campaign_id, 0)
            assert got.campaign_spend.get(campaign.campaign_id, 0) <= max(
                0, campaign.budget - before)


def test_worked_examples():
    line = Line("A", 1, 10_000)  # 100 yuan
    rates = EarnRates(10_000)
    double = Campaign("double", AT - timedelta(days=1), AT + timedelta(days=1), 20_000)
    gift = Campaign("gift", AT - timedelta(days=1), AT + timedelta(days=1), bonus=50)
    plain = purchase_award(PurchaseContext((line,), AT), rates, [])
    assert plain.points == 100  # "consume N yuan, get N points"
    both = purchase_award(PurchaseContext((line, line), AT, tier_earn_bp=15_000), rates,
                          [double, gift])
    assert [ln.points for ln in both.lines] == [250, 250] and both.bonus_points == 50
    assert both.points == 550  # bonus once per purchase, not per line
    birthday = purchase_award(PurchaseContext((line,), AT, is_birthday=True), rates, [double],
                              PointsPolicy(20_000, 10))
    assert birthday.points == 100 + 100 + 100 + 10  # multipliers do not compound
    capped = purchase_award(PurchaseContext((line, line), AT, earned_today=20), rates, [gift],
                            PointsPolicy(daily_cap=150))
    assert capped.points == 130 and [ln.points for ln in capped.lines] == [100, 30]
    assert capped.bonus_points == 0 and dict(capped.campaign_spend) == {}
    by_category = EarnRates(10_000, {"A": 30_000}, {"lip": 5_000}, {"A": "lip", "B": "lip"})
    assert by_category.rate_for("A") == 30_000 and by_category.rate_for("B") == 5_000
    assert by_category.rate_for("C") == 10_000


@given(st.integers(0, 10**10), st.lists(st.integers(0, 10**9), min_size=1, max_size=20))
def test_allocation_is_exact_and_proportional(total, weights):
    shares = allocate(total, weights)
    assert sum(shares) == total and len(shares) == len(weights)
    whole = sum(weights)
    if whole:
        for share, weight in zip(shares, weights, strict=True):
            assert abs(share * whole - total * weight) < whole  # within one unit


def test_discount_is_floored_basis_points():
    assert discount_of(15_800, 500) == 790
    assert discount_of(999, 1250) == 124


@pytest.mark.parametrize("bad", [
    lambda: Line("", 1, 100), lambda: Line("A", 0, 100), lambda: Line("A", 1, -1),
    lambda: Line("A", 1, 10**10 + 1), lambda: Line("A", True, 1),
    lambda: PurchaseContext((), AT),
    lambda: PurchaseContext((Line("A", 1, 10**10), Line("B", 1, 1)), AT),
    lambda: PurchaseContext((Line("A", 1, 1),), AT.replace(tzinfo=None)),
])
def test_bad_input_is_refused(bad):
    with pytest.raises(BadInput):
        bad()


def test_a_rate_out_of_bounds_is_refused():
    with pytest.raises(BadRule):
        EarnRates(1_000_001)
    with pytest.raises(BadRule):
        EarnRates(10_000, {"A": -1})
