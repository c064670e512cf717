"""The verification side of the store: Lua scripts called by SHA over the worker's link.

Each script is a file in ``verify_api/lua/`` (arguments documented at its top).
``VerifyScripts.evalsha`` packs one call; ``await VerifyScripts.run`` sends a list of
packed calls as one round trip (``codegen/store/wire.py``: reloads lost scripts).
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, tzinfo

from codegen.exc import StoreError
from codegen.store.keyspace import SCAN_BUCKET_SERIALS, TenantKeys, segment_of
from codegen.store.wire import Link, ScriptSet
from verify_api.check import scanrecord, stats
from verify_api.check.scanrecord import ScanRecord

VERIFY, LOOKUP = b"v", b"l"
MAX_CODES_PER_CALL = 1000
# One code of a verify.lua call, laid out in the script's header: every field fits (serials
# < 10**9, a call <= 1,000 codes so <= 1,000 contexts and buckets, fields < 256).
_pack_code = struct.Struct(">HIIBHBB").pack
ACTIVE = "active"
SCRIPT_NAMES = ("verify", "unclaim")


class VerifyScripts(ScriptSet):
    """The verify scripts, packed for EVALSHA and sent over one worker's link."""

    def __init__(self, link: Link, names: tuple[str, ...] = SCRIPT_NAMES) -> None:
        super().__init__(link, "verify_api", names, error=StoreError)
        self.link = link


@dataclass(slots=True)  # not frozen: made on every check (ARCHITECTURE.md)
class ScanQuery:
    """One authentic code to look up (and, in VERIFY mode, record a check of)."""

    serial: int
    key_id: int
    wire_id: int
    key_revoked: bool = False


@dataclass(slots=True, unsafe_hash=True)  # equal contexts sent once; not frozen: ARCHITECTURE.md
class CheckContext:
    """What a whole call shares: the mode and, for a consumer's check, who and where."""

    mode: bytes = LOOKUP
    channel: int = 0
    region: str = ""
    phone_fingerprint: int = 0
    phone_bit: int = 0
    region_bit: int = 0
    cap: int = 5
    phone: str = ""
    channel_name: str = ""
    skus: tuple[str, ...] = ()  # the code must be of one of these products ('' = any)
    region_source: str = ""
    timezone: tzinfo = UTC
    """The tenant's (``TenantPolicy.timezone``): the day the check is counted on."""


@dataclass(slots=True)  # not frozen: made on every check (ARCHITECTURE.md)
class ScanReply:
    """What the verify script said about one code: batch verdict, SKU, scan record."""

    status: str
    sku: str | None = None
    record: ScanRecord | None = None
    claimed_now: bool = False
    outbox_entry: str | None = None
    raw: bytes = b""
    """The record as stored, for ``unclaim_call`` to find it unchanged."""


def verify_calls(
    scripts: VerifyScripts,
    keys: TenantKeys,
    queries: Sequence[ScanQuery],
    context: CheckContext | Sequence[CheckContext],
    now: int,
    per_call: int = MAX_CODES_PER_CALL,
) -> list[tuple[bytes, list[int]]]:
    """Pack verify.lua calls: one per segment and day (its keys share the segment's hash tag).

    ``context`` is every query's, or one per query (the checks of several
    requests in one call: ``turns.py``); equal contexts are sent once.
    Returns (packed call, indexes of ``queries`` it answers, in reply order).
    A carton of codes from one batch is one call; Redis finds the batch once, and each
    scan bucket is named once. The codes go as one value (``lua/verify.lua``), the
    contexts' numbers to the packer as ints (hiredis writes their digits).
    """
    contexts = [context] * len(queries) if isinstance(context, CheckContext) else context
    days: dict[int, str] = {}  # by the context object: a carton shares one, each is read once
    groups: dict[tuple[int, str, bytes], list[int]] = {}
    for i, (query, ctx) in enumerate(zip(queries, contexts, strict=True)):
        day = days.get(id(ctx))
        if day is None:
            day = days[id(ctx)] = stats.day_of(now, ctx.timezone)
        groups.setdefault((segment_of(query.serial), day, ctx.mode), []).append(i)
    calls = []
    for (segment, day, mode), indexes in groups.items():
        shared = _segment_keys(keys.tenant, segment)
        for at in range(0, len(indexes), per_call):
            chunk = indexes[at : at + per_call]
            names = [*shared, keys.segment_stats(segment, day)]
            numbered: dict[CheckContext, int] = {}  # equal contexts, sent once
            number_of: dict[int, int] = {}  # by object: a context is hashed once, not per code
            buckets: dict[int, int] = {}  # a carton's serials share a few buckets: named once
            codes: list[bytes] = []
            for i in chunk:
                q, ctx = queries[i], contexts[i]
                n = number_of.get(id(ctx))
                if n is None:
                    n = number_of[id(ctx)] = numbered.setdefault(ctx, len(numbered) + 1)
                bucket = q.serial // SCAN_BUCKET_SERIALS
                j = buckets.get(bucket)
                if j is None:
                    j = buckets[bucket] = len(names) - 3  # its key is KEYS[4 + j]
                    names.append(keys.scan_bucket(q.serial))
                codes.append(_pack_code(n, q.serial, q.key_id, q.wire_id, j,
                                        q.serial % SCAN_BUCKET_SERIALS, q.key_revoked))
            args: list = [mode, now, len(numbered)]
            for ctx in numbered:
                args += (
                    ctx.cap, ctx.channel, ctx.region, ctx.phone_fingerprint, ctx.phone_bit,
                    ctx.region_bit, ctx.phone, ctx.channel_name, " ".join(ctx.skus),
                    ctx.region_source,
                )  # fmt: skip
            args.append(b"".join(codes))
            calls.append((scripts.evalsha("verify", names, args), chunk))
    return calls


@functools.lru_cache(maxsize=4096)
def _segment_keys(tenant: str, segment: int) -> tuple[str, str, str]:
    """A segment's ranges, batch facts and claims outbox: the same for every check in it."""
    keys = TenantKeys(tenant)
    return (keys.segment_ranges(segment), keys.segment_batches(segment),
            keys.segment_claims(segment))  # fmt: skip


def parse_verify_reply(reply: list) -> list[ScanReply]:
    """Split a verify.lua reply, four values per code, into ScanReplies."""
    out = []
    fours = iter(reply)
    for status, sku, raw, claimed in zip(fours, fours, fours, fours, strict=True):  # no slicing
        out.append(
            ScanReply(
                status.decode(),
                sku.decode() or None,
                scanrecord.unpack(raw),
                claimed != 0,
                claimed.decode() if isinstance(claimed, bytes) else None,
                raw,
            )
        )
    return out


def unclaim_call(
    scripts: VerifyScripts, keys: TenantKeys, serial: int, scan: ScanReply,
    context: CheckContext, now: int,
) -> bytes:
    """Pack ``lua/unclaim.lua``: undo the claim of a check its own round trip refused (429)."""
    segment = segment_of(serial)
    names = (keys.scan_bucket(serial), keys.segment_claims(segment),
             keys.segment_stats(segment, stats.day_of(now, context.timezone)))
    args = (b"%d" % (serial % SCAN_BUCKET_SERIALS), scan.raw, (scan.outbox_entry or "").encode(),
            (scan.sku or "").encode(), (context.region or "-").encode(),
            context.channel_name.encode())
    return scripts.evalsha("unclaim", names, args)
