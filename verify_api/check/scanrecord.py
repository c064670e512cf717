"""The per-code scan record: 18 bytes plus the first region, packed big-endian.

It lives as one field of a scan bucket hash (``TenantKeys.scan_bucket``): the
field is ``serial % 256``, the value this record. With
``hash-max-ziplist-entries 512`` a bucket of 256 codes stays a ziplist, so a
scanned code costs its record plus a few bytes of entry header.
``verify_api/lua/verify.lua`` and ``void.lua`` write the same layout with
Redis's ``struct`` library; this module is the Python reader and writer.

=======  ======  =====================================================
offset   bytes   field
=======  ======  =====================================================
0        1       flags: bit 0 voided, bits 1-3 first channel (0 = none)
1        2       check count (saturates at 65535)
3        4       first check, unix seconds
7        4       last check, unix seconds
11       4       fingerprint of the phone that claimed the code, 0 = unclaimed
15       2       sketch of distinct phones (16 bits)
17       1       sketch of distinct regions (8 bits)
18       0-16    first region, ASCII
=======  ======  =====================================================
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

LAYOUT = struct.Struct(">BHIIIHB")
VOIDED = 0x01
CHANNELS = ("sms", "ivr", "web", "api")
CHANNEL_CODES = {name: i + 1 for i, name in enumerate(CHANNELS)}
MAX_REGION = 16


@dataclass(slots=True)  # not frozen: made on every check (ARCHITECTURE.md)
class ScanRecord:
    voided: bool = False
    first_channel: str | None = None
    count: int = 0
    first_at: int = 0
    last_at: int = 0
    claimed_by: int = 0
    phone_sketch: int = 0
    region_sketch: int = 0
    first_region: str | None = None

    @property
    def claimed(self) -> bool:
        return self.claimed_by != 0


def unpack(raw: bytes | None) -> ScanRecord | None:
    """Read a record as stored; None (or b"") means the code was never scanned."""
    if not raw:
        return None
    flags, count, first, last, claimed, phones, regions = LAYOUT.unpack_from(raw)
    channel_code = (flags >> 1) & 0x07
    region = raw[LAYOUT.size :].decode("ascii", "replace") or None
    return ScanRecord(
        voided=bool(flags & VOIDED),
        first_channel=CHANNELS[channel_code - 1] if 1 <= channel_code <= len(CHANNELS) else None,
        count=count,
        first_at=first,
        last_at=last,
        claimed_by=claimed,
        phone_sketch=phones,
        region_sketch=regions,
        first_region=region,
    )


def pack(record: ScanRecord) -> bytes:
    """Write a record the way the Lua scripts do (tests and tools use it)."""
    flags = (VOIDED if record.voided else 0) | (CHANNEL_CODES.get(record.first_channel, 0) << 1)
    head = LAYOUT.pack(
        flags,
        min(record.count, 0xFFFF),
        record.first_at,
        record.last_at,
        record.claimed_by,
        record.phone_sketch,
        record.region_sketch,
    )
    return head + (record.first_region or "").encode("ascii")[:MAX_REGION]
