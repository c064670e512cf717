"""Properties of tiers: monotone in earned points, pinned floor, points to the next tier."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import accumulate

import pytest
from hypothesis import given
from hypothesis import strategies as st

from points_bridge.exc import BadInput, BadLadder, UnknownTier
from points_bridge.tiers import Tier, TierLadder, TierStatus, tier_for

CARDS = TierLadder((Tier("silver", 0), Tier("gold", 1_000), Tier("diamond", 5_000)))


@st.composite
def ladders(draw: st.DrawFn) -> TierLadder:
    steps = draw(st.lists(st.integers(1, 2_000), max_size=5))
    names = draw(
        st.lists(
            st.text("abcdefgh", min_size=1, max_size=6),
            min_size=len(steps) + 1,
            max_size=len(steps) + 1,
            unique=True,
        )
    )
    thresholds = [0, *accumulate(steps)]
    return TierLadder(tuple(Tier(n, t) for n, t in zip(names, thresholds, strict=True)))


@st.composite
def ladder_and_pin(draw: st.DrawFn) -> tuple[TierLadder, str | None]:
    ladder = draw(ladders())
    return ladder, draw(st.none() | st.sampled_from(ladder.names))


earned_points = st.integers(0, 12_000)


@given(ladder_and_pin(), earned_points, earned_points)
def test_tier_is_monotone_in_earned_points(ladder_pin, a, b):
    ladder, pinned = ladder_pin
    low, high = sorted((a, b))
    assert ladder.index(tier_for(low, ladder, pinned).name) <= ladder.index(
        tier_for(high, ladder, pinned).name
    )


@given(ladder_and_pin(), earned_points)
def test_pinned_tier_is_a_floor_not_a_ceiling(ladder_pin, earned):
    ladder, pinned = ladder_pin
    status = tier_for(earned, ladder, pinned)
    unpinned = tier_for(earned, ladder)
    floor = -1 if pinned is None else ladder.index(pinned)
    assert ladder.index(status.name) == max(floor, ladder.index(unpinned.name))
    assert status.earned_name == unpinned.name
    assert status.pinned == (floor > ladder.index(unpinned.name))


@given(ladder_and_pin(), earned_points)
def test_points_to_next_reach_exactly_the_next_tier(ladder_pin, earned):
    ladder, pinned = ladder_pin
    status = tier_for(earned, ladder, pinned)
    current = ladder.index(status.name)
    if status.next_name is None:
        assert status.points_to_next is None
        assert current == len(ladder.tiers) - 1
        return
    assert ladder.index(status.next_name) == current + 1
    assert status.points_to_next == ladder.tiers[current + 1].threshold - earned > 0
    assert tier_for(earned + status.points_to_next, ladder, pinned).name == status.next_name
    assert tier_for(earned + status.points_to_next - 1, ladder, pinned).name == status.name


@given(ladders(), earned_points)
def test_unpinned_tier_is_the_highest_threshold_reached(ladder, earned):
    status = tier_for(earned, ladder)
    reached = [t for t in ladder.tiers if t.threshold <= earned]
    assert status.name == reached[-1].name
    assert not status.pinned


@pytest.mark.parametrize(
    ("earned", "pinned", "expected"),
    [
        (0, None, TierStatus("silver", "gold", 1_000, "silver", False)),
        (999, None, TierStatus("silver", "gold", 1, "silver", False)),
        (1_000, None, TierStatus("gold", "diamond", 4_000, "gold", False)),
        (5_000, None, TierStatus("diamond", None, None, "diamond", False)),
        (0, "gold", TierStatus("gold", "diamond", 5_000, "silver", True)),
        (6_000, "gold", TierStatus("diamond", None, None, "diamond", False)),
        (1_200, "silver", TierStatus("gold", "diamond", 3_800, "gold", False)),
    ],
)
def test_silver_gold_diamond_by_hand(earned, pinned, expected):
    assert tier_for(earned, CARDS, pinned) == expected


@pytest.mark.parametrize(
    ("tiers", "kwargs"),
    [
        ((), {}),
        ((Tier("silver", 10),), {}),
        ((Tier("silver", 0), Tier("gold", 0)), {}),
        ((Tier("silver", 0), Tier("gold", 500), Tier("diamond", 400)), {}),
        ((Tier("silver", 0), Tier("silver", 5)), {}),
        ((Tier("", 0),), {}),
        ((Tier("silver", 0), Tier("gold", 1.5)), {}),
        ((Tier("silver", 0),), {"basis": "monthly"}),
        ((Tier("silver", 0),), {"basis": "trailing"}),
        ((Tier("silver", 0),), {"basis": "trailing", "window_days": 0}),
        ((Tier("silver", 0),), {"basis": "lifetime", "window_days": 365}),
        ([Tier("silver", 0)], {}),
    ],
)
def test_ladder_refuses_gaps_overlaps_and_bad_windows(tiers, kwargs):
    with pytest.raises(BadLadder) as info:
        TierLadder(tiers, **kwargs)
    assert (info.value.status, info.value.code) == (422, "invalid")
    assert str(info.value).startswith("tier ladder: ") and info.value.reason


def test_unknown_pin_names_the_known_tiers():
    with pytest.raises(UnknownTier, match="'platinum'.*silver, gold, diamond"):
        tier_for(0, CARDS, "platinum")


@pytest.mark.parametrize("earned", [-1, 1.5, True, "100"])
def test_earned_must_be_a_non_negative_int(earned):
    with pytest.raises(BadInput):
        tier_for(earned, CARDS)


def test_window_start_only_for_a_trailing_basis():
    at = datetime(2024, 5, 1, tzinfo=UTC)
    trailing = TierLadder(CARDS.tiers, basis="trailing", window_days=365)
    assert trailing.window_start(at) == at - timedelta(days=365)
    assert CARDS.window_start(at) is None
