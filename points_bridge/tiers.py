"""Member tiers: a per-tenant ladder climbed by points earned, with a manual floor.

A tier follows the points a member has *earned* (over the whole membership or
a trailing window, per tenant), never the spendable balance: redeeming a gift
must not demote anyone (seed 001 groups members "by points" into diamond,
gold, silver cards; seed 003 levels by accumulated consumption).

A manager may pin a member's tier. As seed 003 describes for manually
registered members, the pin is a floor: the member is never below the pinned
tier, and still climbs above it when the points say so.

Pure: the caller sums the earned points (from the ledger, over
``window_start``) and recomputes on every credit; a change of ``name`` is
what the ledger records as a tier event.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from codegen.amounts import MAX_BALANCE
from points_bridge.exc import BadInput, BadLadder, UnknownTier

Basis = Literal["lifetime", "trailing", "spend"]
MAX_WINDOW_DAYS = 3660
"""Ten years: a trailing window any date arithmetic can compute (and members keep that
many days of per-day earned points)."""
BASES: tuple[Basis, ...] = ("lifetime", "trailing", "spend")
ONE_X_BP = 10_000


@dataclass(frozen=True)
class Tier:
    """A tier and the earned points (or, basis ``spend``, whole currency units spent) at
    which it starts (inclusive).

    ``discount_bp`` is the discount the tier gives at the till, in basis points (500 = 5%),
    reported by every purchase so the till can apply it; ``earn_bp`` multiplies the points
    a purchase earns (10000 = 1x), an extra on each line's base (``purchase_rules.py``).
    """

    name: str
    threshold: int
    discount_bp: int = 0
    earn_bp: int = ONE_X_BP


@dataclass(frozen=True)
class TierLadder:
    """A tenant's tiers, lowest first, and how earned points are counted.

    Thresholds start at 0 and strictly increase, so every member is in
    exactly one tier. ``window_days`` is set for a ``"trailing"`` basis
    (points earned in the last N days) and None for ``"lifetime"``.
    """

    tiers: tuple[Tier, ...]
    basis: Basis = "lifetime"
    window_days: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.tiers, tuple) or not self.tiers:
            raise BadLadder("needs a non-empty tuple of Tier, lowest first")
        self._check_tiers()
        if self.basis not in BASES:
            raise BadLadder(f"basis {self.basis!r} is not one of {', '.join(BASES)}")
        if self.basis == "trailing":
            days = self.window_days
            is_int = isinstance(days, int) and not isinstance(days, bool)
            if not is_int or not 0 < days <= MAX_WINDOW_DAYS:
                raise BadLadder(
                    f"a trailing basis needs window_days from 1 to {MAX_WINDOW_DAYS}, not {days!r}"
                )
        elif self.window_days is not None:
            raise BadLadder("window_days is only for a trailing basis")

    def _check_tiers(self) -> None:
        names: set[str] = set()
        previous: int | None = None
        for tier in self.tiers:
            if not isinstance(tier, Tier) or not isinstance(tier.name, str) or not tier.name:
                raise BadLadder(f"{tier!r} is not a Tier with a non-empty name")
            if tier.name in names:
                raise BadLadder(f"tier name {tier.name!r} appears twice")
            names.add(tier.name)
            threshold = tier.threshold
            if isinstance(threshold, bool) or not isinstance(threshold, int):
                raise BadLadder(f"threshold of {tier.name!r} must be an int, not {threshold!r}")
            for what, value, low, high in (("discount", tier.discount_bp, 0, ONE_X_BP),
                                           ("earn rate", tier.earn_bp, ONE_X_BP,
                                            10 * ONE_X_BP)):
                if isinstance(value, bool) or not isinstance(value, int) or not (
                        low <= value <= high):
                    raise BadLadder(f"{what} of {tier.name!r} must be {low} to {high} basis"
                                    f" points, not {value!r}")
            if threshold > MAX_BALANCE:
                raise BadLadder(f"threshold of {tier.name!r} is above {MAX_BALANCE} points")
            if previous is None and threshold != 0:
                raise BadLadder(f"the first tier {tier.name!r} must start at 0, not {threshold}")
            if previous is not None and threshold <= previous:
                raise BadLadder(
                    f"thresholds must strictly increase: {tier.name!r} starts at {threshold},"
                    f" not above {previous}"
                )
            previous = threshold

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(tier.name for tier in self.tiers)

    def tier(self, name: str) -> Tier:
        """The tier called ``name``."""
        return self.tiers[self.index(name)]

    def index(self, name: str) -> int:
        """Return the position of tier ``name`` (0 is the lowest)."""
        for position, tier in enumerate(self.tiers):
            if tier.name == name:
                return position
        raise UnknownTier(name, self.names)

    def window_start(self, at: datetime) -> datetime | None:
        """Return the earliest credit time that counts at ``at``; None for lifetime."""
        if self.window_days is None:
            return None
        return at - timedelta(days=self.window_days)


@dataclass(slots=True)  # not frozen: made on every credit (ARCHITECTURE.md)
class TierStatus:
    """A member's tier, and what it takes to reach the next one.

    ``points_to_next`` is the earned points still missing for ``next_name``;
    both are None at the top tier (there is nothing to reach, and 0 would
    read as "about to go up"). ``earned_name`` is the tier the points alone
    give; ``pinned`` is True when the manager's floor, not the points, holds
    the member at ``name``.
    """

    name: str
    next_name: str | None
    points_to_next: int | None
    earned_name: str
    pinned: bool


def _earned_index(earned: int, ladder: TierLadder) -> int:
    thresholds = [tier.threshold for tier in ladder.tiers]
    return bisect_right(thresholds, earned) - 1


def tier_for(earned: int, ladder: TierLadder, pinned: str | None = None) -> TierStatus:
    """Return the tier of a member who has earned ``earned`` points.

    ``pinned`` is a tier set by a manager, a floor: the result is the higher
    of it and the tier the points reach. Monotone in ``earned``.
    """
    if isinstance(earned, bool) or not isinstance(earned, int) or earned < 0:
        raise BadInput("earned", earned, "must be a non-negative int (points earned, not balance)")
    by_points = _earned_index(earned, ladder)
    floor = -1 if pinned is None else ladder.index(pinned)
    current = max(by_points, floor)
    if current + 1 < len(ladder.tiers):
        upcoming = ladder.tiers[current + 1]
        next_name, points_to_next = upcoming.name, upcoming.threshold - earned
    else:
        next_name, points_to_next = None, None
    return TierStatus(
        name=ladder.tiers[current].name,
        next_name=next_name,
        points_to_next=points_to_next,
        earned_name=ladder.tiers[by_points].name,
        pinned=floor > by_points,
    )
