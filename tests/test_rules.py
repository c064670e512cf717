"""Properties of the points rules: integers only, scope, budgets, cap, precedence."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from points_bridge.exc import BadInput, BadRule
from points_bridge.rules import (
    BASE,
    BIRTHDAY_BONUS,
    BIRTHDAY_MULTIPLIER,
    CAMPAIGN_BONUS,
    CAMPAIGN_MULTIPLIER,
    DAILY_CAP,
    AppliedRule,
    Award,
    Campaign,
    ClaimContext,
    PointsPolicy,
    award,
    multiplier_bp,
)

T0 = datetime(2024, 5, 1, tzinfo=UTC)
REGIONS = ("CN-37", "CN-11", "CN-31")
TIERS = ("silver", "gold", "diamond")
SKUS = ("SKU-A", "SKU-B", "SKU-C")
CAMPAIGN_IDS = ("c1", "c2", "c3", "c4", "c5")


def minutes(n: int) -> datetime:
    return T0 + timedelta(minutes=n)


def scope(values: tuple[str, ...]) -> st.SearchStrategy[frozenset[str] | None]:
    return st.none() | st.frozensets(st.sampled_from(values), min_size=1)


@st.composite
def campaigns_st(draw: st.DrawFn, campaign_id: str) -> Campaign:
    start = draw(st.integers(0, 100))
    bp = draw(
        st.sampled_from([10_000, 12_500, 15_000, 20_000, 30_000]) | st.integers(10_000, 40_000)
    )
    bonus = draw(st.integers(0, 300))
    if bp == 10_000 and bonus == 0:
        bonus = 1
    return Campaign(
        campaign_id=campaign_id,
        starts_at=minutes(start),
        ends_at=minutes(start + draw(st.integers(1, 100))),
        multiplier_bp=bp,
        bonus=bonus,
        regions=draw(scope(REGIONS)),
        tiers=draw(scope(TIERS)),
        skus=draw(scope(SKUS)),
        budget=draw(st.none() | st.integers(0, 2_000)),
    )


@st.composite
def campaign_lists(draw: st.DrawFn) -> list[Campaign]:
    ids = draw(st.lists(st.sampled_from(CAMPAIGN_IDS), unique=True, max_size=len(CAMPAIGN_IDS)))
    return [draw(campaigns_st(campaign_id)) for campaign_id in ids]


@st.composite
def contexts(draw: st.DrawFn, with_spent: bool = True) -> ClaimContext:
    spent = (
        draw(st.dictionaries(st.sampled_from(CAMPAIGN_IDS), st.integers(0, 2_500)))
        if with_spent
        else {}
    )
    return ClaimContext(
        sku=draw(st.sampled_from(SKUS)),
        base_points=draw(st.integers(0, 2_000)),
        at=minutes(draw(st.integers(0, 220))),
        region=draw(st.none() | st.sampled_from(REGIONS)),
        tier=draw(st.none() | st.sampled_from(TIERS)),
        is_birthday=draw(st.booleans()),
        earned_today=draw(st.integers(0, 5_000)),
        campaign_spent=spent,
    )


policies = st.builds(
    PointsPolicy,
    birthday_multiplier_bp=st.integers(10_000, 30_000),
    birthday_bonus=st.integers(0, 200),
    daily_cap=st.none() | st.integers(0, 6_000),
)


def by_id(campaigns: list[Campaign]) -> dict[str, Campaign]:
    return {c.campaign_id: c for c in campaigns}


# ------------------------------------------------------------------ properties


@given(contexts(), campaign_lists(), policies)
def test_award_is_an_int_within_the_cap_room_and_adds_up(ctx, campaigns, policy):
    result = award(ctx, campaigns, policy)
    assert type(result.points) is int
    assert result.points >= 0
    if policy.daily_cap is not None:
        assert result.points <= max(0, policy.daily_cap - ctx.earned_today)
    assert sum(rule.delta for rule in result.applied) == result.points
    for rule in result.applied:
        assert type(rule.delta) is int and rule.delta != 0
        assert (rule.delta < 0) == (rule.kind == DAILY_CAP)
    assert result.capped == any(rule.kind == DAILY_CAP for rule in result.applied)
    if result.capped:
        assert result.applied[-1].kind == DAILY_CAP
    assert all(type(v) is int and v > 0 for v in result.campaign_spend.values())


@pytest.mark.slow
@given(contexts(), campaign_lists(), policies)
def test_only_active_matching_campaigns_count(ctx, campaigns, policy):
    result = award(ctx, campaigns, policy)
    named = {r.name for r in result.applied if r.kind in (CAMPAIGN_MULTIPLIER, CAMPAIGN_BONUS)}
    campaigns_by_id = by_id(campaigns)
    for campaign_id in named | set(result.campaign_spend):
        campaign = campaigns_by_id[campaign_id]
        assert campaign.starts_at <= ctx.at < campaign.ends_at
        assert campaign.matches(ctx)
    relevant = [c for c in campaigns if c.applies_to(ctx)]
    assert award(ctx, relevant, policy) == result


@pytest.mark.slow
@given(
    contexts(), campaign_lists(), policies, campaigns_st("extra"), st.integers(0, 50), st.booleans()
)
def test_a_campaign_outside_its_window_never_applies(ctx, campaigns, policy, extra, gap, after):
    if after:  # ends_at itself is outside: the window is half-open
        at = extra.ends_at + timedelta(minutes=gap)
    else:
        at = extra.starts_at - timedelta(minutes=gap, microseconds=1)
    ctx = replace(ctx, at=at)
    assert award(ctx, [*campaigns, extra], policy) == award(ctx, campaigns, policy)


UNIVERSE = {"regions": REGIONS, "tiers": TIERS, "skus": SKUS}


@pytest.mark.slow
@given(
    contexts(), campaign_lists(), policies, campaigns_st("extra"), st.sampled_from(list(UNIVERSE))
)
def test_a_campaign_out_of_scope_never_applies(ctx, campaigns, policy, extra, dimension):
    value = {"regions": ctx.region, "tiers": ctx.tier, "skus": ctx.sku}[dimension]
    others = frozenset(v for v in UNIVERSE[dimension] if v != value)
    extra = replace(extra, **{dimension: others})
    assert award(ctx, [*campaigns, extra], policy) == award(ctx, campaigns, policy)


@pytest.mark.slow
@given(contexts(), campaign_lists(), policies)
def test_no_campaign_is_charged_past_its_remaining_budget(ctx, campaigns, policy):
    result = award(ctx, campaigns, policy)
    for campaign_id, charged in result.campaign_spend.items():
        campaign = by_id(campaigns)[campaign_id]
        if campaign.budget is not None:
            assert charged <= max(0, campaign.budget - ctx.campaign_spent.get(campaign_id, 0))
        own = sum(r.delta for r in result.applied if r.name == campaign_id)
        assert charged <= own
        if not result.capped:
            assert charged == own


@pytest.mark.slow
@given(st.lists(contexts(with_spent=False), min_size=1, max_size=25), campaign_lists(), policies)
def test_budget_never_overspent_over_a_sequence_of_claims(claims, campaigns, policy):
    spent: dict[str, int] = {}
    for claim in claims:
        result = award(replace(claim, campaign_spent=dict(spent)), campaigns, policy)
        for campaign_id, charged in result.campaign_spend.items():
            spent[campaign_id] = spent.get(campaign_id, 0) + charged
    for campaign in campaigns:
        if campaign.budget is not None:
            assert spent.get(campaign.campaign_id, 0) <= campaign.budget


@pytest.mark.slow
@given(contexts(), campaign_lists(), policies, campaigns_st("new"))
def test_adding_a_campaign_never_lowers_the_award(ctx, campaigns, policy, new):
    assert award(ctx, [*campaigns, new], policy).points >= award(ctx, campaigns, policy).points


@pytest.mark.slow
@given(contexts(), campaign_lists(), policies)
def test_a_birthday_never_lowers_the_award(ctx, campaigns, policy):
    on = award(replace(ctx, is_birthday=True), campaigns, policy).points
    off = award(replace(ctx, is_birthday=False), campaigns, policy).points
    assert on >= off


@given(contexts(), campaign_lists(), policies)
def test_at_most_one_multiplier_applies(ctx, campaigns, policy):
    kinds = [r.kind for r in award(ctx, campaigns, policy).applied]
    assert kinds.count(CAMPAIGN_MULTIPLIER) <= 1
    order = [BASE, CAMPAIGN_MULTIPLIER, BIRTHDAY_MULTIPLIER, BIRTHDAY_BONUS, CAMPAIGN_BONUS]
    ranks = [[*order, DAILY_CAP].index(kind) for kind in kinds]
    assert ranks == sorted(ranks)


@given(contexts(), campaign_lists())
def test_without_cap_or_birthday_the_figure_is_base_plus_campaign_deltas(ctx, campaigns):
    result = award(replace(ctx, is_birthday=False), campaigns)
    assert result.points == ctx.base_points + sum(result.campaign_spend.values())


# ------------------------------------------------------- precedence by hand


def camp(campaign_id: str, bp: int = 10_000, bonus: int = 0, **kw: object) -> Campaign:
    return Campaign(campaign_id, minutes(0), minutes(60), multiplier_bp=bp, bonus=bonus, **kw)


def ctx_at(base: int = 100, **kw: object) -> ClaimContext:
    fields = {"sku": "SKU-A", "base_points": base, "at": minutes(30), **kw}
    return ClaimContext(**fields)


def r(kind: str, name: str, delta: int, limited: bool = False) -> AppliedRule:
    return AppliedRule(kind, name, delta, limited)


HAND = [
    pytest.param(
        ctx_at(),
        [camp("double", 20_000), camp("half-more", 15_000)],
        PointsPolicy(),
        Award(
            200, (r(BASE, BASE, 100), r(CAMPAIGN_MULTIPLIER, "double", 100)), False, {"double": 100}
        ),
        id="best-multiplier-wins-not-product",
    ),
    pytest.param(
        ctx_at(is_birthday=True),
        [camp("double", 20_000)],
        PointsPolicy(birthday_multiplier_bp=20_000, birthday_bonus=10),
        Award(
            310,
            (
                r(BASE, BASE, 100),
                r(CAMPAIGN_MULTIPLIER, "double", 100),
                r(BIRTHDAY_MULTIPLIER, BIRTHDAY_MULTIPLIER, 100),
                r(BIRTHDAY_BONUS, BIRTHDAY_BONUS, 10),
            ),
            False,
            {"double": 100},
        ),
        id="birthday-adds-on-base-never-compounds",
    ),
    pytest.param(
        ctx_at(),
        [camp("b", bonus=30), camp("a", bonus=20)],
        PointsPolicy(),
        Award(
            150,
            (r(BASE, BASE, 100), r(CAMPAIGN_BONUS, "a", 20), r(CAMPAIGN_BONUS, "b", 30)),
            False,
            {"a": 20, "b": 30},
        ),
        id="all-bonuses-add-in-id-order",
    ),
    pytest.param(
        ctx_at(campaign_spent={"triple": 170}),
        [camp("triple", 30_000, budget=200), camp("half-more", 15_000)],
        PointsPolicy(),
        Award(
            150,
            (r(BASE, BASE, 100), r(CAMPAIGN_MULTIPLIER, "half-more", 50)),
            False,
            {"half-more": 50},
        ),
        id="nearly-spent-budget-loses-to-a-funded-rate",
    ),
    pytest.param(
        ctx_at(campaign_spent={"triple": 150}),
        [camp("triple", 30_000, budget=200), camp("half-more", 15_000)],
        PointsPolicy(),
        Award(
            150,
            (r(BASE, BASE, 100), r(CAMPAIGN_MULTIPLIER, "triple", 50, True)),
            False,
            {"triple": 50},
        ),
        id="equal-points-tie-goes-to-higher-rate-limited-by-budget",
    ),
    pytest.param(
        ctx_at(),
        [camp("x", 20_000, bonus=50, budget=120)],
        PointsPolicy(),
        Award(
            220,
            (
                r(BASE, BASE, 100),
                r(CAMPAIGN_MULTIPLIER, "x", 100),
                r(CAMPAIGN_BONUS, "x", 20, True),
            ),
            False,
            {"x": 120},
        ),
        id="one-budget-pays-multiplier-then-bonus",
    ),
    pytest.param(
        ctx_at(base=7, is_birthday=True),
        [camp("half-more", 15_000)],
        PointsPolicy(birthday_multiplier_bp=12_500),
        Award(
            11,
            (
                r(BASE, BASE, 7),
                r(CAMPAIGN_MULTIPLIER, "half-more", 3),
                r(BIRTHDAY_MULTIPLIER, BIRTHDAY_MULTIPLIER, 1),
            ),
            False,
            {"half-more": 3},
        ),
        id="each-extra-floored-on-its-own",
    ),
    pytest.param(
        ctx_at(earned_today=30),
        [camp("double", 20_000, budget=1_000), camp("gift", bonus=50)],
        PointsPolicy(daily_cap=180),
        Award(
            150,
            (
                r(BASE, BASE, 100),
                r(CAMPAIGN_MULTIPLIER, "double", 100),
                r(CAMPAIGN_BONUS, "gift", 50),
                r(DAILY_CAP, DAILY_CAP, -100),
            ),
            True,
            {"double": 50},
        ),
        id="cap-last-takes-back-from-the-last-steps-first",
    ),
    pytest.param(
        ctx_at(earned_today=500),
        [camp("double", 20_000)],
        PointsPolicy(daily_cap=300),
        Award(
            0,
            (
                r(BASE, BASE, 100),
                r(CAMPAIGN_MULTIPLIER, "double", 100),
                r(DAILY_CAP, DAILY_CAP, -200),
            ),
            True,
            {},
        ),
        id="cap-already-passed-gives-zero-never-negative",
    ),
    pytest.param(
        ctx_at(at=minutes(0)),
        [camp("double", 20_000)],
        PointsPolicy(),
        Award(
            200, (r(BASE, BASE, 100), r(CAMPAIGN_MULTIPLIER, "double", 100)), False, {"double": 100}
        ),
        id="window-start-is-inside",
    ),
    pytest.param(
        ctx_at(at=minutes(60)),
        [camp("double", 20_000)],
        PointsPolicy(),
        Award(100, (r(BASE, BASE, 100),), False, {}),
        id="window-end-is-outside",
    ),
    pytest.param(
        ctx_at(region=None, tier="gold"),
        [
            camp("shandong", 20_000, regions=frozenset({"CN-37"})),
            camp("gold", bonus=5, tiers=frozenset({"gold"})),
        ],
        PointsPolicy(),
        Award(105, (r(BASE, BASE, 100), r(CAMPAIGN_BONUS, "gold", 5)), False, {"gold": 5}),
        id="unknown-region-matches-no-regional-campaign",
    ),
    pytest.param(
        ctx_at(base=0),
        [camp("launch", 30_000, bonus=50, skus=frozenset({"SKU-A"}))],
        PointsPolicy(),
        Award(50, (r(CAMPAIGN_BONUS, "launch", 50),), False, {"launch": 50}),
        id="zero-base-still-gets-bonus",
    ),
]


@pytest.mark.parametrize(("ctx", "campaigns", "policy", "expected"), HAND)
def test_precedence_examples_computed_by_hand(ctx, campaigns, policy, expected):
    assert award(ctx, campaigns, policy) == expected


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("value", "bp"),
    [("1.5", 15_000), (2, 20_000), (Fraction(5, 4), 12_500), (Decimal("1.0001"), 10_001)],
)
def test_multiplier_bp_is_exact(value, bp):
    assert multiplier_bp(value) == bp


@pytest.mark.parametrize("value", [1.5, Fraction(4, 3), "1.00005", "x", True, None])
def test_multiplier_bp_refuses_what_it_cannot_represent(value):
    with pytest.raises(BadRule):
        multiplier_bp(value)


NAIVE = datetime(2024, 5, 1)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"starts_at": NAIVE, "ends_at": NAIVE + timedelta(days=1)},
        {"ends_at": minutes(0)},
        {"multiplier_bp": 9_999},
        {"multiplier_bp": 150_000},
        {"multiplier_bp": 1.5},
        {"bonus": -1},
        {"bonus": 2.5},
        {"budget": -5},
        {"regions": frozenset()},
        {"skus": {"SKU-A"}},
        {"multiplier_bp": 10_000, "bonus": 0},
        {"campaign_id": ""},
    ],
)
def test_campaign_refuses_rules_it_cannot_apply(kwargs):
    fields = {
        "campaign_id": "c",
        "starts_at": minutes(0),
        "ends_at": minutes(60),
        "multiplier_bp": 20_000,
        **kwargs,
    }
    with pytest.raises(BadRule) as info:
        Campaign(**fields)
    assert (info.value.status, info.value.code) == (422, "invalid")
    assert str(info.value).startswith("rule ") and info.value.reason


def test_duplicate_campaign_ids_are_refused():
    with pytest.raises(BadRule, match="twice"):
        award(ctx_at(), [camp("a", 20_000), camp("a", bonus=5)])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base_points": 1.5},
        {"base_points": -1},
        {"earned_today": -1},
        {"at": NAIVE},
        {"campaign_spent": {"a": 1.0}},
    ],
)
def test_claim_refuses_fractional_or_naive_facts(kwargs):
    with pytest.raises(BadInput) as info:
        ctx_at(**kwargs)
    assert repr(info.value.value) in str(info.value)


@pytest.mark.parametrize(
    "kwargs", [{"birthday_multiplier_bp": 5_000}, {"daily_cap": -1}, {"birthday_bonus": 0.5}]
)
def test_policy_refuses_bad_values(kwargs):
    with pytest.raises(BadRule):
        PointsPolicy(**kwargs)
