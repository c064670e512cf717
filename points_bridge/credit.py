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

**A frozen member's claim waits.** The code is claimed (the verify script
did that), but instead of a ledger entry the script that would post it keeps
the claim in the member shard's pending hash (``PointsKeys.pending``), at the
member's snapshot version, so a concurrent unfreeze makes the post stale and
it is computed again. Unfreezing credits every waiting claim
(``settle_pending``, called by ``MemberStore.change_status``), computed then,
under the rules of its own claim time; ``itemseal points reconcile`` also
settles any a crash left behind. The answer says ``pending``. A cancelled
member's claim is posted with 0 points and a note: a cancellation ends the
membership, and the code stays spent.
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
from codegen.products import Product
from codegen.store.keyspace import (
    CREDIT_BUCKET_SERIALS,
    MEMBER_SHARDS,
    PointsKeys,
    segment_of,
    shard_of,
)
from codegen.store.wire import ScriptSet, Wire, is_error, pack, wire_for
from points_bridge.campaigns import CampaignStore, StoredCampaign, parse_all
from points_bridge.exc import Contended
from points_bridge.ledger import Entry, entry_spec, lot_expiry, refusal
from points_bridge.members import ACTIVE, FROZEN, Member, MemberStore, earned_for_tier
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
    pending: bool = False
    """The member is frozen: the claim waits and is credited on unfreeze."""

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
    elif member.status == FROZEN:
        result = Award(0, (), False, {})
        note = "member is frozen: the points wait until it is unfrozen"
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


CARD_BLOCK = 16  # card numbers a crediter takes from a tenant's counter at a time
KNOWN_CARDS = 65536  # phones whose card one crediter remembers (a guess, checked each time)


@dataclass
class Prefetch:
    """Reads a caller sends in its own round trip so that a credit starts with them.

    Always the phone's index. When this crediter has met the phone before,
    also what ``_read`` would fetch for the card it had then: the serial's
    pin, the card's record and its entry for this claim. That card is only a
    guess; the reads are used only if the index, read in the same round trip,
    still names it. ``replies`` is set by the caller, in ``commands`` order.
    """

    e164: str
    guess: str | None
    commands: list[bytes]
    replies: list | None = None


class ClaimCrediter:
    """Credit claims of every tenant; safe to share between threads and greenlets.

    The usual claim (a member who exists, no budgeted campaign) costs three
    round trips after the verify script's: a read of the pin and the member's
    snapshot, the pin, the post. The API sends a ``prefetch`` with the verify
    script itself: the phone-index read and, for a phone this crediter has
    met, the snapshot read too, which leaves two. A new member needs no read
    but claims the phone's index and creates its record: four. Commands go
    packed over a ``Wire`` (``wire.py``); the new member and a budget charge
    use the stores' own methods.
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
        self._cards: dict[tuple[str, str], str] = {}
        self._members: dict[str, MemberStore] = {}

    def prefetch(self, tenant: str, e164: str, serial: int) -> Prefetch:
        """The reads to send ahead of ``credit_claim(..., prefetch=)`` (see ``Prefetch``)."""
        keys = PointsKeys(tenant)
        guess = self._cards.get((tenant, e164))
        commands = [pack(b"GET", keys.phone(e164).encode())]
        if guess is not None:
            commands += _read_commands(keys, serial, guess.encode(), pin=True)
        return Prefetch(e164, guess, commands)

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
        prefetch: Prefetch | None = None,
    ) -> CreditResult:
        """Credit the points of ``serial``'s first genuine check to the phone's member.

        ``prefetch``: from ``prefetch``, its replies read by the caller, to
        save those reads here.
        """
        at = int(self._clock() if at is None else at)
        keys = PointsKeys(tenant)
        view = self.tenant_view(tenant, sku)
        e164 = normalize_phone(phone, view.settings.region)
        if prefetch is not None and prefetch.e164 == e164 and prefetch.replies is not None:
            card, *guessed = _checked(prefetch.replies)
        else:
            prefetch, guessed = None, []
            card = self._run(pack(b"GET", keys.phone(e164).encode()))[0]
        idem = claim_idem(serial)
        if card is None:  # no member yet: the pin below reports any pin made meanwhile
            pinned, member, seen = None, None, None
        elif guessed and prefetch.guess == card.decode():
            pinned, member, seen = _parse_read(keys, card, guessed, pin=True)
        else:
            pinned, member, seen = self._read(keys, serial, card, idem)
        read_card = member.card if member else None
        created = False
        if pinned is None:
            if member is None or member.phone != e164:  # no member yet, or mid-rebind
                member, created = self._member_store(tenant).ensure(
                    e164, settings=view.settings, source="claim", index_empty=card is None
                )
                read_card, seen = member.card, None  # a post finds any earlier entry (dup)
            pinned = self._pin(keys, serial, member.card)
        self._remember(tenant, e164, member.card if member and member.phone == e164 else None)
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

    def settle_pending(self, tenant: str, card: str | None = None) -> tuple[int, int]:
        """Credit the claims that wait for their members (one card's, or the tenant's).

        A claim whose member is still frozen stays (the post parks it again);
        every other one is credited, idempotently by serial, and leaves the
        pending hash in the script that posts it. Returns (claims credited,
        points). Safe to run at any time, from any number of processes.
        """
        keys = PointsKeys(tenant)
        shards = [shard_of(card)] if card is not None else range(MEMBER_SHARDS)
        credited = points = 0
        for shard in shards:
            prefix = f"{card}/" if card is not None else ""
            for field, raw in self._redis.hscan_iter(keys.pending(shard), match=f"{prefix}*"):
                claim = json.loads(raw)
                result = self.credit_claim(
                    tenant, claim["phone"], int(claim["serial"]), claim["sku"],
                    claim.get("channel") or "api", claim.get("region") or None, int(claim["at"]),
                )
                if not result.pending and not result.duplicate:
                    credited += 1
                    points += result.points
                elif result.duplicate:  # credited elsewhere meanwhile: the hash is stale
                    self._redis.hdel(keys.pending(shard), field)
        return credited, points

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
        return _checked(self.wire.call(b"".join(commands), len(commands)))

    def _read(
        self, keys: PointsKeys, serial: int, card: bytes, idem: str, *, pin: bool = True
    ) -> tuple[str | None, Member | None, bytes | None]:
        """Read the serial's pin and ``card``'s record and entry for ``idem``, one round trip."""
        replies = self._run(*_read_commands(keys, serial, card, pin=pin))
        return _parse_read(keys, card, replies, pin=pin)

    def _member_store(self, tenant: str) -> MemberStore:
        store = self._members.get(tenant)
        if store is None:
            store = MemberStore(self._redis, tenant, clock=self._clock, card_block=CARD_BLOCK)
            self._members[tenant] = store
        return store

    def learn(self, tenant: str, prefetch: Prefetch) -> None:
        """Keep the card a prefetch found for its phone when no credit followed (a repeat
        check), so the phone's next claim can be read ahead."""
        card = prefetch.replies[0] if prefetch.replies else None
        if isinstance(card, bytes):
            self._remember(tenant, prefetch.e164, card.decode())

    def _remember(self, tenant: str, e164: str, card: str | None) -> None:
        """Keep the phone's card as next time's guess (``Prefetch``), or forget it."""
        if card is None:
            self._cards.pop((tenant, e164), None)
            return
        if len(self._cards) >= KNOWN_CARDS:
            self._cards.clear()
        self._cards[(tenant, e164)] = card

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
        spec["pending_field"] = pending_field(card, serial)
        if member.status == FROZEN:
            spec["park"] = json.dumps({"phone": member.phone, "serial": serial, "sku": sku,
                                       "channel": channel, "region": region or "", "at": at})
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
        if reply["why"] == "parked":
            return replace(_result(plan, card, {"balance": member.balance, "tier": member.tier}),
                           pending=True)
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


def pending_field(card: str, serial: int) -> str:
    """The field of a waiting claim in its member shard's pending hash."""
    return f"{card}/{serial}"


def claim_idem(serial: int) -> str:
    """The idempotency key of a claim's credit in its member's idem hash."""
    return f"claim:{serial}"


def _checked(replies: list) -> list:
    for reply in replies:
        if is_error(reply):
            raise redis.ResponseError(str(reply))
    return replies


def _read_commands(keys: PointsKeys, serial: int, card: bytes, *, pin: bool) -> list[bytes]:
    """The serial's pin (if ``pin``), ``card``'s record and its entry for the claim."""
    name = card.decode()
    commands = [
        pack(b"HGETALL", keys.member(name).encode()),
        pack(b"HGET", keys.idem(name).encode(), claim_idem(serial).encode()),
    ]
    if pin:
        bucket, field = keys.credit_pin(serial), serial % CREDIT_BUCKET_SERIALS
        commands.insert(0, pack(b"HGET", bucket.encode(), b"%d" % field))
    return commands


def _parse_read(
    keys: PointsKeys, card: bytes, replies: list, *, pin: bool
) -> tuple[str | None, Member | None, bytes | None]:
    """(pin, member, entry) from the replies to ``_read_commands``."""
    pinned = None
    if pin:
        found, *replies = replies
        pinned = found.decode() if found is not None else None
    raw, seen = replies
    pairs = raw.items() if isinstance(raw, dict) else zip(raw[::2], raw[1::2], strict=True)
    fields = {k.decode(): v.decode() for k, v in pairs}  # RESP3 clients give a map
    name = card.decode()
    member = Member.from_record(keys.tenant, name, fields) if fields.get("status") else None
    return pinned, member, seen


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
