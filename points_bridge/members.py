"""Members: found by phone or card, bound to one card for life, with a status.

A member's record lives in its card's shard (``PointsKeys.member``); the phone
index ``{T/p+E164}`` -> card lives in a slot of its own. On Redis Cluster no
script can touch both, so the record is the truth and the index is a hint
that every lookup checks against it (``record.phone == phone``):

* **Create** (first claim, SMS join, API, import): ``SET index card NX``
  first, then create the record if absent. Two concurrent first claims by one
  phone race on the ``SET NX``; the loser reads the winner's card, so one
  phone makes one member. A crash between the two steps leaves an index to a
  card without a record; the next create for that phone finishes it.
* **Rebind** (a new phone for the same card, points and history kept): mark
  ``rebind_to`` on the record, ``SET NX`` the new index, move the record's
  phone, then delete the old index if it still names the card. Each step is
  idempotent; a lookup that meets a half-done rebind rolls it forward, and an
  old index left behind is seen as stale (the record names another phone)
  and removed.

Card numbers come from the tenant's counter through ``cards.card_number``
under a random per-tenant secret, so they are unique without a retry loop
and reveal nothing about the member count.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import redis

from codegen.amounts import MINOR_PER_UNIT
from codegen.keys import MasterKey
from codegen.store.keyspace import MEMBER_SHARDS, shard_of
from codegen.store.wire import text_pairs
from points_bridge import regions
from points_bridge.cards import (
    CARD_KEY_BYTES,
    CardNumbers,
    card_master,
    card_number,
    card_seq,
    is_valid_card,
    normalize_card,
    open_card_key,
    seal_card_key,
)
from points_bridge.exc import (
    BadInput,
    MemberInactive,
    PhoneTaken,
    PointsError,
    UnknownMember,
)
from points_bridge.phones import normalize_phone
from points_bridge.scoped import TenantScoped
from points_bridge.settings import PointsSettings, SettingsStore, check_attribute_value
from points_bridge.tiers import tier_for

ACTIVE, FROZEN, CANCELLED = "active", "frozen", "cancelled"
# action -> (statuses it applies to, status after)
TRANSITIONS = {
    "freeze": ((ACTIVE,), FROZEN),
    "unfreeze": ((FROZEN,), ACTIVE),
    "cancel": ((ACTIVE, FROZEN), CANCELLED),
    "restore": ((CANCELLED,), ACTIVE),
}
ATTR = "a."
DAY = "d:"
LOTS = "lots"
"""Record field: the expiry lots, ``<expires_at> <points left>`` oldest first, joined by
``,`` (``lua/ledger_apply.lua``; in the member's own record, not a list key: ~20 B, not
~210 B, per member whose points expire)."""


def member_lots(packed: str | bytes | None, listed: list[bytes] | None = None,
                ) -> list[tuple[int, int]]:
    """(expires_at, points left) of each lot, oldest first, from the record's ``lots``
    field; ``listed``: the lots list a version before kept (read until the ledger moves it)."""
    text = packed.decode() if isinstance(packed, bytes) else (packed or "")
    lots = [raw.decode() for raw in listed or []] + [lot for lot in text.split(",") if lot]
    return [(int(at), int(left)) for at, left in (lot.split() for lot in lots)]
RESERVED = "?"
"""Separates a card from the time of its reservation in a phone index: ``CARD?AT``."""
RESERVATION_SECONDS = 60
"""How long a reservation with no record is a first claim in flight; after, it is stale."""


def index_value(card: str, reserved_at: int | None = None) -> str:
    """A phone index's value: the card, or ``CARD?AT`` for a card reserved at ``AT``.

    The API reserves a card for a phone it has not met in the round trip that
    checks the code (``credit.py``), before any member exists; the record,
    made when the phone claims a code, is what makes it a member.
    """
    return card if reserved_at is None else f"{card}{RESERVED}{reserved_at}"


def parse_index(raw: bytes | str | None) -> tuple[str | None, int | None]:
    """(card, reserved_at or None) of a phone index value; (None, None) if unset."""
    if raw is None:
        return None, None
    text = raw.decode() if isinstance(raw, bytes) else raw
    card, _, at = text.partition(RESERVED)
    return card, int(at) if at else None


def new_member_fields(
    card: str, e164: str, first_tier: str, source: str, at: int,
    profile: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The record of a member made now (``member_update.lua`` ``create``).

    ``join_region`` is where the member joined from, by the best source known
    then (``regions.resolve``: the region the member chose, else the phone's
    home region), with ``join_region_source`` saying which; segments fall back
    on it before any credited check recorded a ``last_region``.
    """
    profile = dict(profile or {})
    region, region_source = regions.resolve(None, trusted=False,
                                            member_region=profile.get(ATTR + "region"),
                                            phone=e164)
    located = {"join_region": region, "join_region_source": region_source} if region else {}
    return {
        "card": card, "phone": e164, "status": ACTIVE, "balance": "0", "earned": "0",
        "tier": first_tier, "created_at": str(at), "source": source, **located, **profile,
    }


class CardBlocks:
    """Card sequence numbers taken from a tenant's counter a block at a time.

    A long-lived store (the API's crediter) takes several at once, so most new
    members cost no counter round trip; numbers never handed out are skipped,
    as a lost create race skips one (``MemberStore.cards`` allows for both).
    """

    def __init__(self, size: int = 1) -> None:
        self.size = max(1, size)
        self._blocks: deque[range] = deque()
        self._lock = threading.Lock()

    def take(self) -> int | None:
        """The next sequence number, or None when a new block must be fetched."""
        with self._lock:
            while self._blocks and not self._blocks[0]:
                self._blocks.popleft()
            if not self._blocks:
                return None
            block = self._blocks[0]
            self._blocks[0] = block[1:]
            return block[0]

    def add(self, end: int) -> None:
        """Keep the block ending at ``end`` (the counter after INCRBY ``size``)."""
        with self._lock:  # a racing caller's block is kept too, none is skipped
            self._blocks.append(range(end - self.size, end))

    def __iter__(self):
        """The numbers taken from the counter and not handed out yet."""
        with self._lock:
            return iter([seq for block in self._blocks for seq in block])

    def give_back(self, seq: int) -> None:
        """Return an unused number (a reservation that lost its race) for the next take."""
        with self._lock:
            self._blocks.appendleft(range(seq, seq + 1))


@dataclass(slots=True)  # not frozen: made on every credit (ARCHITECTURE.md)
class Member:
    tenant: str
    card: str
    phone: str
    status: str
    balance: int
    earned: int
    tier: str
    pinned_tier: str | None
    birthday: str | None
    created_at: int
    source: str
    version: int
    attributes: dict[str, str] = field(default_factory=dict)
    days: dict[str, int] = field(default_factory=dict)
    reason: str = ""
    rebind_to: str | None = None
    stored: int = 0
    """Stored value (prepaid balance) in minor units (fen)."""
    spend: int = 0
    """Lifetime spend in minor units: purchases less refunds (tiers by spend)."""

    @classmethod
    def from_record(cls, tenant: str, card: str, m: Mapping[str, str]) -> Member:
        attributes, days = {}, {}
        for k, v in m.items():  # one pass over the record: read on every first check
            if k.startswith(ATTR):
                attributes[k[len(ATTR) :]] = v
            elif k.startswith(DAY):
                days[k[len(DAY) :]] = int(v)
        return cls(
            tenant=tenant,
            card=card,
            phone=m["phone"],
            status=m["status"],
            balance=int(m.get("balance", 0)),
            earned=int(m.get("earned", 0)),
            tier=m.get("tier", ""),
            pinned_tier=m.get("pin") or None,
            birthday=m.get("birthday") or None,
            created_at=int(m.get("created_at", 0)),
            source=m.get("source", ""),
            version=int(m.get("v", 0)),
            attributes=attributes,
            days=days,
            reason=m.get("reason", ""),
            rebind_to=m.get("rebind_to") or None,
            stored=int(m.get("stored", 0)),
            spend=int(m.get("spend", 0)),
        )

    def is_birthday(self, day: date) -> bool:
        """Tell whether ``day`` is the birthday (Feb 29 is kept on Feb 28 in other years)."""
        if not self.birthday:
            return False
        month, dom = int(self.birthday[-5:-3]), int(self.birthday[-2:])
        if (month, dom) == (2, 29) and not _leap(day.year):
            dom = 28
        return (day.month, day.day) == (month, dom)


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def check_birthday(text: str) -> str:
    """Accept ``YYYY-MM-DD`` or ``MM-DD`` (year unknown, stored as ``--MM-DD``)."""
    text = text.strip()
    try:
        if len(text) == 5:
            date.fromisoformat(f"2000-{text}")
            return f"--{text}"
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise BadInput("birthday", text, "write YYYY-MM-DD or MM-DD") from None


class MemberStore(TenantScoped):
    """Create, find and change the members of one tenant."""

    def __init__(
        self,
        client: redis.Redis,
        tenant: str,
        *,
        clock: Callable[[], float] = time.time,
        card_block: int = 1,
        master: MasterKey | None = None,
    ) -> None:
        """``card_block``: card numbers taken from the tenant's counter at a time."""
        super().__init__(client, tenant, clock=clock, master=master)
        self._secret: bytes | None = None
        self._blocks = CardBlocks(card_block)
        self._card_numbers: CardNumbers | None = None  # issue_cards': kept for its memo

    # -- reading -----------------------------------------------------------------------
    def settings(self) -> PointsSettings:
        return SettingsStore(self._redis).get(self.tenant)

    def normalize(self, phone: str, settings: PointsSettings | None = None) -> str:
        region = (settings or self.settings()).region
        return normalize_phone(phone, region)

    def get(self, card: str) -> Member | None:
        return self.get_from(card, self._redis.hgetall(self.keys.member(card)))

    def get_from(self, card: str, raw: Mapping[bytes, bytes]) -> Member | None:
        """Build a member from its raw record (e.g. from a pipeline); None if there is none."""
        fields = text_pairs(raw)
        return Member.from_record(self.tenant, card, fields) if fields.get("status") else None

    def find(self, *, phone: str | None = None, card: str | None = None) -> Member:
        """Return the member of a phone (as typed) or a card, or raise ``UnknownMember``."""
        if card is not None:
            digits = normalize_card(card)
            found = self.get(digits) if digits and is_valid_card(digits) else None
            if found is None:
                raise UnknownMember(self.tenant, card)
            return found
        if phone is None:
            raise BadInput("member", None, "give a phone or a card number")
        e164 = self.normalize(phone)
        found = self.by_phone(e164)
        if found is None:
            raise UnknownMember(self.tenant, e164)
        return found

    def by_phone(self, e164: str) -> Member | None:
        card, _ = parse_index(self._redis.get(self.keys.phone(e164)))
        member = self.get(card) if card else None
        if member is None:
            return None
        if member.phone == e164:
            return member
        if member.rebind_to == e164:
            return self._finish_rebind(member, e164)
        return None

    def cards(self) -> Iterator[str]:
        """Every card ever issued (some may have no record: lost races): the counter's in
        issue order, then the cards kept from a CRM (``PointsKeys.crm_cards``) by shard."""
        issued = int(self._redis.get(self.keys.card_counter) or 0)
        secret = self._card_secret()
        for seq in range(issued):
            yield card_number(seq, secret)
        for shard in range(MEMBER_SHARDS):
            for raw in sorted(self._redis.smembers(self.keys.crm_cards(shard))):
                card = raw.decode()
                seq = card_seq(card, secret)
                if seq is None or seq >= issued:  # else the counter's walk gave it already
                    yield card

    def keep_crm_cards(self, cards: Iterable[str]) -> int:
        """Add to ``PointsKeys.crm_cards`` the cards that did not come from the counter.

        For members a version before that set imported with a CRM's card, found by
        a scan (``points recount``); returns how many were not in it yet.
        """
        issued = int(self._redis.get(self.keys.card_counter) or 0)
        secret = self._card_secret()
        pipe = self._redis.pipeline(transaction=False)
        for card in cards:
            seq = card_seq(card, secret)
            if seq is None or seq >= issued:
                pipe.sadd(self.keys.crm_cards(shard_of(card)), card)
        return sum(pipe.execute())

    # -- creating ------------------------------------------------------------------------
    def ensure(
        self,
        e164: str,
        *,
        settings: PointsSettings | None = None,
        source: str = "claim",
        profile: Mapping[str, str] | None = None,
        index_empty: bool = False,
    ) -> tuple[Member, bool]:
        """Return the member of a normalised phone, creating it if none; and whether created.

        ``index_empty``: the caller has just read the phone's index and found
        nothing, so the first attempt goes straight to claiming it.
        """
        settings = settings or self.settings()
        index = self.keys.phone(e164)
        for attempt in range(8):
            raw = None if index_empty and attempt == 0 else self._redis.get(index)
            if raw is None:
                fresh = self._issue_card()
                raw = fresh.encode() if self._redis.set(index, fresh, nx=True) else None
                raw = raw or self._redis.get(index)
                if raw is None:
                    continue
            card, _ = parse_index(raw)
            fields = new_member_fields(card, e164, settings.ladder.tiers[0].name, source,
                                       int(self._clock()), profile)
            reply = self._update(card, create=True, set=fields, event="member.created")
            if reply["ok"]:
                return Member.from_record(self.tenant, card, reply["member"]), True
            member = Member.from_record(self.tenant, card, reply["member"])
            if member.phone == e164:
                return member, False
            if member.rebind_to == e164:
                return self._finish_rebind(member, e164), False
            self._scripts.del_if(keys=[index], args=[raw])  # stale: the phone moved away
        raise PointsError(f"could not settle the member of {e164}: retry")

    def ensure_with_card(
        self,
        e164: str,
        card: str,
        *,
        settings: PointsSettings | None = None,
        source: str = "import",
        profile: Mapping[str, str] | None = None,
    ) -> tuple[Member, bool]:
        """The member of a phone made with a given card (a CRM's, on import); and whether made.

        The card is kept when it is free: a well-formed card no member holds.
        A card another member holds, or a phone that already has another card,
        is ``BadInput`` and nothing is written. The phone index
        is claimed first (``SET NX``), as ``ensure`` does, and given back if
        the card turned out taken in the meantime.
        """
        digits = normalize_card(card)
        if digits is None or not is_valid_card(digits):
            raise BadInput("card", card, "not a card number (12 digits, the last a check digit)")
        settings = settings or self.settings()
        index = self.keys.phone(e164)
        held, _ = parse_index(self._redis.get(index))
        if held is not None:
            member = self.get(held)
            if member is not None and member.phone == e164:
                if held != digits:
                    raise BadInput("card", card, f"{e164} is already the member of card {held}")
                return member, False
        if self.get(digits) is not None:
            raise BadInput("card", card, "already held by another member: the row is refused")
        self._redis.sadd(self.keys.crm_cards(shard_of(digits)), digits)  # before the member
        if not self._redis.set(index, digits, nx=True):
            if parse_index(self._redis.get(index))[0] != digits:
                raise BadInput("card", card, f"{e164} was given another card just now: retry")
        fields = new_member_fields(digits, e164, settings.ladder.tiers[0].name, source,
                                   int(self._clock()), profile)
        reply = self._update(digits, create=True, set=fields, event="member.created")
        if not reply["ok"]:
            self._scripts.del_if(keys=[index], args=[digits])
            raise BadInput("card", card, "already held by another member")
        return Member.from_record(self.tenant, digits, reply["member"]), True

    def join(
        self,
        phone: str,
        *,
        birthday: str | None = None,
        attributes: Mapping[str, str] | None = None,
        source: str = "api",
    ) -> tuple[Member, bool]:
        """Create a member by phone with a profile (SMS join, API, CLI); an existing one is kept."""
        settings = self.settings()
        profile = self.profile_fields(settings, birthday, attributes)
        member, created = self.ensure(
            self.normalize(phone, settings), settings=settings, source=source, profile=profile
        )
        if not created and profile:
            member = self.update_profile(member.card, birthday=birthday, attributes=attributes)
        return member, created

    def _issue_card(self) -> str:
        secret = self._card_secret()
        while (seq := self._blocks.take()) is None:
            self._blocks.add(self._redis.incrby(self.keys.card_counter, self._blocks.size))
        return card_number(seq, secret)

    def issue_cards(self, count: int) -> list[str]:
        """Take ``count`` card numbers from the tenant's counter in one INCRBY (an import)."""
        if count <= 0:
            return []
        if self._card_numbers is None:
            self._card_numbers = CardNumbers(self._card_secret())
        end = self._redis.incrby(self.keys.card_counter, count)
        return self._card_numbers.block(end - count, count)

    def _card_secret(self) -> bytes:
        """Return the tenant's card key, made sealed by whoever needs it first (SET NX)."""
        if self._secret is None:
            master = card_master(self._master)
            key = self.keys.card_secret
            fresh = seal_card_key(master, self.tenant, os.urandom(CARD_KEY_BYTES), os.urandom(12))
            self._redis.set(key, fresh, nx=True)
            self._secret, raw = open_card_key(master, self.tenant, self._redis.get(key))
            if raw:  # written by an older version: seal the same key in place
                self._redis.set(key, seal_card_key(master, self.tenant, self._secret,
                                                   os.urandom(12)), xx=True)
        return self._secret

    # -- changing ------------------------------------------------------------------------
    def profile_fields(
        self,
        settings: PointsSettings,
        birthday: str | None,
        attributes: Mapping[str, str] | None,
    ) -> dict[str, str]:
        fields = {} if birthday is None else {"birthday": check_birthday(birthday)}
        for name, value in (attributes or {}).items():
            fields[ATTR + name] = check_attribute_value(settings.attributes, name, value)
        return fields

    def update_profile(
        self,
        card: str,
        *,
        birthday: str | None = None,
        attributes: Mapping[str, str] | None = None,
    ) -> Member:
        """Set the birthday and declared attributes (an empty attribute value removes it)."""
        settings = self.settings()
        keep = {k: v for k, v in (attributes or {}).items() if v != ""}
        fields = self.profile_fields(settings, birthday, keep)
        drop = [ATTR + k for k, v in (attributes or {}).items() if v == ""]
        reply = self._update(card, set=fields, delete=drop, event="member.updated")
        return self._member(card, reply)

    def change_status(self, card: str, action: str, reason: str = "") -> tuple[Member, str]:
        """Freeze, unfreeze, cancel or restore; return the member and what happened."""
        allowed, after = TRANSITIONS[action]
        forfeit = action == "restore" and self.settings().restore == "forfeit"
        entry = {"kind": "status", "action": action, "to": after, "reason": reason}
        reply = self._update(
            card,
            expect={"status": list(allowed)},
            set={"status": after, "reason": reason},
            entry=entry,
            event="member.updated",
            forfeit=forfeit,
        )
        member = self._member(card, reply, action=action)
        note = f"member {card} is now {after}"
        if action == "unfreeze":
            credited, points = self._settle_pending(card)
            if credited:
                member = self.get(card) or member
                note += f"; {credited} waiting claims credited ({points} points)"
        if action == "restore":
            note += (
                f"; {reply['forfeited']} points forfeited (tenant policy: forfeit)"
                if forfeit
                else f"; balance of {member.balance} points kept (tenant policy: keep)"
            )
        return member, note

    def _settle_pending(self, card: str) -> tuple[int, int]:
        """Credit the claims that waited while the member was frozen (``credit.py``).

        Imported here because the crediter is built on this store; a crash
        before this runs leaves the claims to ``itemseal points reconcile``.
        """
        from points_bridge.credit import BlockingCrediter

        return BlockingCrediter(self._redis, clock=self._clock,
                                master=self._master).settle_pending(self.tenant, card)

    def pin_tier(self, card: str, tier: str | None, reason: str = "") -> Member:
        """Set (or with None, lift) the manager's tier floor; the tier is recomputed."""
        settings = self.settings()
        member = self.get(card)
        if member is None:
            raise UnknownMember(self.tenant, card)
        if tier is not None:
            settings.ladder.index(tier)
        earned = earned_for_tier(member, settings, int(self._clock()))
        status = tier_for(earned, settings.ladder, tier)
        entry = {"kind": "pin", "pin": tier or "", "from": member.tier, "to": status.name,
                 "reason": reason}
        reply = self._update(
            card,
            expect={"v": [str(member.version)]},
            set={"pin": tier or "", "tier": status.name},
            entry=entry,
            event="member.updated",
        )
        if not reply["ok"] and reply["why"] == "state":
            return self.pin_tier(card, tier, reason)  # changed under us: compute again
        return self._member(card, reply)

    def rebind(self, card: str, phone: str) -> Member:
        """Bind a new phone to the card: points, tier and history stay with the card."""
        e164 = self.normalize(phone)
        member = self.get(card)
        if member is None:
            raise UnknownMember(self.tenant, card)
        if member.phone == e164:
            return member
        reply = self._update(card, expect={"status": [ACTIVE, FROZEN]}, set={"rebind_to": e164})
        member = self._member(card, reply, action="rebind")
        index = self.keys.phone(e164)
        while not self._redis.set(index, card, nx=True):
            raw = self._redis.get(index)
            holder, reserved_at = parse_index(raw)
            if holder == card:
                break
            other = self.get(holder) if holder else None
            # A card without a record is a first claim of that phone in flight: taken too,
            # unless it is a reservation older than any claim could take to settle.
            in_flight = other is None and not (
                reserved_at is not None
                and self._clock() - reserved_at > RESERVATION_SECONDS
            )
            if holder and (in_flight or (other and e164 in (other.phone, other.rebind_to))):
                self._update(card, expect={"rebind_to": [e164]}, delete=["rebind_to"])
                raise PhoneTaken(e164, holder)
            if raw:
                self._scripts.del_if(keys=[index], args=[raw])  # stale: it moved away
        return self._finish_rebind(member, e164)

    def _finish_rebind(self, member: Member, e164: str) -> Member:
        old = member.phone
        entry = {"kind": "rebind", "from": old, "to": e164}
        reply = self._update(
            member.card,
            expect={"rebind_to": [e164]},
            set={"phone": e164},
            delete=["rebind_to"],
            entry=entry,
            event="member.updated",
        )
        done = reply["ok"] or reply.get("member", {}).get("phone") == e164
        if done and old != e164:
            self._scripts.del_if(keys=[self.keys.phone(old)], args=[member.card])
        return self._member(member.card, reply) if reply["ok"] else self.get(member.card)

    def _member(self, card: str, reply: dict, action: str = "change") -> Member:
        if reply["ok"]:
            return Member.from_record(self.tenant, card, reply["member"])
        if reply["why"] == "missing":
            raise UnknownMember(self.tenant, card)
        raise MemberInactive(card, reply["member"].get("status", "?"), action)

    def _update(self, card: str, *, delete: list[str] | None = None, **spec: object) -> dict:
        """Run ``member_update.lua``; options left None or False are not sent."""
        body = {k: v for k, v in spec.items() if v is not None and v is not False}
        body.update({"card": card, "at": str(int(self._clock())), "del": delete or []})
        body = json.dumps(body)
        reply = self._scripts.member_update(keys=self.keys.member_keys(card), args=[body])
        return json.loads(reply)


def earned_for_tier(member: Member, settings: PointsSettings, now: int) -> int:
    """Return what the ladder counts: earned points over a lifetime or the trailing window's
    days, or (basis ``spend``) the whole currency units spent, purchases less refunds."""
    ladder = settings.ladder
    if ladder.basis == "spend":
        return member.spend // MINOR_PER_UNIT
    if ladder.window_days is None:
        return member.earned
    today = datetime.fromtimestamp(now, settings.timezone).date()
    first = (today - timedelta(days=ladder.window_days - 1)).strftime("%Y%m%d")
    return sum(points for day, points in member.days.items() if day >= first)
