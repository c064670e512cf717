"""Member segments: who a campaign, a preview or a care run is about.

``Segment`` and ``matches`` are pure: a filter over one member's record as
stored (the member hash, decoded). ``scan`` is the I/O edge: it walks every
card the tenant issued (``MemberStore.cards``) and reads the records in
pipelined chunks, so a preview and a send see the same members.

Fields a segment can use and where they come from:

* ``tiers``, ``points_min``/``points_max`` (the balance), ``birthday_month``,
  ``attributes`` (``a.<name>``), ``status`` (default: active members only);
* ``regions``: the member's declared ``region`` attribute, else the region
  of its last credited check (``last_region``), else where it joined from
  (``join_region``, the phone's home region: ``points_bridge/regions.py``),
  compared case-folded;
* ``no_check_days``: no credited check for N days (never counts as "not
  for N days" once the member is N days old); ``checked_within_days``;
* ``skus``: checked at least one of these products (``sku:<SKU>``).

``last_check_at``, ``last_region`` and ``sku:<SKU>`` are written by the
credit itself (``credit.check_fields``), in the ledger script.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field

import redis

from codegen.keys import MasterKey
from points_bridge.exc import BadInput
from points_bridge.members import ACTIVE, ATTR, TRANSITIONS, Member, MemberStore

DAY = 86400
CHUNK = 500
STATUSES = (ACTIVE, *sorted({after for _, after in TRANSITIONS.values()} - {ACTIVE}))
MAX_SAMPLE = 100


@dataclass(frozen=True)
class Segment:
    """A member filter; every field left empty matches everyone."""

    tiers: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    points_min: int | None = None
    points_max: int | None = None
    birthday_month: int | None = None
    no_check_days: int | None = None
    checked_within_days: int | None = None
    skus: tuple[str, ...] = ()
    attributes: Mapping[str, str] = field(default_factory=dict)
    status: str = ACTIVE

    @classmethod
    def parse(cls, data: Mapping[str, object]) -> Segment:
        """Build a segment from JSON (the admin API, the CLI's options); refuse unknown keys."""
        if not isinstance(data, Mapping):
            raise BadInput("segment", data, "give an object")
        known = set(cls.__dataclass_fields__)
        extra = sorted(set(data) - known)
        if extra:
            raise BadInput("segment", extra[0], f"unknown filter; use {', '.join(sorted(known))}")
        out: dict[str, object] = {}
        for name in ("tiers", "regions", "skus"):
            value = data.get(name) or []
            if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
                raise BadInput(name, value, "give a list of strings")
            out[name] = tuple(value)
        for name in ("points_min", "points_max", "no_check_days", "checked_within_days",
                     "birthday_month"):
            value = data.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 0):
                raise BadInput(name, value, "give a whole number >= 0")
            out[name] = value
        month = out["birthday_month"]
        if month is not None and not 1 <= month <= 12:  # type: ignore[operator]
            raise BadInput("birthday_month", month, "give a month 1-12")
        attrs = data.get("attributes") or {}
        if not isinstance(attrs, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in attrs.items()
        ):
            raise BadInput("attributes", attrs, "give an object of strings")
        out["attributes"] = dict(attrs)
        status = data.get("status") or ACTIVE
        if status not in (*STATUSES, "any"):
            raise BadInput("status", status, f"use one of {', '.join(STATUSES)} or any")
        out["status"] = status
        return cls(**out)  # type: ignore[arg-type]

    def to_json(self) -> dict:
        data = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}


def _fold(text: str) -> str:
    return text.strip().casefold()


def _region_ok(seg: Segment, record: Mapping[str, str]) -> bool:
    region = (record.get(ATTR + "region") or record.get("last_region")
              or record.get("join_region") or "")
    return _fold(region) in {_fold(r) for r in seg.regions}


def _checks_ok(seg: Segment, record: Mapping[str, str], now: int) -> bool:
    last = int(record.get("last_check_at") or 0)
    if seg.no_check_days is not None:
        since = last or int(record.get("created_at") or 0)
        if now - since < seg.no_check_days * DAY:
            return False
    if seg.checked_within_days is not None:
        if not last or now - last > seg.checked_within_days * DAY:
            return False
    return not seg.skus or any(f"sku:{sku}" in record for sku in seg.skus)


def matches(seg: Segment, record: Mapping[str, str], now: int) -> bool:
    """Tell whether a member record (decoded hash fields) is in the segment at ``now``."""
    if not record.get("status") or seg.status not in ("any", record["status"]):
        return False
    if seg.tiers and record.get("tier", "") not in seg.tiers:
        return False
    balance = int(record.get("balance") or 0)
    if seg.points_min is not None and balance < seg.points_min:
        return False
    if seg.points_max is not None and balance > seg.points_max:
        return False
    if seg.birthday_month is not None:
        birthday = record.get("birthday") or ""
        if not birthday or int(birthday[-5:-3]) != seg.birthday_month:
            return False
    if seg.regions and not _region_ok(seg, record):
        return False
    if any(record.get(ATTR + k) != v for k, v in seg.attributes.items()):
        return False
    return _checks_ok(seg, record, now)


def records(client: redis.Redis, tenant: str, *,
            master: MasterKey | None) -> Iterator[tuple[str, dict[str, str]]]:
    """Every member of the tenant as ``(card, decoded record)``, read in pipelined chunks.

    ``master`` opens the card key the walk needs (``MemberStore.cards``).
    """
    store = MemberStore(client, tenant, master=master)
    chunk: list[str] = []

    def flush() -> Iterator[tuple[str, dict[str, str]]]:
        pipe = client.pipeline(transaction=False)
        for card in chunk:
            pipe.hgetall(store.keys.member(card))
        for card, raw in zip(chunk, pipe.execute(), strict=True):
            if raw:
                yield card, {k.decode(): v.decode() for k, v in raw.items()}
        chunk.clear()

    for card in store.cards():
        chunk.append(card)
        if len(chunk) >= CHUNK:
            yield from flush()
    if chunk:
        yield from flush()


def scan(client: redis.Redis, tenant: str, seg: Segment, now: int, *,
         master: MasterKey | None) -> Iterator[Member]:
    """The members in the segment, in card issue order."""
    for card, record in records(client, tenant, master=master):
        if matches(seg, record, now):
            yield Member.from_record(tenant, card, record)


def preview(
    client: redis.Redis, tenant: str, seg: Segment, now: int, sample: int = 10, *,
    master: MasterKey | None,
) -> tuple[int, list[Member]]:
    """Count the segment and keep its first ``sample`` members (nothing is sent)."""
    count, kept = 0, []
    for member in scan(client, tenant, seg, now, master=master):
        count += 1
        if len(kept) < min(sample, MAX_SAMPLE):
            kept.append(member)
    return count, kept
