"""Credit a claimed code's points to its member, exactly once.

The verify script claims a code for a phone and, in the same script, appends
the claim to the code segment's outbox (``PointsKeys.claims``). Then the API
calls ``credit_claim``; ``reconcile.py`` replays the outbox for claims whose
credit a crash cut off. Both may run for one serial at once, any number of
times. Exactly once holds because:

1. **The serial is pinned to one card** (``PointsKeys.credit_pin``, HSETNX in
   the code's slot) the first time anyone credits it. Every later attempt
   credits that card, even if the phone was rebound meanwhile, so no replay
   can find "another member" to credit.
2. **The member's entry is keyed** ``claim:<serial>`` in the member's idem
   hash, checked and written by the script that moves the balance: the first
   attempt posts, every other one gets the first entry back (``duplicate``).
3. **Figures are computed from a snapshot and posted only if it still holds**
   (the record's version ``v``), so the award, the daily cap and the tier of
   two concurrent credits of one member can never both use stale numbers; a
   loser computes again. Campaign budgets are charged before the post and
   refunded if the post does not happen (``campaigns.py``).

A frozen or cancelled member's claim is still posted, with 0 points and a
note: the code is spent, and unfreezing later does not credit it.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import redis

from codegen.exc import UnknownTenant
from codegen.keyspace import segment_of
from codegen.products import Product
from points_bridge.campaigns import CampaignStore, StoredCampaign, parse_all
from points_bridge.exc import Contended
from points_bridge.keyspace import CREDIT_BUCKET_SERIALS, PointsKeys
from points_bridge.ledger import Entry, Ledger, Stale, lot_expiry
from points_bridge.members import ACTIVE, Member, MemberStore, earned_for_tier
from points_bridge.phones import normalize_phone
from points_bridge.rules import Award, ClaimContext, award
from points_bridge.settings import PointsSettings, load
from points_bridge.tiers import tier_for

MAX_ATTEMPTS = 64


@dataclass(frozen=True)
class CreditResult:
    """What a claim earned, for the verify answer; ``duplicate`` for a repeat."""

    points: int
    balance: int
    tier: str
    points_to_next: int | None
    applied_rules: tuple[dict, ...]
    member_card: str
    duplicate: bool
    next_tier: str | None = None
    note: str = ""
    member_created: bool = False

    @classmethod
    def from_entry(cls, entry: Entry, *, duplicate: bool, created: bool = False) -> CreditResult:
        to_next = entry.fields.get("to_next", "")
        return cls(
            points=entry.delta,
            balance=entry.balance,
            tier=entry.tier,
            points_to_next=int(to_next) if to_next else None,
            applied_rules=tuple(json.loads(entry.fields.get("rules", "[]"))),
            member_card=entry.fields.get("card", ""),
            duplicate=duplicate,
            next_tier=entry.fields.get("next_tier") or None,
            note=entry.fields.get("note", ""),
            member_created=created,
        )


@dataclass(frozen=True)
class TenantView:
    """What one credit reads from the tenant slot, in one round trip."""

    settings: PointsSettings
    base_points: int
    campaigns: dict[str, StoredCampaign]


@dataclass(frozen=True)
class Plan:
    """A credit computed from one member snapshot (pure: ``plan_credit``)."""

    award: Award
    day: str
    drop_days: tuple[str, ...]
    tier: str
    next_tier: str | None
    points_to_next: int | None
    lot_expires: int
    note: str


def plan_credit(
    member: Member, view: TenantView, *, sku: str, region: str | None, at: int
) -> Plan:
    """Compute the award and the tier after it, from a member snapshot and the tenant."""
    settings = view.settings
    when = datetime.fromtimestamp(at, settings.timezone)
    day = when.strftime("%Y%m%d")
    note = ""
    if member.status == ACTIVE:
        spent = {cid: c.spent for cid, c in view.campaigns.items()}
        context = ClaimContext(
            sku=sku, base_points=view.base_points, at=when, region=region, tier=member.tier,
            is_birthday=member.is_birthday(when.date()),
            earned_today=member.days.get(day, 0), campaign_spent=spent,
        )
        live = [c.campaign for c in view.campaigns.values() if c.live_at(when)]
        result = award(context, live, settings.policy)
    else:
        result = Award(0, (), False, {})
        note = f"member is {member.status}: no points"
    ladder = settings.ladder
    pin = member.pinned_tier if member.pinned_tier in ladder.names else None
    status = tier_for(earned_for_tier(member, settings, at) + result.points, ladder, pin)
    keep_days = max(ladder.window_days or 1, 2)
    oldest = (when.date() - timedelta(days=keep_days)).strftime("%Y%m%d")
    return Plan(
        award=result,
        day=day,
        drop_days=tuple(d for d in member.days if d < oldest),
        tier=status.name,
        next_tier=status.next_name,
        points_to_next=status.points_to_next,
        lot_expires=lot_expiry(at, settings.expiry_months, settings.timezone),
        note=note,
    )


class ClaimCrediter:
    """Credit claims of every tenant; safe to share between threads."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._redis = client
        self._clock = clock
        self._sleep = sleep

    def credit_claim(
        self,
        tenant: str,
        phone: str,
        serial: int,
        sku: str,
        channel: str = "api",
        region: str | None = None,
        at: int | None = None,
    ) -> CreditResult:
        """Credit the points of ``serial``'s first genuine check to the phone's member."""
        at = int(self._clock() if at is None else at)
        keys = PointsKeys(tenant)
        view = self.tenant_view(tenant, sku)
        e164 = normalize_phone(phone, view.settings.region)
        members = MemberStore(self._redis, tenant, clock=self._clock)
        member, created = members.ensure(e164, settings=view.settings, source="claim")
        card = self._pin(keys, serial, member.card)
        ledger = Ledger(self._redis, tenant, clock=self._clock)
        campaigns = CampaignStore(self._redis, tenant, clock=self._clock)
        idem = f"claim:{serial}"
        for attempt in range(MAX_ATTEMPTS):
            member, seen = ledger.snapshot(card, idem)
            if seen is not None:
                return CreditResult.from_entry(seen, duplicate=True)
            assert member is not None, "a pinned card always has a record"
            plan = plan_credit(member, view, sku=sku, region=region, at=at)
            charges = dict(plan.award.campaign_spend)
            refused = campaigns.reserve(charges, view.campaigns)
            if refused is not None:
                view = _with_spent(view, refused)
                continue
            try:
                posted = ledger.post(
                    card,
                    kind="credit",
                    idem=idem,
                    body={"serial": serial, "sku": sku},
                    delta=plan.award.points,
                    earned=plan.award.points,
                    day=plan.day,
                    drop_days=plan.drop_days,
                    lot_expires=plan.lot_expires,
                    tier=plan.tier,
                    version=member.version,
                    at=at,
                    fields=_entry_fields(card, serial, sku, channel, region, plan),
                )
            except Stale:
                campaigns.refund(charges)
                self._sleep(random.uniform(0, 0.002 * min(attempt + 1, 10)))
                continue
            if posted.duplicate:
                campaigns.refund(charges)
            return CreditResult.from_entry(
                posted.entry, duplicate=posted.duplicate, created=created and not posted.duplicate
            )
        raise Contended(f"member {card} changed {MAX_ATTEMPTS} times during one credit: retry")

    def forget_claim(self, tenant: str, serial: int, outbox_entry: str) -> None:
        """Drop a credited claim from the outbox, which then holds only what is owed.

        Safe at any time: the credit is idempotent by serial, so a reconcile that
        read the entry first credits nothing twice.
        """
        self._redis.xdel(PointsKeys(tenant).claims(segment_of(serial)), outbox_entry)

    def tenant_view(self, tenant: str, sku: str) -> TenantView:
        """Read settings, the SKU's points and the campaigns in one round trip."""
        keys = PointsKeys(tenant)
        pipe = self._redis.pipeline(transaction=False)
        pipe.hgetall(keys.settings)
        pipe.hget(keys.products, sku)
        pipe.hgetall(keys.campaigns)
        pipe.hgetall(keys.campaign_spend)
        record, product, definitions, spend = pipe.execute()
        if not record:
            raise UnknownTenant(tenant)
        settings = load({k.decode(): v.decode() for k, v in record.items()})
        base = Product.from_json(product).points if product else 0
        return TenantView(settings, base, parse_all(definitions, spend))

    def _pin(self, keys: PointsKeys, serial: int, card: str) -> str:
        """Pin the serial's points to ``card`` unless already pinned; return the pinned card."""
        bucket, field = keys.credit_pin(serial), serial % CREDIT_BUCKET_SERIALS
        if self._redis.hsetnx(bucket, field, card):
            return card
        return self._redis.hget(bucket, field).decode()


def _with_spent(view: TenantView, spent: Mapping[str, int]) -> TenantView:
    campaigns = {
        cid: StoredCampaign(c.campaign, c.ended_at, spent.get(cid, c.spent))
        for cid, c in view.campaigns.items()
    }
    return TenantView(view.settings, view.base_points, campaigns)


def _entry_fields(
    card: str, serial: int, sku: str, channel: str, region: str | None, plan: Plan
) -> dict[str, str]:
    rules = [
        {"kind": r.kind, "name": r.name, "delta": r.delta, "limited": r.limited}
        for r in plan.award.applied
    ]
    return {
        "card": card, "serial": str(serial), "sku": sku, "channel": channel,
        "region": region or "", "rules": json.dumps(rules),
        "spend": json.dumps(dict(plan.award.campaign_spend)),
        "to_next": "" if plan.points_to_next is None else str(plan.points_to_next),
        "next_tier": plan.next_tier or "", "note": plan.note,
    }
