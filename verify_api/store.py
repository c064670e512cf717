"""The verification side of the store: Lua scripts called by SHA through the pipe.

Each script is a file in ``verify_api/lua/`` (arguments documented at its top).
``Scripts.evalsha`` packs one call; ``Scripts.run`` sends a list of packed
calls as one round trip and, if Redis has lost a script (restart, failover),
loads it and re-sends only the calls that came back ``NOSCRIPT`` (they did not
run, so re-sending is safe).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import hiredis

from codegen.keyspace import SCAN_BUCKET_SERIALS, TenantKeys, segment_of
from codegen.scripts import script_source
from verify_api import scanrecord, stats
from verify_api.exc import StoreError
from verify_api.pipe import RedisPipe, pack
from verify_api.scanrecord import ScanRecord

VERIFY, LOOKUP = b"v", b"l"
MAX_CODES_PER_CALL = 1000
ACTIVE = "active"
SCRIPT_NAMES = ("verify", "rate_limit")


class Scripts:
    """The verify scripts of one pipe, packed for EVALSHA."""

    def __init__(self, pipe: RedisPipe, names: tuple[str, ...] = SCRIPT_NAMES) -> None:
        self.pipe = pipe
        self._source = {n: script_source("verify_api", n).encode() for n in names}
        self._sha = {n: hashlib.sha1(src).hexdigest().encode() for n, src in self._source.items()}
        self._prefix = {}
        for name, sha in self._sha.items():
            self._prefix[name] = b"$7\r\nEVALSHA\r\n$40\r\n" + sha + b"\r\n"

    def evalsha(self, name: str, keys: tuple[str, ...], args: tuple[bytes, ...]) -> bytes:
        """Pack one EVALSHA of script ``name`` (not sent yet)."""
        numkeys = b"%d" % len(keys)
        items = [numkeys, *[key.encode() for key in keys], *args]
        return b"".join(
            [
                b"*%d\r\n" % (2 + len(items)),
                self._prefix[name],
                *[b"$%d\r\n%s\r\n" % (len(item), item) for item in items],
            ]
        )

    def run(self, calls: list[bytes]) -> list:
        """Send ``calls`` in one round trip; return the replies, errors raised."""
        replies = self.pipe.call(b"".join(calls), len(calls))
        missing = [i for i, r in enumerate(replies) if _is_noscript(r)]
        if missing:
            self.pipe.call(
                b"".join(pack(b"SCRIPT", b"LOAD", src) for src in self._source.values()),
                len(self._source),
            )
            again = self.pipe.call(b"".join(calls[i] for i in missing), len(missing))
            for i, reply in zip(missing, again, strict=True):
                replies[i] = reply
        for reply in replies:
            if isinstance(reply, hiredis.ReplyError):
                raise StoreError(f"redis script failed: {reply}")
        return replies


def _is_noscript(reply: object) -> bool:
    return isinstance(reply, hiredis.ReplyError) and str(reply).startswith("NOSCRIPT")


@dataclass(frozen=True)
class ScanQuery:
    """One authentic code to look up (and, in VERIFY mode, record a check of)."""

    serial: int
    key_id: int
    wire_id: int
    key_revoked: bool = False


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class ScanReply:
    """What the verify script said about one code: batch verdict, SKU, scan record."""

    status: str
    sku: str | None = None
    record: ScanRecord | None = None
    claimed_now: bool = False
    outbox_entry: str | None = None


def verify_calls(
    scripts: Scripts,
    keys: TenantKeys,
    queries: list[ScanQuery],
    context: CheckContext,
    now: int,
    per_call: int = MAX_CODES_PER_CALL,
) -> list[tuple[bytes, list[int]]]:
    """Pack verify.lua calls: one per segment (its keys share the segment's hash tag).

    Returns (packed call, indexes of ``queries`` it answers, in reply order).
    A carton of codes from one batch is one call; Redis finds the batch once.
    """
    by_segment: dict[int, list[int]] = {}
    for i, query in enumerate(queries):
        by_segment.setdefault(segment_of(query.serial), []).append(i)
    common = (
        context.mode,
        b"%d" % now,
        b"%d" % context.cap,
        b"%d" % context.channel,
        context.region.encode(),
        b"%d" % context.phone_fingerprint,
        b"%d" % context.phone_bit,
        b"%d" % context.region_bit,
        context.phone.encode(),
        context.channel_name.encode(),
    )
    calls = []
    day = stats.day_of(now)
    for segment, indexes in by_segment.items():
        for at in range(0, len(indexes), per_call):
            chunk = indexes[at : at + per_call]
            names = [
                keys.segment_ranges(segment),
                keys.segment_batches(segment),
                keys.segment_claims(segment),
                keys.segment_stats(segment, day),
            ]
            args = list(common)
            for i in chunk:
                q = queries[i]
                names.append(keys.scan_bucket(q.serial))
                args += (
                    b"%d" % q.serial,
                    b"%d" % q.key_id,
                    b"%d" % q.wire_id,
                    b"%d" % (q.serial % SCAN_BUCKET_SERIALS),
                    b"1" if q.key_revoked else b"0",
                )
            calls.append((scripts.evalsha("verify", tuple(names), tuple(args)), chunk))
    return calls


def parse_verify_reply(reply: list) -> list[ScanReply]:
    """Split a verify.lua reply, four values per code, into ScanReplies."""
    out = []
    for at in range(0, len(reply), 4):
        status, sku, raw, claimed = reply[at : at + 4]
        out.append(
            ScanReply(
                status.decode(),
                sku.decode() or None,
                scanrecord.unpack(raw),
                claimed != 0,
                claimed.decode() if isinstance(claimed, bytes) else None,
            )
        )
    return out
