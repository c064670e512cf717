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
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import redis

from codegen.exc import UnknownTenant
from codegen.keyspace import segment_of
from codegen.products import Product
from points_bridge.campaigns import CampaignStore, StoredCampaign, parse_all
from points_bridge.exc import Contended
from points_bridge.keyspace import CREDIT_BUCKET_SERIALS, PointsKeys
from points_bridge.ledger import Entry, entry_spec, lot_expiry, refusal
from points_bridge.members import ACTIVE, Member, MemberStore, earned_for_tier
from points_bridge.phones import normalize_phone
from points_bridge.rules import Award, ClaimContext, award
from points_bridge.settings import PointsSettings, load
from points_bridge.tiers import tier_for
from points_bridge.wire import ScriptSet, Wire, is_error, pack, wire_for

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


UNKNOWN = object()  # no phone-index lookup made yet (``credit_claim``'s ``card``)


class ClaimCrediter:
    """Credit claims of every tenant; safe to share between threads and greenlets.

    The usual claim (a member who exists, no budgeted campaign) costs two
    round trips after the verify script's: one that pins the serial and reads
    the member's snapshot, one that posts; the API sends the phone-index read
    with the verify script itself (``card``). Commands go packed over a
    ``Wire`` (``wire.py``); the rare paths (a new member, a budget charge) use
    the stores' own methods.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        wire: Wire | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        view_seconds: float = 0.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = client
        self._clock = clock
        self._sleep = sleep
        self.wire = wire or wire_for(client)
        self._scripts = ScriptSet(self.wire, "points_bridge", ("ledger_apply",))
        self._view_seconds = view_seconds
        self._monotonic = monotonic
        self._views: dict[tuple[str, str], tuple[float, TenantView]] = {}

    def credit_claim(
        self,
        tenant: str,
        phone: str,
        serial: int,
        sku: str,
        channel: str = "api",
        region: str | None = None,
        at: int | None = None,
        *,
        card: object = UNKNOWN,
    ) -> CreditResult:
        """Credit the points of ``serial``'s first genuine check to the phone's member.

        ``card`` is what the phone's index held when the caller read it
        (``bytes``, or ``None`` for no member yet), to save that read.
        """
        at = int(self._clock() if at is None else at)
        keys = PointsKeys(tenant)
        view = self.tenant_view(tenant, sku)
        e164 = normalize_phone(phone, view.settings.region)
        if card is UNKNOWN:
            card = self._run(pack(b"GET", keys.phone(e164).encode()))[0]
        idem = f"claim:{serial}"
        pinned, member, seen = self._read(keys, serial, card, idem)
        read_card = member.card if member else None
        created = False
        if pinned is None:
            if member is None or member.phone != e164:  # no member yet, or mid-rebind
                member, created = MemberStore(self._redis, tenant, clock=self._clock).ensure(
                    e164, settings=view.settings, source="claim"
                )
            pinned = self._pin(keys, serial, member.card)
        if read_card != pinned:
            _, member, seen = self._read(keys, serial, pinned.encode(), idem, pin=False)
        for attempt in range(MAX_ATTEMPTS):
            if seen is not None:
                return CreditResult.from_entry(self._entry(keys, pinned, seen), duplicate=True)
            assert member is not None, "a pinned card always has a record"
            outcome = self._post(keys, member, view, serial, sku, channel, region, at, idem)
            if isinstance(outcome, CreditResult):
                return replace(outcome, member_created=created)
            if isinstance(outcome, TenantView):  # a campaign's budget ran out meanwhile
                view = outcome
            else:
                self._sleep(random.uniform(0, 0.002 * min(attempt + 1, 10)))
            _, member, seen = self._read(keys, serial, pinned.encode(), idem, pin=False)
        raise Contended(f"member {pinned} changed {MAX_ATTEMPTS} times during one credit: retry")

    def forget_claim(self, tenant: str, serial: int, outbox_entry: str) -> None:
        """Drop a credited claim from the outbox, which then holds only what is owed.

        Safe at any time, and sent without waiting: the credit is idempotent
        by serial, so a reconcile that reads the entry first, or finds it
        still there because this was lost, credits nothing twice.
        """
        stream = PointsKeys(tenant).claims(segment_of(serial))
        self.wire.post(pack(b"XDEL", stream.encode(), outbox_entry.encode()))

    def tenant_view(self, tenant: str, sku: str) -> TenantView:
        """Read settings, the SKU's points and the campaigns in one round trip.

        Kept ``view_seconds`` (the API: a few seconds, like its catalog), so a
        rule change applies within that time; budgets are charged atomically
        whatever the view said (``campaigns.reserve``).
        """
        now = self._monotonic()
        cached = self._views.get((tenant, sku))
        if cached is not None and cached[0] > now:
            return cached[1]
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
        view = TenantView(settings, base, parse_all(definitions, spend))
        if self._view_seconds > 0:
            if len(self._views) > 4096:
                self._views.clear()
            self._views[(tenant, sku)] = (now + self._view_seconds, view)
        return view

    # -- internals ----------------------------------------------------------------------

    def _run(self, *commands: bytes) -> list:
        replies = self.wire.call(b"".join(commands), len(commands))
        for reply in replies:
            if is_error(reply):
                raise redis.ResponseError(str(reply))
        return replies

    def _read(
        self, keys: PointsKeys, serial: int, card: bytes | None, idem: str, *, pin: bool = True
    ) -> tuple[str | None, Member | None, bytes | None]:
        """Read the serial's pin and ``card``'s record and entry for ``idem``, one round trip."""
        commands = []
        if pin:
            bucket, field = keys.credit_pin(serial), serial % CREDIT_BUCKET_SERIALS
            commands.append(pack(b"HGET", bucket.encode(), b"%d" % field))
        if card is not None:
            name = card.decode()
            commands.append(pack(b"HGETALL", keys.member(name).encode()))
            commands.append(pack(b"HGET", keys.idem(name).encode(), idem.encode()))
        replies = self._run(*commands) if commands else []
        pinned = None
        if pin:
            found = replies.pop(0)
            pinned = found.decode() if found is not None else None
        if card is None:
            return pinned, None, None
        raw, seen = replies
        pairs = raw.items() if isinstance(raw, dict) else zip(raw[::2], raw[1::2], strict=True)
        fields = {k.decode(): v.decode() for k, v in pairs}  # RESP3 clients give a map
        member = Member.from_record(keys.tenant, name, fields) if fields.get("status") else None
        return pinned, member, seen

    def _pin(self, keys: PointsKeys, serial: int, card: str) -> str:
        """Pin the serial's points to ``card`` unless already pinned; return the pinned card."""
        bucket, field = keys.credit_pin(serial).encode(), b"%d" % (serial % CREDIT_BUCKET_SERIALS)
        won, pinned = self._run(
            pack(b"HSETNX", bucket, field, card.encode()), pack(b"HGET", bucket, field)
        )
        return card if won else pinned.decode()

    def _post(
        self,
        keys: PointsKeys,
        member: Member,
        view: TenantView,
        serial: int,
        sku: str,
        channel: str,
        region: str | None,
        at: int,
        idem: str,
    ) -> CreditResult | TenantView | None:
        """Post one attempt: the result, a fresher view (budget refused) or None (stale)."""
        plan = plan_credit(member, view, sku=sku, region=region, at=at)
        charges = dict(plan.award.campaign_spend)
        campaigns = CampaignStore(self._redis, keys.tenant, clock=self._clock) if charges else None
        refused = campaigns.reserve(charges, view.campaigns) if campaigns else None
        if refused is not None:
            return _with_spent(view, refused)
        card = member.card
        spec = entry_spec(
            card, kind="credit", idem=idem, body={"serial": serial, "sku": sku},
            delta=plan.award.points, earned=plan.award.points, day=plan.day,
            drop_days=plan.drop_days, lot_expires=plan.lot_expires, tier=plan.tier,
            version=member.version, at=at,
            fields=_entry_fields(card, serial, sku, channel, region, plan),
            member_set=check_fields(sku, region, at),
        )
        call = self._scripts.evalsha(
            "ledger_apply", keys.member_keys(card), (json.dumps(spec).encode(),)
        )
        reply = json.loads(self._scripts.run([call])[0])
        if reply["ok"]:
            return _result(plan, card, reply)
        if campaigns:
            campaigns.refund(charges)
        if reply["why"] == "dup":
            entry = self._entry(keys, card, None, entry_id=reply["entry"])
            return CreditResult.from_entry(entry, duplicate=True)
        if reply["why"] == "stale":
            return None
        raise refusal(reply, keys.tenant, card, spec)

    def _entry(
        self, keys: PointsKeys, card: str, seen: bytes | None, *, entry_id: str = ""
    ) -> Entry:
        """Read one ledger entry, by id or by the idem hash's ``<sha> <entry id>``."""
        entry_id = entry_id or seen.decode().split()[1]
        stream = keys.ledger(card).encode()
        found = self._run(pack(b"XRANGE", stream, entry_id.encode(), entry_id.encode()))[0]
        entry_id, flat = found[0]
        return Entry.from_stream(entry_id, dict(zip(flat[::2], flat[1::2], strict=True)))


def _result(plan: Plan, card: str, reply: Mapping) -> CreditResult:
    """The credit as posted: figures from the plan, balance and tier from the script."""
    return CreditResult(
        points=plan.award.points,
        balance=int(reply["balance"]),
        tier=reply["tier"] or plan.tier,
        points_to_next=plan.points_to_next,
        applied_rules=tuple(_rules(plan)),
        member_card=card,
        duplicate=False,
        next_tier=plan.next_tier,
        note=plan.note,
    )


def _with_spent(view: TenantView, spent: Mapping[str, int]) -> TenantView:
    campaigns = {
        cid: StoredCampaign(c.campaign, c.ended_at, spent.get(cid, c.spent))
        for cid, c in view.campaigns.items()
    }
    return TenantView(view.settings, view.base_points, campaigns)


def _entry_fields(
    card: str, serial: int, sku: str, channel: str, region: str | None, plan: Plan
) -> dict[str, str]:
    return {
        "card": card, "serial": str(serial), "sku": sku, "channel": channel,
        "region": region or "", "rules": json.dumps(_rules(plan)),
        "spend": json.dumps(dict(plan.award.campaign_spend)),
        "to_next": "" if plan.points_to_next is None else str(plan.points_to_next),
        "next_tier": plan.next_tier or "", "note": plan.note,
    }


def check_fields(sku: str, region: str | None, at: int) -> dict[str, str]:
    """What a credited check records on the member for segments (``segments.py``).

    Only a credited (first genuine) check passes here, so ``last_check_at``
    is the last check that earned points; ``sku:<SKU>`` marks the products
    the member has checked, as fields of the member's own hash (one key,
    one slot).
    """
    fields = {"last_check_at": str(at), f"sku:{sku}": str(at)}
    if region:
        fields["last_region"] = region
    return fields


def _rules(plan: Plan) -> list[dict]:
    return [
        {"kind": r.kind, "name": r.name, "delta": r.delta, "limited": r.limited}
        for r in plan.award.applied
    ]
