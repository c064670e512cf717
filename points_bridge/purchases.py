"""Purchases at the till: points earned per line, paid with points or stored value, refunds.

A purchase is **one ledger entry** of kind ``purchase`` in the member's ledger,
posted by ``lua/ledger_apply.lua`` like every other entry. That one script
call moves the points (earned less paid), the stored value paid, the
member's lifetime spend (tiers by spend) and the tier, writes the entry, the
CRM event (the shard's events stream) and the idempotency key, atomically.
So:

* **Exactly once.** The request's key (``purchase:<key>`` in the member's
  idem hash) is checked and written by the script that moves the balances:
  a retry, a concurrent duplicate or a replay after a crash gets the first
  entry back (``duplicate``); the same key with another request is refused
  (``IdempotencyConflict``). A purchase the API acknowledged is in the
  ledger stream, which survives a restart of Redis as far as its
  persistence does (``appendfsync``), like every claim.
* **Figures from a snapshot, posted only if it still holds.** The award (the
  daily cap, the tier, campaign budgets) is computed from the member record
  read before, and posted with the record's version ``v``; a concurrent
  change makes the post ``stale`` and it is computed again
  (``credit.py`` does the same for claims). Campaign budgets are charged
  before the post (``CampaignStore.reserve``) and given back if it does not
  happen; a crash in between leaves a budget a few points short, never over.
* **Never negative.** Paid points are checked against the balance before the
  purchase's own points, stored value against the stored balance, in the
  script (``need_points``, ``stored``).

The purchase id is ``<card>-<ledger entry id>``: it locates the entry without
an index, in the member's own slot.

**Refunds** (whole or some lines) are ledger entries of kind ``refund`` that
take back exactly what those lines moved: their points, the points and stored
value allocated to them (``purchase_rules.allocate``), their spend; the
purchase-level bonuses go back with the refund that leaves no line
unrefunded. Which lines are refunded is a field of the member record
(``rf:<entry id>``) written by the same script, under the version check, so
two refunds of one line can never both pass. Campaign budgets are not given
back: what a promotion gave stays counted as its cost.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import redis

from codegen.amounts import MAX_PURCHASE_AMOUNT, MINOR_PER_UNIT, is_points
from codegen.keys import MasterKey
from points_bridge.campaigns import CampaignStore, StoredCampaign
from points_bridge.cards import is_valid_card, normalize_card
from points_bridge.exc import (
    AlreadyRefunded,
    BadInput,
    Contended,
    IdempotencyConflict,
    InsufficientPoints,
    InsufficientStoredValue,
    UnknownMember,
    UnknownPurchase,
)
from points_bridge.ledger import Entry, Ledger, body_sha, entry_spec, lot_expiry, refusal
from points_bridge.ledger_archive import ArchivedEntries, live_from
from points_bridge.members import ACTIVE, Member, MemberStore, earned_for_tier
from points_bridge.purchase_rules import (
    EarnRates,
    Line,
    PurchaseAward,
    PurchaseContext,
    allocate,
    check_lines,
    check_rate,
    discount_of,
    purchase_award,
)
from points_bridge.rules import PointsPolicy
from points_bridge.scoped import TenantScoped
from points_bridge.settings import PointsSettings, SettingsStore, earn_rate_bp
from points_bridge.shops import Shop, ShopStore
from points_bridge.tiers import TierStatus, tier_for

MAX_ATTEMPTS = 64
MAX_KEY = 128
REFUNDED = "rf:"
"""Member record field prefix: ``rf:<entry id>`` -> the purchase's refunded line numbers."""


def check_key(key: object) -> str:
    if not isinstance(key, str) or not 0 < len(key) <= MAX_KEY or not key.isprintable():
        raise BadInput("idempotency_key", key, f"must be 1 to {MAX_KEY} printable characters")
    return key


def check_money(name: str, value: object, low: int = 0) -> int:
    if not is_points(value, low, MAX_PURCHASE_AMOUNT):
        raise BadInput(name, value, f"must be whole minor units (fen) from {low} to"
                                    f" {MAX_PURCHASE_AMOUNT}")
    return value  # type: ignore[return-value]


def purchase_id(card: str, entry_id: str) -> str:
    return f"{card}-{entry_id}"


def split_purchase_id(text: str) -> tuple[str, str]:
    card, _, entry_id = (text or "").partition("-")
    if not (card.isdigit() and len(card) == 12 and entry_id.count("-") == 1
            and all(part.isdigit() for part in entry_id.split("-"))):
        raise BadInput("purchase", text, "a purchase id is <card>-<entry id>, as answered")
    return card, entry_id


def find_member(store: MemberStore, who: str) -> Member:
    """The member of a card number (12 digits with a valid check digit) or else a phone."""
    if not isinstance(who, str) or not who.strip():
        raise BadInput("member", who, "give the member's phone or card number")
    digits = normalize_card(who)
    if digits and is_valid_card(digits):
        return store.find(card=digits)
    return store.find(phone=who)


# -- earn rates -------------------------------------------------------------------------------
class EarnRateStore(TenantScoped):
    """Purchase earn rates per SKU and per category, and the SKUs' categories.

    The tenant default is the ``points_earn_rate`` setting (``points config
    --earn-rate``); a SKU's own rate wins over its category's.
    """

    def set_rate(self, *, sku: str | None = None, category: str | None = None,
                 rate: str) -> int:
        if (sku is None) == (category is None):
            raise BadInput("rate", rate, "give exactly one of a SKU or a category")
        bp = check_rate(sku or category or "", earn_rate_bp(rate))
        self._redis.hset(self.keys.earn_rates, f"sku:{sku}" if sku else f"cat:{category}", bp)
        return bp

    def clear_rate(self, *, sku: str | None = None, category: str | None = None) -> bool:
        return bool(self._redis.hdel(self.keys.earn_rates,
                                     f"sku:{sku}" if sku else f"cat:{category}"))

    def set_category(self, sku: str, category: str) -> None:
        if not category:
            self._redis.hdel(self.keys.earn_rates, f"in:{sku}")
        else:
            self._redis.hset(self.keys.earn_rates, f"in:{sku}", category)

    def rates(self, default_bp: int) -> EarnRates:
        return parse_rates(self._redis.hgetall(self.keys.earn_rates), default_bp)


def parse_rates(raw: Mapping[bytes, bytes], default_bp: int) -> EarnRates:
    by_sku, by_category, category_of = {}, {}, {}
    for key, value in raw.items():
        kind, _, name = key.decode().partition(":")
        if kind == "sku":
            by_sku[name] = int(value)
        elif kind == "cat":
            by_category[name] = int(value)
        elif kind == "in":
            category_of[name] = value.decode()
    return EarnRates(default_bp, by_sku, by_category, category_of)


# -- the answer -------------------------------------------------------------------------------
@dataclass(frozen=True)
class PurchaseResult:
    """A purchase or a refund as posted (for a repeat: the first one, ``duplicate``)."""

    purchase_id: str
    entry: Entry
    duplicate: bool

    def to_json(self) -> dict[str, Any]:
        f = self.entry.fields
        lines = json.loads(f.get("lines", "[]"))
        document = {
            "purchase_id": self.purchase_id,
            "kind": self.entry.kind,
            "member": f.get("card", ""),
            "shop": f.get("shop", ""),
            "at": self.entry.at,
            "lines": lines,
            "points": int(f.get("points", 0)),
            "bonus_points": int(f.get("bonus", 0)),
            "paid_with_points": int(f.get("paid_points", 0)),
            "paid_with_stored_value": int(f.get("paid_stored", 0)),
            "amount": int(f.get("amount", 0)),
            "balances": {"points": self.entry.balance,
                         "stored_value": int(f.get("stored", 0) or 0)},
            "tier": self.entry.tier,
            "duplicate": self.duplicate,
        }
        if self.entry.kind == "purchase":
            document["rules"] = json.loads(f.get("rules", "[]"))
            document["discount"] = {
                "tier": f.get("discount_tier", ""),
                "rate_bp": int(f.get("discount_bp", 0)),
                "amount": int(f.get("discount", 0)),
            }
            document["note"] = f.get("note", "")
        else:
            document["refund_of"] = f.get("refund_of", "")
        return document


@dataclass(frozen=True)
class PurchaseRequest:
    """What the till sends: who, where, the lines, how it was paid, the idempotency key."""

    member: str
    shop: str
    lines: tuple[Line, ...]
    idempotency_key: str
    paid_with_points: int = 0
    paid_with_stored_value: int = 0

    def __post_init__(self) -> None:
        check_lines(self.lines)
        check_key(self.idempotency_key)
        if not is_points(self.paid_with_points, 0, 10**9):
            raise BadInput("paid_with_points", self.paid_with_points,
                           "must be a whole number of points from 0 to 1000000000")
        check_money("paid_with_stored_value", self.paid_with_stored_value)

    def body(self) -> dict[str, object]:
        """What the idempotency key is bound to: the request, not the figures computed."""
        return {"shop": self.shop, "lines": [[ln.sku, ln.qty, ln.amount] for ln in self.lines],
                "paid_points": self.paid_with_points,
                "paid_stored": self.paid_with_stored_value}


@dataclass(frozen=True)
class PurchasePlan:
    """A purchase computed from one member snapshot (pure: ``plan_purchase``)."""

    award: PurchaseAward
    day: str
    drop_days: tuple[str, ...]
    tier_before: TierStatus
    tier_after: TierStatus
    discount_bp: int
    lot_expires: int
    note: str


def plan_purchase(
    member: Member, settings: PointsSettings, rates: EarnRates,
    campaigns: Mapping[str, StoredCampaign], *, lines: Sequence[Line], region: str, at: int,
) -> PurchasePlan:
    """Compute the award, the tier discount and the tier after, from a member snapshot."""
    when = datetime.fromtimestamp(at, settings.timezone)
    day = when.strftime("%Y%m%d")
    ladder = settings.ladder
    pin = member.pinned_tier if member.pinned_tier in ladder.names else None
    before = tier_for(earned_for_tier(member, settings, at), ladder, pin)
    tier = ladder.tier(before.name)
    note = ""
    if member.status == ACTIVE:
        context = PurchaseContext(
            lines=tuple(lines), at=when, region=region or None, tier=before.name,
            tier_earn_bp=tier.earn_bp, is_birthday=member.is_birthday(when.date()),
            earned_today=member.days.get(day, 0),
            campaign_spent={cid: c.spent for cid, c in campaigns.items()},
        )
        live = [c.campaign for c in campaigns.values() if c.live_at(when)]
        award = purchase_award(context, rates, live, settings.policy)
    else:
        award = purchase_award(
            PurchaseContext(lines=tuple(lines), at=when), EarnRates(0), [], PointsPolicy())
        note = f"member is {member.status}: no points"
    spent_after = replace(member, spend=member.spend + sum(ln.amount for ln in lines))
    measure = earned_for_tier(spent_after, settings, at)
    if ladder.basis != "spend":
        measure += award.points
    after = tier_for(measure, ladder, pin)
    keep_days = max(ladder.window_days or 1, 2)
    oldest = (when.date() - timedelta(days=keep_days)).strftime("%Y%m%d")
    return PurchasePlan(
        award=award, day=day, drop_days=tuple(d for d in member.days if d < oldest),
        tier_before=before, tier_after=after, discount_bp=tier.discount_bp,
        lot_expires=lot_expiry(at, settings.expiry_months, settings.timezone), note=note,
    )


def _rules_json(award: PurchaseAward) -> list[dict]:
    return [{"kind": r.kind, "name": r.name, "delta": r.delta, "limited": r.limited}
            for r in award.applied]


class PurchaseDesk(TenantScoped):
    """Record purchases and refunds, move stored value, read a member's purchases."""

    def __init__(self, client: redis.Redis, tenant: str, *,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(client, tenant, clock=clock)
        self.members = MemberStore(client, tenant, clock=clock)
        self.shops = ShopStore(client, tenant, clock=clock)
        self.campaigns = CampaignStore(client, tenant, clock=clock)
        self.rates = EarnRateStore(client, tenant, clock=clock)

    # -- purchases -----------------------------------------------------------------------
    def record(self, request: PurchaseRequest, *, at: int | None = None) -> PurchaseResult:
        """Post one purchase exactly once per (member, idempotency key)."""
        shop = self.shops.get(request.shop)
        member = find_member(self.members, request.member)
        card = member.card
        idem = f"purchase:{request.idempotency_key}"
        body = request.body()
        sha = body_sha(body)
        at = int(self._clock() if at is None else at)
        for _ in range(MAX_ATTEMPTS):
            member, seen = self._snapshot(card, idem)
            if seen is not None:
                return self._repeat(card, seen, sha, idem)
            settings = SettingsStore(self._redis).get(self.tenant)
            campaigns = self.campaigns.list()
            plan = plan_purchase(member, settings, self.rates.rates(settings.earn_rate_bp),
                                 campaigns, lines=request.lines, region=shop.region, at=at)
            spec = self._purchase_spec(member, request, shop, plan, idem, body, at)
            charges = dict(plan.award.campaign_spend)
            if charges and self.campaigns.reserve(charges, campaigns) is not None:
                continue  # a budget moved under us: compute again from fresh figures
            reply = self._post(card, spec)
            if reply["ok"]:
                return PurchaseResult(purchase_id(card, reply["entry"]),
                                      self._entry(card, reply["entry"]), False)
            if charges:
                self.campaigns.refund(charges)
            if reply["why"] == "dup":
                return self._repeat(card, None, sha, idem)
            if reply["why"] != "stale":
                raise self._refusal(reply, card, spec)
        raise Contended(card)

    def _purchase_spec(self, member: Member, request: PurchaseRequest, shop: Shop,
                       plan: PurchasePlan, idem: str, body: Mapping, at: int) -> dict:
        amounts = [ln.amount for ln in request.lines]
        paid_points = allocate(request.paid_with_points, amounts)
        paid_stored = allocate(request.paid_with_stored_value, amounts)
        lines = [
            {"line": i + 1, "sku": ln.sku, "qty": ln.qty, "amount": ln.amount,
             "points": la.points, "paid_points": pp, "paid_stored_value": ps}
            for i, (ln, la, pp, ps) in enumerate(
                zip(request.lines, plan.award.lines, paid_points, paid_stored, strict=True))
        ]
        total = sum(amounts)
        points = plan.award.points
        fields = {
            "card": member.card, "shop": shop.shop_id, "region": shop.region,
            "lines": json.dumps(lines), "points": str(points),
            "bonus": str(plan.award.bonus_points), "amount": str(total),
            "paid_points": str(request.paid_with_points),
            "paid_stored": str(request.paid_with_stored_value),
            "rules": json.dumps(_rules_json(plan.award)),
            "spend": json.dumps(dict(plan.award.campaign_spend)),
            "discount_tier": plan.tier_before.name, "discount_bp": str(plan.discount_bp),
            "discount": str(discount_of(total, plan.discount_bp)),
            "day": plan.day, "tier_before": plan.tier_before.name, "note": plan.note,
        }
        spec = entry_spec(
            member.card, kind="purchase", idem=idem, body=body, at=at,
            delta=points - request.paid_with_points, earned=points, day=plan.day,
            drop_days=plan.drop_days, lot_expires=plan.lot_expires, tier=plan.tier_after.name,
            version=member.version, fields=fields,
            need_active=bool(request.paid_with_points or request.paid_with_stored_value),
        )
        spec.update(stored=str(-request.paid_with_stored_value), spend=str(total),
                    need_points=str(request.paid_with_points))
        return spec

    # -- refunds -------------------------------------------------------------------------
    def refund(self, purchase: str, lines: Iterable[int] | None = None, *,
               idempotency_key: str | None = None, at: int | None = None) -> PurchaseResult:
        """Refund the given line numbers (1-based) of a purchase, or every line not yet
        refunded; each line is refunded at most once."""
        card, entry_id = split_purchase_id(purchase)
        wanted = None if lines is None else sorted(set(lines))
        if wanted is not None and not wanted:
            raise BadInput("lines", [], "name at least one line, or none for the whole purchase")
        original = self._purchase_entry(card, entry_id, purchase)
        bought = json.loads(original.fields["lines"])
        for number in wanted or ():
            if not is_points(number, 1, len(bought)):
                raise BadInput("lines", number, f"the purchase has lines 1 to {len(bought)}")
        which = "all" if wanted is None else ",".join(map(str, wanted))
        idem = f"refund:{entry_id}:{idempotency_key or which}"
        body = {"purchase": purchase, "lines": which}
        sha = body_sha(body)
        at = int(self._clock() if at is None else at)
        for _ in range(MAX_ATTEMPTS):
            member, seen = self._snapshot(card, idem)
            if seen is not None:
                return self._repeat(card, seen, sha, idem)
            raw = self._redis.hget(self.keys.member(card), REFUNDED + entry_id)
            done = {int(n) for n in raw.decode().split(",")} if raw else set()
            todo = [n for n in range(1, len(bought) + 1) if n not in done] if wanted is None \
                else wanted
            clash = done & set(todo)
            if clash:
                raise AlreadyRefunded(purchase, clash)
            if not todo:
                raise AlreadyRefunded(purchase, done)
            spec = self._refund_spec(member, original, bought, todo, done, idem, body, at,
                                     purchase)
            reply = self._post(card, spec)
            if reply["ok"]:
                return PurchaseResult(purchase, self._entry(card, reply["entry"]), False)
            if reply["why"] == "dup":
                return self._repeat(card, None, sha, idem)
            if reply["why"] != "stale":
                raise self._refusal(reply, card, spec)
        raise Contended(card)

    def _refund_spec(self, member: Member, original: Entry, bought: list[dict],
                     todo: list[int], done: set[int], idem: str, body: Mapping, at: int,
                     purchase: str) -> dict:
        chosen = [bought[n - 1] for n in todo]
        points = sum(ln["points"] for ln in chosen)
        last = len(done) + len(todo) == len(bought)
        if last:
            points += int(original.fields.get("bonus", 0))
        paid_points = sum(ln["paid_points"] for ln in chosen)
        paid_stored = sum(ln["paid_stored_value"] for ln in chosen)
        amount = sum(ln["amount"] for ln in chosen)
        settings = SettingsStore(self._redis).get(self.tenant)
        day = original.fields.get("day", "")
        after = replace(member, earned=member.earned - points, spend=member.spend - amount,
                        days={**member.days, day: max(0, member.days.get(day, 0) - points)}
                        if day in member.days else member.days)
        ladder = settings.ladder
        pin = member.pinned_tier if member.pinned_tier in ladder.names else None
        tier = tier_for(max(0, earned_for_tier(after, settings, at)), ladder, pin)
        fields = {
            "card": member.card, "shop": original.fields.get("shop", ""),
            "refund_of": purchase, "lines": json.dumps(chosen), "points": str(-points),
            "bonus": str(int(original.fields.get("bonus", 0)) if last else 0),
            "amount": str(-amount), "paid_points": str(-paid_points),
            "paid_stored": str(-paid_stored), "day": datetime.fromtimestamp(
                at, settings.timezone).strftime("%Y%m%d"),
            "purchase_day": day, "tier_before": original.fields.get("tier_before", ""),
        }
        refunded = ",".join(map(str, sorted(done | set(todo))))
        spec = entry_spec(
            member.card, kind="refund", idem=idem, body=body, at=at,
            delta=paid_points - points, earned=-points, undo_day=day, tier=tier.name,
            version=member.version, fields=fields,
            member_set={REFUNDED + original.entry_id: refunded},
        )
        spec.update(stored=str(paid_stored), spend=str(-amount))
        return spec

    def _purchase_entry(self, card: str, entry_id: str, purchase: str) -> Entry:
        entry = Ledger(self._redis, self.tenant).entry(card, entry_id)  # archived, too
        if entry is None or entry.kind != "purchase":
            raise UnknownPurchase(self.tenant, purchase)
        return entry

    # -- stored value --------------------------------------------------------------------
    def topup(self, who: str, amount: int, *, payment_ref: str, idempotency_key: str,
              at: int | None = None) -> PurchaseResult:
        """Add prepaid value paid for outside (``payment_ref``: the payment's reference)."""
        check_money("amount", amount, 1)
        if not isinstance(payment_ref, str) or not 0 < len(payment_ref.strip()) <= MAX_KEY:
            raise BadInput("payment_ref", payment_ref, "a top-up needs its payment reference")
        return self._stored("topup", who, amount, idempotency_key,
                            {"payment_ref": payment_ref.strip()}, at)

    def adjust_stored(self, who: str, amount: int, *, reason: str, idempotency_key: str,
                      at: int | None = None) -> PurchaseResult:
        """Correct a stored-value balance by ``amount`` (may be negative), with a reason."""
        check_money("amount", amount, -MAX_PURCHASE_AMOUNT)
        if amount == 0:
            raise BadInput("amount", amount, "an adjustment of 0 changes nothing")
        if not isinstance(reason, str) or not reason.strip():
            raise BadInput("reason", reason, "an adjustment needs a reason")
        return self._stored("stored_adjust", who, amount, idempotency_key,
                            {"reason": reason.strip()}, at)

    def _stored(self, kind: str, who: str, amount: int, key: str, extra: Mapping[str, str],
                at: int | None) -> PurchaseResult:
        member = find_member(self.members, who)
        idem = f"{kind}:{check_key(key)}"
        body = {"amount": amount, **extra}
        spec = entry_spec(member.card, kind=kind, idem=idem, body=body,
                          at=int(self._clock() if at is None else at),
                          fields={"card": member.card, "amount": str(amount), **extra},
                          need_active=kind == "topup")
        spec["stored"] = str(amount)
        reply = self._post(member.card, spec)
        if reply["ok"]:
            return PurchaseResult(purchase_id(member.card, reply["entry"]),
                                  self._entry(member.card, reply["entry"]), False)
        if reply["why"] == "dup":
            return self._repeat(member.card, None, body_sha(body), idem)
        raise self._refusal(reply, member.card, spec)

    # -- reading -------------------------------------------------------------------------
    def history(self, who: str, count: int = 50) -> list[dict[str, Any]]:
        """The member's purchases, refunds and stored-value movements, newest first."""
        member = find_member(self.members, who)
        kinds = ("purchase", "refund", "topup", "stored_adjust")
        found = []
        for entry in reversed(Ledger(self._redis, self.tenant).history(member.card)):
            if entry.kind in kinds:
                pid = entry.fields.get("refund_of") or purchase_id(member.card, entry.entry_id)
                found.append(PurchaseResult(pid, entry, False).to_json())
                if len(found) >= count:
                    break
        return found

    def balance(self, who: str) -> dict[str, Any]:
        """What the till shows: points, stored value, tier and the tier's discount."""
        member = find_member(self.members, who)
        settings = SettingsStore(self._redis).get(self.tenant)
        ladder = settings.ladder
        pin = member.pinned_tier if member.pinned_tier in ladder.names else None
        status = tier_for(earned_for_tier(member, settings, int(self._clock())), ladder, pin)
        return {"member": member.card, "status": member.status,
                "points": member.balance, "stored_value": member.stored,
                "tier": status.name, "discount_bp": ladder.tier(status.name).discount_bp,
                "spend": member.spend // MINOR_PER_UNIT}

    # -- plumbing ------------------------------------------------------------------------
    def _snapshot(self, card: str, idem: str) -> tuple[Member, bytes | None]:
        pipe = self._redis.pipeline(transaction=False)
        pipe.hgetall(self.keys.member(card))
        pipe.hget(self.keys.idem(card), idem)
        raw, seen = pipe.execute()
        member = self.members.get_from(card, raw)
        if member is None:
            raise UnknownMember(self.tenant, card)
        return member, seen

    def _repeat(self, card: str, seen: bytes | None, sha: str, idem: str) -> PurchaseResult:
        if seen is None:
            seen = self._redis.hget(self.keys.idem(card), idem)
        first_sha, entry_id = seen.decode().split()
        if first_sha != sha:
            raise IdempotencyConflict(idem.partition(":")[2])
        entry = self._entry(card, entry_id)
        pid = entry.fields.get("refund_of") or purchase_id(card, entry_id)
        return PurchaseResult(pid, entry, True)

    def _post(self, card: str, spec: Mapping[str, object]) -> dict:
        raw = self._scripts.ledger_apply(keys=self.keys.member_keys(card),
                                         args=[json.dumps(spec)])
        return json.loads(raw)

    def _entry(self, card: str, entry_id: str) -> Entry:
        return Entry.from_stream(*self._redis.xrange(self.keys.ledger(card), entry_id,
                                                     entry_id)[0])

    def _refusal(self, reply: Mapping, card: str, spec: Mapping) -> Exception:
        if reply["why"] == "insufficient_stored":
            return InsufficientStoredValue(card, int(reply["stored"]), -int(spec["stored"]))
        if reply["why"] == "insufficient" and int(spec.get("need_points", "0") or 0):
            return InsufficientPoints(card, int(reply["balance"]), int(spec["need_points"]))
        return refusal(reply, self.tenant, card, spec)


# -- the sales report -------------------------------------------------------------------------
SALES_BY = ("day", "shop", "product", "tier")
SALES_COLUMNS = ("purchases", "refunds", "qty", "amount_fen", "points")


def sales_rows(
    entries: Iterable[Entry], by: Sequence[str], zone: Any, first: str, last: str,
) -> list[tuple]:
    """Sum purchase lines (less refunded lines) by ``by`` (of ``SALES_BY``), pure.

    The day is the purchase's (or the refund's) day in the tenant's time zone ``zone``,
    from ``first`` to ``last`` inclusive (YYYYMMDD). A purchase's bonuses count as the
    product ``(bonus)``; the tier is the member's tier when it bought.
    """
    unknown = [d for d in by if d not in SALES_BY]
    if unknown or not by:
        raise BadInput("by", ",".join(by), f"group by any of {', '.join(SALES_BY)}")
    totals: dict[tuple, list[int]] = {}
    counted: set[tuple] = set()
    for entry in entries:
        if entry.kind not in ("purchase", "refund"):
            continue
        day = datetime.fromtimestamp(entry.at, zone).strftime("%Y%m%d")
        if not first <= day <= last:
            continue
        f = entry.fields
        sign = 1 if entry.kind == "purchase" else -1
        facts = {"day": f"{day[:4]}-{day[4:6]}-{day[6:]}", "shop": f.get("shop", ""),
                 "tier": f.get("tier_before", "")}
        items = [(ln["sku"], ln["qty"], ln["amount"], ln["points"])
                 for ln in json.loads(f.get("lines", "[]"))]
        bonus = abs(int(f.get("bonus", 0) or 0))
        if bonus:
            items.append(("(bonus)", 0, 0, bonus))
        for sku, qty, amount, points in items:
            key = tuple({**facts, "product": sku}[d] for d in by)
            row = totals.setdefault(key, [0, 0, 0, 0, 0])
            once = (key, entry.entry_id, f.get("card", ""))
            if once not in counted:
                counted.add(once)
                row[0 if sign > 0 else 1] += 1
            row[2] += sign * abs(qty)
            row[3] += sign * abs(amount)
            row[4] += sign * abs(points)
    return [(*key, *values) for key, values in sorted(totals.items())]


def sales_entries(client: redis.Redis, tenant: str, since: int, *,
                  master: MasterKey | None) -> Iterable[Entry]:
    """Every ledger entry posted since ``since`` (unix seconds), member by member.

    Reads each member's ledger from that moment on (ledger ids are posting times, and a
    purchase is never posted before it happened, so nothing in the span is skipped),
    archived entries first (``points archive``).
    """
    members = MemberStore(client, tenant, master=master)
    keys = members.keys
    archive = ArchivedEntries(client, tenant)
    runs = archive.runs()
    for _, entry_id, fields in archive.every(since * 1000):
        yield Entry.from_fields(entry_id, fields)
    start = f"{max(since * 1000, live_from(runs))}-0"
    for card in members.cards():
        for entry_id, raw in client.xrange(keys.ledger(card), start, "+"):
            yield Entry.from_stream(entry_id, raw)
