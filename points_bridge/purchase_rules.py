"""Points rules for spend: what one purchase earns, line by line, and why.

Pure, like ``rules.py`` (no clock, no store, no floats): the caller passes the
purchase's lines, the earn rates, the member's tier, birthday and points
earned today, the campaigns and what each has spent, and gets back a
``PurchaseAward``. The rules are the code-claim rules of ``rules.py`` applied
to spend, with the same explicit precedence; ``schemas/points-rules.md``
("What a purchase earns") is the manager's version of this docstring.

**Units.** Amounts are integer minor units (fen: 1/100 of the currency
unit), bounded by ``codegen/amounts.py``. An earn rate is the points one
currency unit earns, in basis points (``10_000`` = 1 point per yuan, seed
002's "consume N yuan, get N points"). A line's amount is the line's total
(``qty`` units together).

Precedence (fixed):

1. **base**, per line -- ``amount * rate // 1_000_000`` with the line's rate:
   the SKU's own rate, else its category's, else the tenant default.
2. **tier multiplier**, per line -- the member's tier earn rate, an extra on
   the line's base (``base * (bp - 10_000) // 10_000``).
3. **campaign multiplier**, per line -- exactly one, chosen as for a claim
   (most points added now within budget, then the higher rate, then the
   smaller id) among the campaigns active at the purchase time that match
   the shop's region, the member's tier and the line's SKU; budgets are
   spent line by line in line order.
4. **birthday multiplier**, per line -- the tenant's birthday extra on base.
5. **birthday bonus**, once per purchase.
6. **campaign bonuses**, once per purchase: every active campaign matching
   the region, the tier and at least one line's SKU, in id order, within
   its budget.
7. **daily cap** -- the total is cut to ``max(0, cap - earned_today)``; the
   cut is taken from the last steps first (the bonuses, then the lines from
   the last one back, each line's steps last first), and campaigns are
   charged only for what the member keeps.

Why per line: a refund of one line must take back exactly what that line
earned, so each line's points are its own; the purchase-level bonuses are
taken back by the refund that leaves no line unrefunded.

The tier discount (``Tier.discount_bp``) does not change the points: it is
reported so the till can apply it (``discount_of``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from codegen.amounts import MAX_LINES, MAX_PURCHASE_AMOUNT, MINOR_PER_UNIT, is_points
from points_bridge.exc import BadInput, BadRule
from points_bridge.rules import (
    BASE,
    BIRTHDAY_BONUS,
    BIRTHDAY_MULTIPLIER,
    CAMPAIGN_BONUS,
    CAMPAIGN_MULTIPLIER,
    DAILY_CAP,
    ONE_X_BP,
    AppliedRule,
    Campaign,
    PointsPolicy,
)

TIER_MULTIPLIER = "tier_multiplier"
RATE_DIVISOR = MINOR_PER_UNIT * ONE_X_BP
DEFAULT_EARN_RATE_BP = ONE_X_BP
"""1 point per currency unit, seed 002's "consume N yuan, get N points"."""
MAX_EARN_RATE_BP = 100 * ONE_X_BP
"""100 points per currency unit: a typo guard like the 10x multiplier ceiling."""
MAX_DISCOUNT_BP = ONE_X_BP
MAX_SKU = 64


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_rate(name: str, bp: object) -> int:
    """Return an earn rate in basis points if it is an int from 0 to ``MAX_EARN_RATE_BP``."""
    if not is_points(bp, 0, MAX_EARN_RATE_BP):
        raise BadRule(name, f"earn rate {bp!r} must be a whole number of basis points from 0"
                            f" to {MAX_EARN_RATE_BP} (10000 = 1 point per currency unit)")
    return bp  # type: ignore[return-value]


@dataclass(frozen=True)
class EarnRates:
    """A tenant's earn rates: per SKU, per category (``category_of`` maps SKUs), default."""

    default_bp: int = DEFAULT_EARN_RATE_BP
    by_sku: Mapping[str, int] = field(default_factory=dict)
    by_category: Mapping[str, int] = field(default_factory=dict)
    category_of: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_rate("default", self.default_bp)
        for name, bp in {**self.by_sku, **self.by_category}.items():
            check_rate(name, bp)

    def rate_for(self, sku: str) -> int:
        """The SKU's own rate, else its category's, else the default."""
        if sku in self.by_sku:
            return self.by_sku[sku]
        category = self.category_of.get(sku)
        if category is not None and category in self.by_category:
            return self.by_category[category]
        return self.default_bp


@dataclass(frozen=True)
class Line:
    """One line of a purchase: a SKU, a quantity and the line's total in minor units."""

    sku: str
    qty: int
    amount: int

    def __post_init__(self) -> None:
        if not isinstance(self.sku, str) or not 0 < len(self.sku) <= MAX_SKU:
            raise BadInput("sku", self.sku, f"must be 1 to {MAX_SKU} characters")
        if not is_points(self.qty, 1, 1_000_000):
            raise BadInput("qty", self.qty, "must be a whole number from 1 to 1000000")
        if not is_points(self.amount, 0, MAX_PURCHASE_AMOUNT):
            raise BadInput("amount", self.amount,
                           f"must be whole minor units (fen) from 0 to {MAX_PURCHASE_AMOUNT}")


def check_lines(lines: Sequence[Line]) -> tuple[Line, ...]:
    """A purchase has 1 to ``MAX_LINES`` lines and a total within ``MAX_PURCHASE_AMOUNT``."""
    lines = tuple(lines)
    if not 0 < len(lines) <= MAX_LINES:
        raise BadInput("lines", len(lines), f"a purchase has 1 to {MAX_LINES} lines")
    total = sum(line.amount for line in lines)
    if total > MAX_PURCHASE_AMOUNT:
        raise BadInput("amount", total, f"a purchase totals at most {MAX_PURCHASE_AMOUNT} fen")
    return lines


@dataclass(frozen=True)
class PurchaseContext:
    """The facts of one purchase the rules look at (as ``rules.ClaimContext`` for a claim)."""

    lines: tuple[Line, ...]
    at: datetime
    region: str | None = None
    tier: str | None = None
    tier_earn_bp: int = ONE_X_BP
    is_birthday: bool = False
    earned_today: int = 0
    campaign_spent: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_lines(self.lines)
        if not isinstance(self.at, datetime) or self.at.utcoffset() is None:
            raise BadInput("at", self.at, "must be a timezone-aware datetime")
        if not _is_int(self.earned_today) or self.earned_today < 0:
            raise BadInput("earned_today", self.earned_today, "must be a non-negative int")
        if not is_points(self.tier_earn_bp, ONE_X_BP, 10 * ONE_X_BP):
            raise BadRule("tier", f"earn multiplier {self.tier_earn_bp!r} must be 1x to 10x")


@dataclass(frozen=True)
class LineAward:
    """What one line earned (after the cap) and the steps that made it."""

    sku: str
    base: int
    points: int
    applied: tuple[AppliedRule, ...]


@dataclass(frozen=True)
class PurchaseAward:
    """Points one purchase earns: per line, the purchase's bonuses, and what campaigns pay.

    ``points == sum(line.points) + bonus_points``; ``applied`` lists every step
    (line steps first, then bonuses and the cap); ``campaign_spend`` is what
    the purchase charges each campaign's budget, after the cap.
    """

    points: int
    lines: tuple[LineAward, ...]
    bonus_points: int
    applied: tuple[AppliedRule, ...]
    capped: bool
    campaign_spend: Mapping[str, int]


def _extra(base: int, bp: int) -> int:
    return base * (bp - ONE_X_BP) // ONE_X_BP


def _room(campaign: Campaign, spent: Mapping[str, int]) -> int | None:
    if campaign.budget is None:
        return None
    return max(0, campaign.budget - spent.get(campaign.campaign_id, 0))


def _limit(wanted: int, room: int | None) -> int:
    return wanted if room is None else min(wanted, room)


def _matches(campaign: Campaign, context: PurchaseContext, sku: str) -> bool:
    return (
        campaign.is_active(context.at)
        and (campaign.regions is None or context.region in campaign.regions)
        and (campaign.tiers is None or context.tier in campaign.tiers)
        and (campaign.skus is None or sku in campaign.skus)
    )


def _line_steps(
    line: Line, rate: int, context: PurchaseContext, live: Sequence[Campaign],
    policy: PointsPolicy, spent: dict[str, int],
) -> tuple[int, list[AppliedRule]]:
    base = line.amount * rate // RATE_DIVISOR
    steps = [AppliedRule(BASE, line.sku, base),
             AppliedRule(TIER_MULTIPLIER, context.tier or "", _extra(base, context.tier_earn_bp))]
    offers = []
    for campaign in live:
        if _matches(campaign, context, line.sku):
            wanted = _extra(base, campaign.multiplier_bp)
            offers.append((_limit(wanted, _room(campaign, spent)), campaign.multiplier_bp,
                           wanted, campaign))
    offers = [offer for offer in offers if offer[0] > 0]
    if offers:
        added, _, wanted, campaign = max(offers, key=lambda offer: offer[:2])
        steps.append(AppliedRule(CAMPAIGN_MULTIPLIER, campaign.campaign_id, added, added < wanted))
        spent[campaign.campaign_id] = spent.get(campaign.campaign_id, 0) + added
    if context.is_birthday:
        steps.append(AppliedRule(BIRTHDAY_MULTIPLIER, BIRTHDAY_MULTIPLIER,
                                 _extra(base, policy.birthday_multiplier_bp)))
    return base, [step for step in steps if step.delta > 0]


def _bonuses(
    context: PurchaseContext, live: Sequence[Campaign], policy: PointsPolicy,
    spent: dict[str, int],
) -> list[AppliedRule]:
    """Steps 5 and 6: the birthday bonus, then each matching campaign's bonus, once."""
    bonuses: list[AppliedRule] = []
    if context.is_birthday and policy.birthday_bonus:
        bonuses.append(AppliedRule(BIRTHDAY_BONUS, BIRTHDAY_BONUS, policy.birthday_bonus))
    for campaign in live:
        if campaign.bonus and any(_matches(campaign, context, ln.sku) for ln in context.lines):
            added = _limit(campaign.bonus, _room(campaign, spent))
            if added > 0:
                bonuses.append(AppliedRule(CAMPAIGN_BONUS, campaign.campaign_id, added,
                                           added < campaign.bonus))
                spent[campaign.campaign_id] = spent.get(campaign.campaign_id, 0) + added
    return bonuses


def _charged(rule: AppliedRule) -> str | None:
    return rule.name if rule.kind in (CAMPAIGN_MULTIPLIER, CAMPAIGN_BONUS) else None


def purchase_award(
    context: PurchaseContext,
    rates: EarnRates,
    campaigns: Iterable[Campaign],
    policy: PointsPolicy | None = None,
) -> PurchaseAward:
    """Compute what a purchase earns, following the module's precedence."""
    policy = PointsPolicy() if policy is None else policy
    live = sorted(campaigns, key=lambda c: c.campaign_id)
    if len({c.campaign_id for c in live}) != len(live):
        raise BadRule("campaigns", "a campaign id appears twice")
    spent = dict(context.campaign_spent)
    per_line: list[tuple[Line, int, list[AppliedRule]]] = []
    for line in context.lines:
        base, steps = _line_steps(line, rates.rate_for(line.sku), context, live, policy, spent)
        per_line.append((line, base, steps))
    bonuses = _bonuses(context, live, policy, spent)
    total = sum(s.delta for _, _, steps in per_line for s in steps) + sum(
        b.delta for b in bonuses)
    room = None if policy.daily_cap is None else max(0, policy.daily_cap - context.earned_today)
    cut = 0 if room is None else max(0, total - room)
    # Take the cut back from the last steps first: bonuses, then lines from the last.
    to_take = cut
    kept_bonuses: list[int] = []
    for rule in reversed(bonuses):
        taken = min(rule.delta, to_take)
        to_take -= taken
        kept_bonuses.insert(0, rule.delta - taken)
    kept_lines: list[list[int]] = []
    for _, _, steps in reversed(per_line):
        kept = []
        for rule in reversed(steps):
            taken = min(rule.delta, to_take)
            to_take -= taken
            kept.insert(0, rule.delta - taken)
        kept_lines.insert(0, kept)
    spend: dict[str, int] = {}
    applied: list[AppliedRule] = []
    line_awards: list[LineAward] = []
    for (line, base, steps), kept in zip(per_line, kept_lines, strict=True):
        for rule, keep in zip(steps, kept, strict=True):
            if _charged(rule) and keep:
                spend[rule.name] = spend.get(rule.name, 0) + keep
        applied.extend(steps)
        line_awards.append(LineAward(line.sku, base, sum(kept), tuple(steps)))
    for rule, keep in zip(bonuses, kept_bonuses, strict=True):
        if _charged(rule) and keep:
            spend[rule.name] = spend.get(rule.name, 0) + keep
    applied.extend(bonuses)
    if cut:
        applied.append(AppliedRule(DAILY_CAP, DAILY_CAP, -cut))
    return PurchaseAward(
        points=total - cut,
        lines=tuple(line_awards),
        bonus_points=sum(kept_bonuses),
        applied=tuple(applied),
        capped=cut > 0,
        campaign_spend=dict(sorted(spend.items())),
    )


def allocate(total: int, weights: Sequence[int]) -> list[int]:
    """Split ``total`` over lines in proportion to ``weights``, exactly (largest remainder).

    Used to attribute what was paid with points or stored value to each line,
    so a refund of one line returns that line's share and the shares of all
    lines add up to the payment.
    """
    if total == 0:
        return [0] * len(weights)
    whole = sum(weights)
    if whole == 0:
        shares = [0] * len(weights)
        shares[-1] = total
        return shares
    shares = [total * w // whole for w in weights]
    order = sorted(range(len(weights)), key=lambda i: (-(total * weights[i] % whole), i))
    for i in order[: total - sum(shares)]:
        shares[i] += 1
    return shares


def discount_of(amount: int, discount_bp: int) -> int:
    """The tier discount on ``amount`` minor units, floored (the member never pays a fraction
    less than the rate says, and the till's figure is exact)."""
    return amount * discount_bp // ONE_X_BP
