"""Points rules: how many points one genuine first check earns, and why.

Pure: the caller passes the claim's facts (base points of the SKU, time,
region, the member's tier, birthday, points earned today, what each campaign
has spent so far) and gets back an ``Award``. No clock, no store, no floats:
points are ``int`` and every multiplier is an integer number of basis points
(``10_000`` = 1x, ``15_000`` = 1.5x). The same rules are written up for brand
managers in ``schemas/points-rules.md``; keep the two in step.

Precedence (fixed, never "last edited wins"):

1. **base** -- the SKU's points.
2. **campaign multiplier** -- among the campaigns that are *active* (``at`` in
   the half-open window ``[starts_at, ends_at)``) and *match* (region, tier
   and SKU each unrestricted or containing the claim's value), exactly one
   multiplier applies: the one that adds the most points now, after its
   budget; ties go to the higher multiplier, then the smaller campaign id.
   Its extra is ``base * (bp - 10_000) // 10_000``.
3. **birthday multiplier** -- from the tenant policy, also an extra on the
   *base* (``base * (bp - 10_000) // 10_000``), not on step 2's result.
4. **birthday bonus** -- fixed points from the policy.
5. **campaign bonuses** -- every active matching campaign adds its bonus, in
   campaign id order, whether or not its multiplier won step 2.
6. **daily cap** -- the award is cut to ``max(0, daily_cap - earned_today)``.

Why multipliers do not compound: two overlapping rates (a national "double
points week" and a "1.5x in Shandong") are alternatives, and a member is
given the better one; multiplying them (3x) or adding them (2.5x) yields a
rate nobody set. Each extra is computed on the base, so what a rule adds
does not depend on which other rules fired: "birthday +100" means the same
on every claim, a brand can bound the cost of a claim by summing its rules,
and every campaign's spend is exactly its own delta. Bonuses are gifts, not
rates, so two matching bonus campaigns both pay.

Rounding: each extra is floored on its own (integer division), so the
member never gets a fraction and the deltas in ``Award.applied`` add up to
``Award.points`` exactly.

Budgets: a campaign with a budget spends what its multiplier and its bonus
add. A campaign whose remaining budget cannot cover its extra contributes
only what is left (``AppliedRule.limited``); an exhausted one contributes
nothing. When the daily cap cuts the award, the cut is taken back from the
last steps first (bonuses, then birthday, then the multiplier, then base),
and campaigns are charged only for what the member actually got. The store
must still reserve the spend atomically: this module computes the figure
from a snapshot of ``campaign_spent``.

Time: ``at`` and the windows are timezone-aware datetimes. Whether the claim
falls on the member's birthday and what counts as "today" for the cap are
decided by the caller in the tenant's time zone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from fractions import Fraction

from codegen.amounts import MAX_BALANCE, MAX_ENTRY_POINTS, MAX_RULE_POINTS, is_points
from points_bridge.exc import BadInput, BadRule

ONE_X_BP = 10_000
MAX_MULTIPLIER_BP = 100_000
"""10x: a typo guard, so "150000" meant as 1.5x cannot mint 15x points."""

FIRST_YEAR, END_YEAR = 2000, 2200
"""Campaign dates fall in these years, so every window and comparison stays computable."""

BASE = "base"
CAMPAIGN_MULTIPLIER = "campaign_multiplier"
BIRTHDAY_MULTIPLIER = "birthday_multiplier"
BIRTHDAY_BONUS = "birthday_bonus"
CAMPAIGN_BONUS = "campaign_bonus"
DAILY_CAP = "daily_cap"
KINDS = (BASE, CAMPAIGN_MULTIPLIER, BIRTHDAY_MULTIPLIER, BIRTHDAY_BONUS, CAMPAIGN_BONUS, DAILY_CAP)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def multiplier_bp(value: Fraction | Decimal | int | str) -> int:
    """Convert a multiplier such as ``"1.5"`` or ``Fraction(3, 2)`` to basis points.

    Exact or refused: a multiplier that is not a whole number of basis points
    (e.g. 4/3) raises ``BadRule`` instead of being rounded silently. Floats
    are refused because 1.1 is not 1.1 in binary.
    """
    if isinstance(value, float | bool):
        raise BadRule("multiplier", f"{value!r}: give it as text, an int or a Fraction")
    try:
        exact = Fraction(value)
    except (ValueError, TypeError, ZeroDivisionError) as exc:
        raise BadRule("multiplier", f"{value!r} is not a number") from exc
    bp = exact * ONE_X_BP
    if bp.denominator != 1:
        raise BadRule("multiplier", f"{value!r} is not a whole number of basis points")
    return int(bp)


def _check_multiplier(rule: str, bp: object) -> None:
    if not _is_int(bp) or not ONE_X_BP <= bp <= MAX_MULTIPLIER_BP:
        raise BadRule(
            rule,
            f"multiplier_bp={bp!r} must be an int in [{ONE_X_BP}, {MAX_MULTIPLIER_BP}]"
            " (10000 = 1x; points are never taken away by a multiplier)",
        )


def _check_points(rule: str, name: str, value: object, high: int = MAX_RULE_POINTS) -> None:
    """Points are ints from 0 to ``high`` (``codegen/amounts.py``), so no figure a rule
    makes can leave the range the ledger keeps exact."""
    if not is_points(value, 0, high):
        raise BadRule(rule, f"{name}={value!r} must be a whole number from 0 to {high}")


def _check_scope(rule: str, name: str, scope: object) -> None:
    if scope is None:
        return
    if not isinstance(scope, frozenset) or not all(isinstance(v, str) for v in scope):
        raise BadRule(rule, f"{name} must be None (any) or a frozenset of str, not {scope!r}")
    if not scope:
        raise BadRule(rule, f"{name} is empty, so the campaign could never apply; use None for any")


@dataclass(frozen=True)
class Campaign:
    """A time-boxed offer: a multiplier, a bonus or both, optionally scoped and budgeted.

    ``regions``, ``tiers`` and ``skus`` are None for "any" or the set the
    claim's value must belong to; a claim whose region or tier is unknown
    matches no restricted campaign. ``budget`` is the campaign's total of
    extra points over its life, None for unlimited.
    """

    campaign_id: str
    starts_at: datetime
    ends_at: datetime
    multiplier_bp: int = ONE_X_BP
    bonus: int = 0
    regions: frozenset[str] | None = None
    tiers: frozenset[str] | None = None
    skus: frozenset[str] | None = None
    budget: int | None = None

    def __post_init__(self) -> None:
        rule = self.campaign_id
        if not isinstance(rule, str) or not rule:
            raise BadRule(repr(rule), "campaign_id must be a non-empty str")
        for name in ("starts_at", "ends_at"):
            value = getattr(self, name)
            if not isinstance(value, datetime) or value.utcoffset() is None:
                raise BadRule(rule, f"{name}={value!r} must be a timezone-aware datetime")
            if not FIRST_YEAR <= value.year < END_YEAR:
                raise BadRule(rule, f"{name}={value.isoformat()} must fall in the years"
                                    f" {FIRST_YEAR} to {END_YEAR - 1}")
        if not self.starts_at < self.ends_at:
            raise BadRule(rule, f"window [{self.starts_at}, {self.ends_at}) is empty")
        _check_multiplier(rule, self.multiplier_bp)
        _check_points(rule, "bonus", self.bonus)
        if self.budget is not None:
            _check_points(rule, "budget", self.budget, MAX_BALANCE)
        if self.multiplier_bp == ONE_X_BP and self.bonus == 0:
            raise BadRule(rule, "neither a multiplier above 1x nor a bonus: it would add nothing")
        for name in ("regions", "tiers", "skus"):
            _check_scope(rule, name, getattr(self, name))

    def is_active(self, at: datetime) -> bool:
        """Tell whether ``at`` is inside the half-open window ``[starts_at, ends_at)``."""
        return self.starts_at <= at < self.ends_at

    def matches(self, context: ClaimContext) -> bool:
        """Tell whether the claim's region, tier and SKU are all in scope."""
        return (
            (self.regions is None or context.region in self.regions)
            and (self.tiers is None or context.tier in self.tiers)
            and (self.skus is None or context.sku in self.skus)
        )

    def applies_to(self, context: ClaimContext) -> bool:
        """Tell whether the campaign is active at the claim's time and in scope."""
        return self.is_active(context.at) and self.matches(context)


@dataclass(frozen=True)
class PointsPolicy:
    """A tenant's standing rules: birthday reward and per-member daily cap.

    The seeds offer a birthday as "N times points or N points"; both are
    here and both may be set. ``daily_cap`` None means no cap.
    """

    birthday_multiplier_bp: int = ONE_X_BP
    birthday_bonus: int = 0
    daily_cap: int | None = None

    def __post_init__(self) -> None:
        _check_multiplier("policy", self.birthday_multiplier_bp)
        _check_points("policy", "birthday_bonus", self.birthday_bonus)
        if self.daily_cap is not None:
            _check_points("policy", "daily_cap", self.daily_cap, MAX_ENTRY_POINTS)


@dataclass(slots=True)  # not frozen: made on every credit (ARCHITECTURE.md)
class ClaimContext:
    """The facts of one genuine first check that the rules look at.

    ``tier`` is the member's effective tier before this credit;
    ``earned_today`` the points already credited today (tenant's day);
    ``campaign_spent`` what each campaign has spent so far, by id.
    """

    sku: str
    base_points: int
    at: datetime
    region: str | None = None
    tier: str | None = None
    is_birthday: bool = False
    earned_today: int = 0
    campaign_spent: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _is_int(self.base_points) or self.base_points < 0:
            raise BadInput("base_points", self.base_points, "must be a non-negative int")
        if not _is_int(self.earned_today) or self.earned_today < 0:
            raise BadInput("earned_today", self.earned_today, "must be a non-negative int")
        if not isinstance(self.at, datetime) or self.at.utcoffset() is None:
            raise BadInput("at", self.at, "must be a timezone-aware datetime")
        for campaign_id, spent in self.campaign_spent.items():
            if not _is_int(spent) or spent < 0:
                raise BadInput(f"campaign_spent[{campaign_id!r}]", spent, "must be an int >= 0")


@dataclass(slots=True)  # not frozen: made on every credit (ARCHITECTURE.md)
class AppliedRule:
    """One step that changed the figure: its kind, its name and what it added.

    ``name`` is the campaign id for campaign steps and the kind otherwise.
    ``limited`` is True when a budget let the step add less than it asked.
    ``delta`` is negative only for the daily cap.
    """

    kind: str
    name: str
    delta: int
    limited: bool = False


@dataclass(slots=True)  # not frozen: made on every credit (ARCHITECTURE.md)
class Award:
    """Points to credit for one claim, and the rules that produced them.

    ``sum(r.delta for r in applied) == points``. ``campaign_spend`` holds, per
    campaign id, the points this claim charges to the campaign's budget (only
    non-zero entries), after the daily cap.
    """

    points: int
    applied: tuple[AppliedRule, ...]
    capped: bool
    campaign_spend: Mapping[str, int]


def _extra(base: int, bp: int) -> int:
    return base * (bp - ONE_X_BP) // ONE_X_BP


def _remaining(campaign: Campaign, spent: Mapping[str, int]) -> int | None:
    if campaign.budget is None:
        return None
    return max(0, campaign.budget - spent.get(campaign.campaign_id, 0))


def _limit(wanted: int, remaining: int | None) -> int:
    return wanted if remaining is None else min(wanted, remaining)


def _best_multiplier(
    base: int, live: Sequence[Campaign], spent: Mapping[str, int]
) -> tuple[Campaign, int] | None:
    """Pick step 2's campaign: most points added now, then higher rate, then smaller id.

    ``live`` is sorted by id, and ``max`` keeps the first of equal keys, so
    the smaller id wins a tie.
    """
    offers = [
        (_limit(_extra(base, c.multiplier_bp), _remaining(c, spent)), c.multiplier_bp, c)
        for c in live
    ]
    offers = [offer for offer in offers if offer[0] > 0]
    if not offers:
        return None
    added, _, campaign = max(offers, key=lambda offer: offer[:2])
    return campaign, added


def _check_unique(campaigns: Sequence[Campaign]) -> None:
    seen: set[str] = set()
    for campaign in campaigns:
        if not isinstance(campaign, Campaign):
            raise BadRule(repr(campaign), "is not a Campaign")
        if campaign.campaign_id in seen:
            raise BadRule(campaign.campaign_id, "appears twice in the campaign list")
        seen.add(campaign.campaign_id)


def _charges(rule: AppliedRule) -> str | None:
    """Return the campaign whose budget pays for ``rule``, if any."""
    return rule.name if rule.kind in (CAMPAIGN_MULTIPLIER, CAMPAIGN_BONUS) else None


def _steps(
    context: ClaimContext, campaigns: Sequence[Campaign], policy: PointsPolicy
) -> list[AppliedRule]:
    """Return steps 1-5 in precedence order, keeping only those that added points."""
    base = context.base_points
    live = sorted((c for c in campaigns if c.applies_to(context)), key=lambda c: c.campaign_id)
    spent = dict(context.campaign_spent)
    steps = [AppliedRule(BASE, BASE, base)]
    chosen = _best_multiplier(base, live, spent)
    if chosen is not None:
        campaign, added = chosen
        wanted = _extra(base, campaign.multiplier_bp)
        steps.append(AppliedRule(CAMPAIGN_MULTIPLIER, campaign.campaign_id, added, added < wanted))
        spent[campaign.campaign_id] = spent.get(campaign.campaign_id, 0) + added
    if context.is_birthday:
        birthday_extra = _extra(base, policy.birthday_multiplier_bp)
        steps.append(AppliedRule(BIRTHDAY_MULTIPLIER, BIRTHDAY_MULTIPLIER, birthday_extra))
        steps.append(AppliedRule(BIRTHDAY_BONUS, BIRTHDAY_BONUS, policy.birthday_bonus))
    for campaign in live:
        added = _limit(campaign.bonus, _remaining(campaign, spent))
        steps.append(
            AppliedRule(CAMPAIGN_BONUS, campaign.campaign_id, added, added < campaign.bonus)
        )
    return [rule for rule in steps if rule.delta > 0]


def award(
    context: ClaimContext, campaigns: Iterable[Campaign], policy: PointsPolicy | None = None
) -> Award:
    """Compute the points one claim earns, following the module's precedence.

    The result is an int in ``[0, daily cap room]``; every step that changed
    the figure is in ``applied``, and no campaign is charged past its budget.
    """
    policy = PointsPolicy() if policy is None else policy
    campaigns = tuple(campaigns)
    _check_unique(campaigns)
    steps = _steps(context, campaigns, policy)
    total = sum(rule.delta for rule in steps)
    room = None if policy.daily_cap is None else max(0, policy.daily_cap - context.earned_today)
    cut = 0 if room is None else max(0, total - room)
    applied = steps + [AppliedRule(DAILY_CAP, DAILY_CAP, -cut)] if cut else steps
    # The cap takes back from the last steps first; campaigns pay only for what is kept.
    spend: dict[str, int] = {}
    to_take = cut
    for rule in reversed(steps):
        taken = min(rule.delta, to_take)
        to_take -= taken
        campaign_id = _charges(rule)
        if campaign_id is not None and rule.delta > taken:
            spend[campaign_id] = spend.get(campaign_id, 0) + rule.delta - taken
    return Award(
        points=total - cut,
        applied=tuple(applied),
        capped=cut > 0,
        campaign_spend=dict(sorted(spend.items())),
    )
