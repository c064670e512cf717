"""The points ledger: append-only entries per member, each applied once per key.

Every entry (credit by claim, redemption, adjustment, expiry, tier change,
and the member's status changes and rebinds) is one XADD to the member's
ledger stream, made by the same script that moves the balance, the lifetime
and per-day earned points and the expiry lots (``lua/ledger_apply.lua``), so
the figures and the history never disagree.

**Idempotency.** Each request carries a key; the member's idem hash maps it to
``<sha of the request body> <entry id>``. The same key with the same body
returns the first entry (``Posted.duplicate``), with a different body it is
refused (``IdempotencyConflict``). A claim's key is ``claim:<serial>``.

**The CRM stream, written in the same script.** Every entry is also appended
to the member shard's event stream (``PointsKeys.events``), which shares the
member's hash tag. The alternative, a second XADD to one tenant-wide stream
after the script, leaves a window where a crash loses an event and needs a
sweep of every member to find it; writing both in one script makes "every
entry reaches the bridge" hold by construction. The price is that the
bridge reads ``MEMBER_SHARDS`` streams instead of one, in a consumer group
each (``crm.py``). Downstream, exactly once is by idempotency key anyway.

**Expiry.** With ``points_expiry_months`` set, each credit adds to a lot that
expires at the start of the N+1-th month after the month it was earned;
spending takes the oldest lots first and due lots leave (an ``expire``
entry) before anything else the script does, so no one spends points that
are gone. ``expire_due`` sweeps a member who is not otherwise active.
"""

from __future__ import annotations

import functools
import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from json.encoder import encode_basestring_ascii
from typing import Any
from zoneinfo import ZoneInfo

from codegen.amounts import MAX_BALANCE, MAX_ENTRY_POINTS, is_points
from points_bridge.exc import (
    BadInput,
    IdempotencyConflict,
    InsufficientPoints,
    MemberInactive,
    Stale,
    UnknownMember,
)
from points_bridge.ledger_archive import ArchivedEntries, id_ms, list_runs, live_from, parse_runs
from points_bridge.members import Member
from points_bridge.scoped import TenantScoped

BASE_FIELDS = ("kind", "delta", "balance", "earned", "tier", "at", "idem")
ARCHIVED = "archived"
"""Member record field: how many of its entries ``points archive`` moved to Parquet."""


def stored_int(text: str | bytes | None) -> int:
    """Read a figure the store holds: decimal integer text, or (written by a version
    before 0.x that round-tripped figures through Lua doubles) ``1e+14``-style text.

    The old form is read as the integer it spells, so one damaged entry no longer
    makes a member's history, the ledger export or the points report fail.
    """
    if text is None or text == b"" or text == "":
        return 0
    raw = text.decode() if isinstance(text, bytes) else text
    try:
        return int(raw)
    except ValueError:
        try:
            exact = Decimal(raw)
        except InvalidOperation:
            raise ValueError(f"not a stored figure: {raw!r}") from None
        if not exact.is_finite() or exact != exact.to_integral_value():
            raise ValueError(f"not a stored figure: {raw!r}") from None
        return int(exact)


def check_entry_points(name: str, value: object, *, low: int = -MAX_ENTRY_POINTS) -> int:
    """Return ``value`` if it is an int in ``[low, 10^9]`` (``codegen/amounts.py``)."""
    if not is_points(value, low, MAX_ENTRY_POINTS):
        raise BadInput(name, value, f"must be a whole number from {low} to {MAX_ENTRY_POINTS}")
    return value  # type: ignore[return-value]


@dataclass(slots=True)  # not frozen: made on every credit (ARCHITECTURE.md)
class Entry:
    """One ledger entry; ``fields`` holds the kind-specific rest (serial, reason, ...)."""

    entry_id: str
    kind: str
    delta: int
    balance: int
    earned: int
    tier: str
    at: int
    idem: str
    fields: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_stream(cls, entry_id: bytes | str, raw: Mapping[bytes, bytes]) -> Entry:
        return cls.from_fields(entry_id.decode() if isinstance(entry_id, bytes) else entry_id,
                               {k.decode(): v.decode() for k, v in raw.items()})

    @classmethod
    def from_fields(cls, entry_id: str, fields: Mapping[str, str]) -> Entry:
        """From the fields a stream entry (or an archive row, ``ledger_archive.py``) holds."""
        f = dict(fields)
        return cls(
            entry_id=entry_id,
            kind=f.pop("kind"),
            delta=stored_int(f.pop("delta", "0")),
            balance=stored_int(f.pop("balance", "0")),
            earned=stored_int(f.pop("earned", "0")),
            tier=f.pop("tier", ""),
            at=int(f.pop("at", 0)),
            idem=f.pop("idem", ""),
            fields=f,
        )


@dataclass(slots=True)  # not frozen: made on every credit (ARCHITECTURE.md)
class Posted:
    """What a post did: the entry (the first one, for a repeated key)."""

    entry: Entry
    duplicate: bool
    tier_from: str | None = None
    expired: int = 0


def body_sha(body: Mapping[str, object]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:32]


def claim_sha(serial: int, sku: str) -> str:
    """``body_sha({"serial": serial, "sku": sku})``, its JSON written directly.

    The same text ``json.dumps(sort_keys=True)`` makes (its own string quoting), so
    a claim posted by any version has one sha; ~2 us less on every first check."""
    text = f'{{"serial": {int(serial)}, "sku": {encode_basestring_ascii(sku)}}}'
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@functools.lru_cache(maxsize=1024)
def lot_expiry(at: int, months: int, zone: ZoneInfo) -> int:
    """Return when points earned at ``at`` expire: the start of month (earned + N + 1).

    Cached: the credits of one second share it (a time-zone conversion and two datetimes
    on every first check otherwise)."""
    if months <= 0:
        return 0
    local = datetime.fromtimestamp(at, zone)
    index = local.year * 12 + local.month - 1 + months + 1
    return int(datetime(index // 12, index % 12 + 1, 1, tzinfo=zone).timestamp())


def entry_spec(
    card: str,
    *,
    kind: str,
    idem: str,
    body: Mapping[str, object] | None = None,
    at: int,
    delta: int = 0,
    earned: int = 0,
    day: str = "",
    drop_days: Iterable[str] = (),
    need_active: bool = False,
    lot_expires: int = 0,
    tier: str | None = None,
    version: int | None = None,
    fields: Mapping[str, str] | None = None,
    member_set: Mapping[str, str] | None = None,
    undo_day: str | None = None,
    sha: str | None = None,
) -> dict[str, object]:
    """The argument of ``lua/ledger_apply.lua`` for one entry (see the script's header).

    Figures go as decimal strings, checked against ``codegen/amounts.py`` here
    (``BadInput``) and again by the script, which never rounds them. The request's
    ``body`` gives the idempotency sha (``body_sha``), or ``sha`` is that sha already
    (``claim_sha``).
    """
    check_entry_points("delta", delta)
    # earned goes negative only to take back points counted on ``undo_day`` (a refund, a reversal)
    check_entry_points("earned", earned, low=-MAX_ENTRY_POINTS if undo_day is not None else 0)
    if sha is None:
        if body is None:
            raise TypeError("entry_spec needs the request's body or its sha")
        sha = body_sha(body)
    spec: dict[str, object] = {
        "card": card, "at": str(at), "kind": kind, "idem": idem, "sha": sha,
        "delta": str(delta), "earned": str(earned), "day": f"d:{day}",
        "drop_days": [f"d:{d}" for d in drop_days], "need_active": need_active,
        "lot_expires": str(int(lot_expires)), "fields": dict(fields or {}),
    }
    if tier:
        spec["tier"] = tier
    if member_set:
        spec["member_set"] = dict(member_set)
    if version is not None:
        spec["version"] = str(version)
    if undo_day is not None:
        spec["undo_day"] = f"d:{undo_day}"
    return spec


def refusal(reply: Mapping[str, object], tenant: str, card: str, spec: Mapping) -> Exception:
    """The error for a refused post (``why`` other than ``dup``)."""
    why = reply["why"]
    if why == "stale":
        return Stale(card)
    if why == "conflict":
        return IdempotencyConflict(spec["idem"])
    if why == "inactive":
        return MemberInactive(card, reply["status"], f"{spec['kind']} points")
    if why == "insufficient":
        return InsufficientPoints(card, int(reply["balance"]), -int(spec["delta"]))
    if why == "bounds":
        return BadInput(
            "delta", int(spec["delta"]),
            f"would carry the balance or the earned points past {MAX_BALANCE}",
        )
    if why == "parked":
        return MemberInactive(card, "frozen", f"{spec['kind']} points now (the claim waits)")
    return UnknownMember(tenant, card)


class Ledger(TenantScoped):
    """Post entries to the members of one tenant and read them back."""

    def post(self, card: str, *, at: int | None = None, **entry: Any) -> Posted:
        """Apply one entry atomically; raise the domain error when it cannot apply.

        ``entry``: the keyword arguments of ``entry_spec`` (kind, idem, body, delta, ...).
        """
        spec = entry_spec(card, at=int(self._clock() if at is None else at), **entry)
        reply = self._call(card, spec)
        if reply["ok"]:
            entry = self.entry(card, reply["entry"])
            return Posted(entry, False, reply.get("tier_from") or None, int(reply["expired"]))
        if reply["why"] == "dup":
            return Posted(self.entry(card, reply["entry"]), True)
        raise refusal(reply, self.tenant, card, spec)

    def redeem(
        self, card: str, points: int, *, idem: str | None = None, reason: str = ""
    ) -> Posted:
        """Spend points (oldest lots first); refused over the balance or when not active."""
        if not is_points(points, 1, MAX_ENTRY_POINTS):
            raise BadInput("points", points,
                           f"a redemption takes a whole number from 1 to {MAX_ENTRY_POINTS}")
        idem = idem or f"redeem:{uuid.uuid4().hex}"
        return self.post(
            card, kind="redeem", idem=idem, body={"points": points, "reason": reason},
            delta=-points, need_active=True, fields={"reason": reason},
        )

    def adjust(
        self,
        card: str,
        delta: int,
        *,
        reason: str,
        idem: str | None = None,
        expiry: tuple[int, ZoneInfo] | None = None,
    ) -> Posted:
        """Correct a balance by ``delta`` with a reason; it never counts as earned."""
        if not reason.strip():
            raise BadInput("reason", reason, "an adjustment needs a reason")
        check_entry_points("points", delta)
        if delta == 0:
            raise BadInput("points", delta, "an adjustment of 0 changes nothing")
        now = int(self._clock())
        expires = lot_expiry(now, expiry[0], expiry[1]) if expiry and delta > 0 else 0
        idem = idem or f"adjust:{uuid.uuid4().hex}"
        return self.post(
            card, kind="adjust", idem=idem, body={"delta": delta, "reason": reason},
            delta=delta, lot_expires=expires, fields={"reason": reason}, at=now,
        )

    def expire_due(self, card: str) -> int:
        """Remove the member's due lots now; return the points that expired."""
        spec = {"card": card, "at": str(int(self._clock())), "kind": "", "idem": ""}
        reply = self._call(card, spec)
        if not reply["ok"]:
            raise UnknownMember(self.tenant, card)
        return int(reply["expired"])

    def _call(self, card: str, spec: Mapping[str, object]) -> dict:
        raw = self._scripts.ledger_apply(keys=self.keys.member_keys(card), args=[json.dumps(spec)])
        return json.loads(raw)

    def entry(self, card: str, entry_id: str) -> Entry | None:
        """One entry by id, in Redis or archived; None when the member has no such entry."""
        found = self._redis.xrange(self.keys.ledger(card), entry_id, entry_id)
        if found:
            return Entry.from_stream(*found[0])
        runs = list_runs(self._redis, self.tenant)
        if not runs:
            return None
        archive = ArchivedEntries(self._redis, self.tenant).of_member(card, runs)
        return next((Entry.from_fields(i, f) for i, f in archive if i == entry_id), None)

    def lookup(self, card: str, idem: str) -> Entry | None:
        """The entry posted under ``idem`` while it is in Redis (a key leaves with its entry
        when the entry is archived, ``points archive``)."""
        seen = self._redis.hget(self.keys.idem(card), idem)
        return self.entry(card, seen.decode().split()[1]) if seen else None

    def history(self, card: str, count: int | None = None) -> list[Entry]:
        """Return the member's entries oldest first (the last ``count`` when given),
        archived ones (``points archive``) before those still in Redis."""
        pipe = self._redis.pipeline(transaction=False)
        if count is None:
            pipe.xrange(self.keys.ledger(card))
        else:
            pipe.xrevrange(self.keys.ledger(card), count=count)
        pipe.hget(self.keys.member(card), ARCHIVED)
        pipe.hgetall(self.keys.ledger_archive)
        found, archived, listed = pipe.execute()
        if count is not None:
            found.reverse()
        live = [Entry.from_stream(i, raw) for i, raw in found]
        if not listed:
            return live
        runs = parse_runs(listed)
        first = live_from(runs)
        kept = [e for e in live if id_ms(e.entry_id) >= first]
        if not archived and len(kept) == len(live):
            return kept
        if count is not None and len(kept) >= count:
            return kept[-count:]
        older = [Entry.from_fields(i, f) for i, f in
                 ArchivedEntries(self._redis, self.tenant).of_member(card, runs)]
        entries = older + kept
        return entries if count is None else entries[-count:]

    def snapshot(self, card: str, idem: str) -> tuple[Member | None, Entry | None]:
        """Return the member record and the entry already posted under ``idem``, if any."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.hgetall(self.keys.member(card))
        pipe.hget(self.keys.idem(card), idem)
        record, seen = pipe.execute()
        fields = {k.decode(): v.decode() for k, v in record.items()}
        member = Member.from_record(self.tenant, card, fields) if fields.get("status") else None
        entry = self.entry(card, seen.decode().split()[1]) if seen else None
        return member, entry
