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

import asyncio
import functools
import json
import os
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, tzinfo

import orjson
import redis

from codegen.exc import StoreError
from codegen.keys import MasterKey
from codegen.products import Product
from codegen.store.keyspace import (
    CREDIT_BUCKET_SERIALS,
    MEMBER_SHARDS,
    PointsKeys,
    segment_of,
    shard_of,
)
from codegen.store.wire import (
    Link,
    ScriptSet,
    call,
    hash_pairs,
    is_error,
    link_for,
    pack,
    text_pairs,
)
from codegen.tenants import tenant_from_record
from points_bridge.campaigns import StoredCampaign, parse_all, reserve_args, reserve_refused
from points_bridge.cards import (
    CARD_KEY_BYTES,
    card_master,
    card_number,
    open_card_key,
    seal_card_key,
)
from points_bridge.exc import Contended
from points_bridge.ledger import Entry, claim_sha, entry_spec, lot_expiry, refusal
from points_bridge.members import (
    ACTIVE,
    FROZEN,
    CardBlocks,
    Member,
    earned_for_tier,
    index_value,
    new_member_fields,
    parse_index,
)
from points_bridge.phones import normalize_phone
from points_bridge.rules import Award, ClaimContext, award
from points_bridge.settings import PointsSettings, load
from points_bridge.tiers import tier_for

MAX_ATTEMPTS = 64
SCRIPT_NAMES = ("ledger_apply", "member_update", "reserve_spend", "del_if")


@dataclass(slots=True)  # not frozen: made on every credit (ARCHITECTURE.md)
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


@dataclass(slots=True)  # not frozen: made on every credit (ARCHITECTURE.md)
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
    rules: tuple[tuple[dict, ...], str]
    """The applied rules as the answer gives them, and as the entry's JSON (``_rules_of``)."""


def plan_credit(
    member: Member, view: TenantView, *, sku: str, region: str | None, at: int
) -> Plan:
    """Compute the award and the tier after it, from a member snapshot and the tenant."""
    settings = view.settings
    ladder = settings.ladder
    when, day, oldest = _days_of(at, settings.timezone, max(ladder.window_days or 1, 2))
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
    pin = member.pinned_tier if member.pinned_tier and member.pinned_tier in ladder.names else None
    counted = 0 if ladder.basis == "spend" else result.points  # a code's points are no spend
    status = tier_for(earned_for_tier(member, settings, at) + counted, ladder, pin)
    return Plan(
        award=result,
        day=day,
        drop_days=tuple(d for d in member.days if d < oldest),
        tier=status.name,
        next_tier=status.next_name,
        points_to_next=status.points_to_next,
        lot_expires=lot_expiry(at, settings.expiry_months, settings.timezone),
        note=note,
        rules=_rules_of(tuple((r.kind, r.name, r.delta, r.limited) for r in result.applied)),
    )


@functools.lru_cache(maxsize=1024)
def _days_of(at: int, zone: tzinfo, keep_days: int) -> tuple[datetime, str, str]:
    """(local time of ``at``, its day, the oldest day field a member keeps).

    The credits of one second share these: a dict hit instead of a time-zone
    conversion and two ``strftime`` per first check.
    """
    when = datetime.fromtimestamp(at, zone)
    oldest = (when.date() - timedelta(days=keep_days)).strftime("%Y%m%d")
    return when, when.strftime("%Y%m%d"), oldest


CARD_BLOCK = 16  # card numbers a crediter takes from a tenant's counter at a time
KNOWN_CARDS = 65536  # phones whose card one crediter remembers (a guess, checked each time)


@dataclass
class Prefetch:
    """What a check sends in its own round trip so that its claim's credit needs one more.

    For a phone this crediter has met: the phone's index and, for the card it
    had then (``guess``), the card's record, used only if the index still
    names that card (an entry already posted for this claim, a retry's, is
    found by the post itself: ``ledger_apply``'s ``dup``). For a phone it has not
    met: a card reserved for the phone (``SET NX`` of ``CARD?AT`` on its
    index, ``fresh``) and the index read back, so that a new member can be
    created and credited in the next round trip; a phone that already has a
    card keeps it, and the fresh number goes back to the block.
    ``replies`` is set by the caller, in ``commands`` order.
    """

    e164: str
    guess: str | None
    fresh: tuple[int, str] | None
    commands: list[bytes]
    replies: list | None = None


class ClaimCrediter:
    """Credit claims of every tenant over an asyncio link; one per worker, shared by requests.

    The API's first attempt (``credit_after_check``) costs one round trip
    after the check's own, for a new member as for one this worker has met
    (``Prefetch``): the serial's pin and the post (with the new member's
    record) go together. A member this worker has not met costs one more,
    to read it (then the worker knows its card). Reconcile and every retry
    take the careful path, ``credit_claim``: index, read, pin, post, each its
    own round trip.
    """

    def __init__(
        self,
        link: Link,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        view_seconds: float = 0.0,
        monotonic: Callable[[], float] = time.monotonic,
        random_bytes: Callable[[int], bytes] = os.urandom,
        card_block: int = CARD_BLOCK,
        master: MasterKey | None = None,
    ) -> None:
        """``master`` opens the tenant's card key, which a new member's card needs."""
        self._clock = clock
        self._master = master
        self._card_block = card_block
        self._sleep = sleep
        self.link = link
        self._scripts = ScriptSet(link, "points_bridge", SCRIPT_NAMES)
        self._view_seconds = view_seconds
        self._monotonic = monotonic
        self._random = random_bytes
        self._views: dict[tuple[str, str], tuple[float, TenantView]] = {}
        self._cards: dict[tuple[str, str], str] = {}
        self._blocks: dict[str, CardBlocks] = {}
        self._secrets: dict[str, bytes] = {}

    # -- the API's first attempt ---------------------------------------------------------

    async def prefetch(self, tenant: str, e164: str, serial: int) -> Prefetch:
        """The commands to send with the check (see ``Prefetch``)."""
        keys = PointsKeys(tenant)
        index = keys.phone(e164).encode()
        guess = self._cards.get((tenant, e164))
        if guess is not None:
            # the record only: an entry already posted for this claim, the post finds (dup)
            commands = [pack(b"GET", index), pack(b"HGETALL", keys.member(guess).encode())]
            return Prefetch(e164, guess, None, commands)
        seq, card = await self._fresh_card(tenant)
        reserved = index_value(card, int(self._clock())).encode()
        commands = [pack(b"SET", index, reserved, b"NX"), pack(b"GET", index)]
        return Prefetch(e164, None, (seq, card), commands)

    def learn(self, tenant: str, prefetch: Prefetch) -> None:
        """After a check that claimed nothing: keep the phone's card, return a fresh number."""
        card = self._settle_prefetch(tenant, prefetch)[0]
        if card is not None:
            self._remember(tenant, prefetch.e164, card)

    async def credit_after_check(
        self, tenant: str, prefetch: Prefetch, serial: int, sku: str, channel: str,
        region: str | None, at: int,
    ) -> CreditResult:
        """Credit the claim the check just made, with what its round trip read."""
        card, snapshot = self._settle_prefetch(tenant, prefetch)
        e164 = prefetch.e164
        if card is None:  # an index read that cannot be: take the careful path
            return await self.credit_claim(tenant, e164, serial, sku, channel, region, at)
        self._remember(tenant, e164, card)
        keys = PointsKeys(tenant)
        view = await self.tenant_view(tenant, sku)
        if snapshot is None:  # a card reserved for this phone: maybe no member yet
            fields = new_member_fields(card, e164, view.settings.ladder.tiers[0].name, "claim",
                                       at)
            member = Member.from_record(tenant, card, {**fields, "v": "1"})
            return await self._pin_and_post(keys, member, view, serial, sku, channel, region,
                                            at, create=self._create(keys, fields, at))
        member, seen = snapshot
        if member is None and seen is None:  # a member this worker had not met: read it
            _, member, seen = await self._read(keys, serial, card.encode(), claim_idem(serial),
                                               pin=False)
        if member is None or member.phone != e164 or seen is not None:
            return await self.credit_claim(tenant, e164, serial, sku, channel, region, at)
        return await self._pin_and_post(keys, member, view, serial, sku, channel, region, at)

    def _settle_prefetch(
        self, tenant: str, prefetch: Prefetch
    ) -> tuple[str | None, tuple[Member | None, bytes | None] | None]:
        """(the phone's card, (member, None) as read, or (None, None) if unread).

        The snapshot is None for the card this check reserved for the phone:
        a new member, whose record the credit creates. A fresh number the
        phone did not need goes back to the block.
        """
        replies = _checked(prefetch.replies or [])
        if prefetch.guess is not None:
            card, _ = parse_index(replies[0])
            if card != prefetch.guess:
                return card, ((None, None) if card else None)
            return card, (_member_of(tenant, card, replies[1]), None)
        seq, fresh = prefetch.fresh
        won, (card, _) = replies[0] is not None, parse_index(replies[1])
        if not won:  # the phone had a card already: a member (or one in the making), unread
            self._block(tenant).give_back(seq)
            return card, (None, None)
        return card, None

    async def _pin_and_post(
        self, keys: PointsKeys, member: Member, view: TenantView, serial: int, sku: str,
        channel: str, region: str | None, at: int, *, create: bytes | None = None,
    ) -> CreditResult:
        """Pin the serial to ``member`` and post its credit in one round trip.

        Both go at once because, right after the check that claimed the code,
        no other attempt can have pinned it: reconcile takes only claims older
        than its ``min_age``. Should one have (a worker stalled that long, and
        the phone rebound meanwhile), the post to the wrong card is reversed
        and the pinned card credited: still exactly once.
        """
        idem = claim_idem(serial)
        plan = plan_credit(member, view, sku=sku, region=region, at=at)
        if plan.award.campaign_spend:  # a budget to charge first: the careful path
            return await self.credit_claim(keys.tenant, member.phone, serial, sku, channel,
                                           region, at)
        bucket, field = keys.credit_pin(serial).encode(), b"%d" % (serial % CREDIT_BUCKET_SERIALS)
        spec = _credit_spec(member, plan, serial, sku, channel, region, at, idem)
        # The pin's HGET only when the HSETNX lost (rare: a later round trip): each reads
        # the whole pin hash, a listpack of up to 128 fields (~11k Redis instructions).
        calls = [pack(b"HSETNX", bucket, field, member.card.encode())]
        if create is not None:
            calls.append(create)
        calls.append(self._scripts.evalsha("ledger_apply", keys.member_keys(member.card),
                                           (_json(spec),)))
        replies = await self._scripts.run(calls)
        created = create is not None and orjson.loads(replies[1])["ok"]
        reply = orjson.loads(replies[-1])
        pinned = member.card
        if replies[0] != 1:
            pinned = (await self._run(pack(b"HGET", bucket, field)))[0].decode()
        if pinned != member.card:
            if reply["ok"]:
                await self._reverse(keys, member.card, serial, sku, plan, at)
            return await self.credit_claim(keys.tenant, member.phone, serial, sku, channel,
                                           region, at)
        if reply["ok"]:
            return _result(plan, member.card, reply, member_created=created)
        if reply["why"] == "dup":
            entry = await self._entry(keys, member.card, None, entry_id=reply["entry"])
            return CreditResult.from_entry(entry, duplicate=True)
        if reply["why"] == "parked":
            return replace(_parked(plan, member), member_created=created)
        # stale (the member changed since the read) or missing: the careful path
        return await self.credit_claim(keys.tenant, member.phone, serial, sku, channel, region,
                                       at)

    async def _reverse(
        self, keys: PointsKeys, card: str, serial: int, sku: str, plan: Plan, at: int
    ) -> None:
        """Take back a credit posted to a card the serial turned out not to be pinned to.

        The points leave the balance, the earned total and the day they were counted in (as a
        refund's do), and the points report's issued column (``counters.py``).
        """
        points = plan.award.points
        spec = entry_spec(card, kind="reversal", idem=f"unclaim:{serial}",
                          body={"serial": serial}, delta=-points, earned=-points,
                          undo_day=plan.day, at=at,
                          fields={"serial": str(serial), "sku": sku,
                                  "note": "credited to the pinned card"})
        call = self._scripts.evalsha("ledger_apply", keys.member_keys(card), (_json(spec),))
        reply = orjson.loads((await self._scripts.run([call]))[0])
        if not reply["ok"] and reply["why"] != "dup":
            raise refusal(reply, keys.tenant, card, spec)

    # -- the careful path (reconcile, retries) ------------------------------------------

    async def credit_claim(
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
        view = await self.tenant_view(tenant, sku)
        e164 = normalize_phone(phone, view.settings.region)
        card, _ = parse_index((await self._run(pack(b"GET", keys.phone(e164).encode())))[0])
        idem = claim_idem(serial)
        if card is None:  # no member yet: the pin below reports any pin made meanwhile
            pinned, member, seen = None, None, None
        else:
            pinned, member, seen = await self._read(keys, serial, card.encode(), idem)
        read_card = member.card if member else None
        created = False
        if pinned is None:
            if member is None or member.phone != e164:  # no member yet, or mid-rebind
                member, created = await self.ensure_member(tenant, e164, view.settings, at,
                                                           index_empty=card is None)
                read_card, seen = member.card, None  # a post finds any earlier entry (dup)
            pinned = await self._pin(keys, serial, member.card)
        self._remember(tenant, e164, member.card if member and member.phone == e164 else None)
        if read_card != pinned:
            _, member, seen = await self._read(keys, serial, pinned.encode(), idem, pin=False)
        for attempt in range(MAX_ATTEMPTS):
            if seen is not None:
                entry = await self._entry(keys, pinned, seen)
                return CreditResult.from_entry(entry, duplicate=True)
            assert member is not None, "a pinned card always has a record"
            outcome = await self._post(keys, member, view, serial, sku, channel, region, at,
                                       idem)
            if isinstance(outcome, CreditResult):
                return replace(outcome, member_created=created)
            if isinstance(outcome, TenantView):  # a campaign's budget ran out meanwhile
                view = outcome
            else:
                await self._sleep(random.uniform(0, 0.002 * min(attempt + 1, 10)))
            _, member, seen = await self._read(keys, serial, pinned.encode(), idem, pin=False)
        raise Contended(f"member {pinned} changed {MAX_ATTEMPTS} times during one credit: retry")

    async def forget_claim(self, tenant: str, serial: int, outbox_entry: str) -> None:
        """Drop a credited claim from the outbox, which then holds only what is owed.

        Safe at any time, and sent without waiting: the credit is idempotent
        by serial, so a reconcile that reads the entry first, or finds it
        still there because this was lost, credits nothing twice.
        """
        stream = PointsKeys(tenant).claims(segment_of(serial))
        await self.link.post(pack(b"XDEL", stream.encode(), outbox_entry.encode()))

    async def tenant_view(self, tenant: str, sku: str) -> TenantView:
        """Read settings, the SKU's points and the campaigns in one round trip.

        Kept ``view_seconds`` (the API: a few seconds, like its catalog), so a
        rule change applies within that time; budgets are charged atomically
        whatever the view said (``reserve_spend.lua``).
        """
        now = self._monotonic()
        cached = self._views.get((tenant, sku))
        if cached is not None and cached[0] > now:
            return cached[1]
        keys = PointsKeys(tenant)
        record, product, definitions, spend = await self._run(
            pack(b"HGETALL", keys.settings.encode()),
            pack(b"HGET", keys.products.encode(), sku.encode()),
            pack(b"HGETALL", keys.campaigns.encode()),
            pack(b"HGETALL", keys.campaign_spend.encode()),
        )
        settings = load(tenant_from_record(tenant, hash_pairs(record)).settings)
        base = Product.from_json(product).points if product else 0
        view = TenantView(settings, base, parse_all(hash_pairs(definitions), hash_pairs(spend)))
        if self._view_seconds > 0:
            if len(self._views) > 4096:
                self._views.clear()
            self._views[(tenant, sku)] = (now + self._view_seconds, view)
        return view

    # -- internals ----------------------------------------------------------------------

    async def _run(self, *commands: bytes) -> list:
        return await call(self.link, *commands)

    async def _read(
        self, keys: PointsKeys, serial: int, card: bytes, idem: str, *, pin: bool = True
    ) -> tuple[str | None, Member | None, bytes | None]:
        """Read the serial's pin and ``card``'s record and entry for ``idem``, one round trip."""
        replies = await self._run(*_read_commands(keys, serial, card, pin=pin))
        return _parse_read(keys, card, replies, pin=pin)

    def _block(self, tenant: str) -> CardBlocks:
        blocks = self._blocks.get(tenant)
        if blocks is None:
            blocks = self._blocks[tenant] = CardBlocks(self._card_block)
        return blocks

    async def _fresh_card(self, tenant: str) -> tuple[int, str]:
        """A card number no member has: (its sequence number, the card)."""
        keys = PointsKeys(tenant)
        secret = self._secrets.get(tenant)
        if secret is None:  # made sealed by whoever needs it first (SET NX), then kept
            master = card_master(self._master)
            fresh = seal_card_key(master, tenant, self._random(CARD_KEY_BYTES), self._random(12))
            key = keys.card_secret.encode()
            _, stored = await self._run(pack(b"SET", key, fresh, b"NX"), pack(b"GET", key))
            secret, raw = open_card_key(master, tenant, stored)
            if raw:  # written by an older version: seal the same key in place
                await self._run(pack(b"SET", key, seal_card_key(master, tenant, secret,
                                                                self._random(12)), b"XX"))
            self._secrets[tenant] = secret
        blocks = self._block(tenant)
        while (seq := blocks.take()) is None:
            (end,) = await self._run(pack(b"INCRBY", keys.card_counter.encode(),
                                          b"%d" % blocks.size))
            blocks.add(end)
        return seq, card_number(seq, secret)

    async def ensure_member(
        self, tenant: str, e164: str, settings: PointsSettings, at: int, *,
        source: str = "claim", index_empty: bool = False,
    ) -> tuple[Member, bool]:
        """The member of a phone, made if there is none; and whether it was made now.

        As ``MemberStore.ensure``, over the link (claims, the SMS join). A
        record mid-rebind to this phone is left to the rebind (``Contended``).
        """
        keys = PointsKeys(tenant)
        index = keys.phone(e164).encode()
        for attempt in range(8):
            raw = None if index_empty and attempt == 0 else (await self._run(pack(b"GET",
                                                                                 index)))[0]
            if raw is None:
                seq, fresh = await self._fresh_card(tenant)
                won, raw = await self._run(pack(b"SET", index, fresh.encode(), b"NX"),
                                           pack(b"GET", index))
                if won is None:
                    self._block(tenant).give_back(seq)
                if raw is None:
                    continue
            card, _ = parse_index(raw)
            fields = new_member_fields(card, e164, settings.ladder.tiers[0].name, source, at)
            reply = json.loads((await self._scripts.run([self._create(keys, fields, at)]))[0])
            member = Member.from_record(tenant, card, reply["member"])
            if reply["ok"] or member.phone == e164:
                return member, bool(reply["ok"])
            if member.rebind_to == e164:
                raise Contended(f"member {card} is moving to {e164}: retry")
            del_if = self._scripts.evalsha("del_if", (keys.phone(e164),), (raw,))
            await self._scripts.run([del_if])  # stale: the phone moved away
        raise Contended(f"could not settle the member of {e164}: retry")

    def _create(self, keys: PointsKeys, fields: Mapping[str, str], at: int) -> bytes:
        """``member_update.lua`` creating the record ``fields`` unless it exists (packed)."""
        spec = {"card": fields["card"], "at": str(at), "create": True, "set": dict(fields),
                "event": "member.created", "del": []}
        return self._scripts.evalsha("member_update", keys.member_keys(fields["card"]),
                                     (_json(spec),))

    def _remember(self, tenant: str, e164: str, card: str | None) -> None:
        """Keep the phone's card as next time's guess (``Prefetch``), or forget it."""
        if card is None:
            self._cards.pop((tenant, e164), None)
            return
        if len(self._cards) >= KNOWN_CARDS:
            self._cards.clear()
        self._cards[(tenant, e164)] = card

    async def _pin(self, keys: PointsKeys, serial: int, card: str) -> str:
        """Pin the serial's points to ``card`` unless already pinned; return the pinned card."""
        bucket, field = keys.credit_pin(serial).encode(), b"%d" % (serial % CREDIT_BUCKET_SERIALS)
        won, pinned = await self._run(
            pack(b"HSETNX", bucket, field, card.encode()), pack(b"HGET", bucket, field)
        )
        return card if won else pinned.decode()

    async def _post(
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
        if charges:
            refused = await self._reserve(keys, charges, view)
            if refused is not None:
                return _with_spent(view, refused)
        card = member.card
        spec = _credit_spec(member, plan, serial, sku, channel, region, at, idem)
        call = self._scripts.evalsha("ledger_apply", keys.member_keys(card), (_json(spec),))
        reply = json.loads((await self._scripts.run([call]))[0])
        if reply["ok"]:
            return _result(plan, card, reply)
        if charges:
            await self._run(*(pack(b"HINCRBY", keys.campaign_spend.encode(), cid.encode(),
                                   b"%d" % -points) for cid, points in charges.items()))
        if reply["why"] == "dup":
            entry = await self._entry(keys, card, None, entry_id=reply["entry"])
            return CreditResult.from_entry(entry, duplicate=True)
        if reply["why"] == "stale":
            return None
        if reply["why"] == "parked":
            return _parked(plan, member)
        raise refusal(reply, keys.tenant, card, spec)

    async def _reserve(
        self, keys: PointsKeys, charges: Mapping[str, int], view: TenantView
    ) -> dict[str, int] | None:
        """Charge the campaigns' budgets, all or nothing (``reserve_spend.lua``)."""
        call = self._scripts.evalsha("reserve_spend", (keys.campaign_spend,),
                                     tuple(reserve_args(charges, view.campaigns)))
        return reserve_refused((await self._scripts.run([call]))[0])

    async def _entry(
        self, keys: PointsKeys, card: str, seen: bytes | None, *, entry_id: str = ""
    ) -> Entry:
        """Read one ledger entry, by id or by the idem hash's ``<sha> <entry id>``."""
        entry_id = entry_id or seen.decode().split()[1]
        stream = keys.ledger(card).encode()
        found = (await self._run(pack(b"XRANGE", stream, entry_id.encode(),
                                      entry_id.encode())))[0]
        entry_id, flat = found[0]
        return Entry.from_stream(entry_id, dict(zip(flat[::2], flat[1::2], strict=True)))


class BlockingCrediter:
    """``ClaimCrediter`` for synchronous callers (the CLI's reconcile, scripts, tests).

    Each call runs on an event loop and link of its own, closed when it
    returns, so any thread may call at any time; card numbers are taken one
    at a time, since nothing is kept between calls.
    """

    def __init__(self, client: redis.Redis, *, clock: Callable[[], float] = time.time,
                 **options) -> None:
        self._client = client
        self._clock = clock
        self._options = options

    def credit_claim(self, *args, **kwargs) -> CreditResult:
        return self._run(lambda crediter: crediter.credit_claim(*args, **kwargs))

    def tenant_view(self, tenant: str, sku: str) -> TenantView:
        return self._run(lambda crediter: crediter.tenant_view(tenant, sku))

    def forget_claim(self, tenant: str, serial: int, outbox_entry: str) -> None:
        """``ClaimCrediter.forget_claim``, waited for (nothing outlives a call here)."""
        self._client.xdel(PointsKeys(tenant).claims(segment_of(serial)), outbox_entry)

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
            for field, raw in self._client.hscan_iter(keys.pending(shard), match=f"{prefix}*"):
                claim = json.loads(raw)
                result = self.credit_claim(
                    tenant, claim["phone"], int(claim["serial"]), claim["sku"],
                    claim.get("channel") or "api", claim.get("region") or None, int(claim["at"]),
                )
                if not result.pending and not result.duplicate:
                    credited += 1
                    points += result.points
                elif result.duplicate:  # credited elsewhere meanwhile: the hash is stale
                    self._client.hdel(keys.pending(shard), field)
        return credited, points

    def _run(self, work: Callable[[ClaimCrediter], Awaitable]):
        async def once():
            crediter = ClaimCrediter(link_for(self._client), clock=self._clock, card_block=1,
                                     **self._options)
            try:
                return await work(crediter)
            finally:
                crediter.link.close()
                await asyncio.sleep(0)  # let the transport close before the loop does

        return asyncio.run(once())
def pending_field(card: str, serial: int) -> str:
    """The field of a waiting claim in its member shard's pending hash."""
    return f"{card}/{serial}"


def claim_idem(serial: int) -> str:
    """The idempotency key of a claim's credit in its member's idem hash."""
    return f"claim:{serial}"


def _json(value: object) -> bytes:
    """A script's JSON argument: orjson, ~10x faster than json on a first check's spec."""
    return orjson.dumps(value)




def _credit_spec(
    member: Member, plan: Plan, serial: int, sku: str, channel: str, region: str | None,
    at: int, idem: str,
) -> dict[str, object]:
    """The ``ledger_apply.lua`` argument of a claim's credit, as planned from ``member``.

    A frozen member's claim is parked instead of posted (``pending_field``).
    """
    spec = entry_spec(
        member.card, kind="credit", idem=idem, sha=claim_sha(serial, sku),
        delta=plan.award.points, earned=plan.award.points, day=plan.day,
        drop_days=plan.drop_days, lot_expires=plan.lot_expires, tier=plan.tier,
        version=member.version, at=at,
        fields=_entry_fields(member.card, serial, sku, channel, region, plan),
        member_set=check_fields(sku, region, at),
    )
    spec["pending_field"] = pending_field(member.card, serial)
    if member.status == FROZEN:
        spec["park"] = json.dumps({"phone": member.phone, "serial": serial, "sku": sku,
                                   "channel": channel, "region": region or "", "at": at})
    return spec


def _parked(plan: Plan, member: Member) -> CreditResult:
    """The answer for a claim that waits for its frozen member."""
    return _result(plan, member.card, {"balance": member.balance, "tier": member.tier},
                   pending=True)


def _checked(replies: list) -> list:
    for reply in replies:
        if is_error(reply):
            raise StoreError(f"redis: {reply}")
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
    return pinned, _member_of(keys.tenant, card.decode(), raw), seen


def _member_of(tenant: str, card: str, raw: list | dict) -> Member | None:
    """The member from its record's ``HGETALL`` reply; None for no record."""
    fields = text_pairs(raw)
    return Member.from_record(tenant, card, fields) if fields.get("status") else None


def _result(
    plan: Plan, card: str, reply: Mapping, *, member_created: bool = False, pending: bool = False
) -> CreditResult:
    """The credit as posted: figures from the plan, balance and tier from the script.

    Built whole, never ``dataclasses.replace``d: on every first check, where replace costs
    as much as the build."""
    return CreditResult(
        points=plan.award.points,
        balance=int(reply["balance"]),
        tier=reply["tier"] or plan.tier,
        points_to_next=plan.points_to_next,
        applied_rules=plan.rules[0],
        member_card=card,
        duplicate=False,
        next_tier=plan.next_tier,
        note=plan.note,
        member_created=member_created,
        pending=pending,
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
    """The entry's own fields; ``rules`` and ``spend`` as JSON, as every entry writes them."""
    spend = plan.award.campaign_spend
    return {
        "card": card, "serial": str(serial), "sku": sku, "channel": channel,
        "region": region or "", "rules": plan.rules[1],
        "spend": json.dumps(dict(spend)) if spend else "{}",  # no campaign: most credits
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


@functools.lru_cache(maxsize=1024)
def _rules_of(steps: tuple[tuple[str, str, int, bool], ...]) -> tuple[tuple[dict, ...], str]:
    """Cached: most first checks apply the same few rules (a ``json.dumps``, ~3 us, each).
    The dicts are shared by every answer that gives them: read, never changed."""
    rules = tuple({"kind": kind, "name": name, "delta": delta, "limited": limited}
                  for kind, name, delta, limited in steps)
    return rules, json.dumps(list(rules))
