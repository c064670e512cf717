"""The packed scan record: Python and the Lua scripts read and write one layout."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from codegen.store.scripts import register
from verify_api.check.scanrecord import CHANNELS, LAYOUT, ScanRecord, pack, unpack

records = st.builds(
    ScanRecord,
    voided=st.booleans(),
    first_channel=st.sampled_from([None, *CHANNELS]),
    count=st.integers(0, 0xFFFF),
    first_at=st.integers(0, 2**32 - 1),
    last_at=st.integers(0, 2**32 - 1),
    claimed_by=st.integers(0, 2**32 - 1),
    phone_sketch=st.integers(0, 0xFFFF),
    region_sketch=st.integers(0, 0xFF),
    first_region=st.one_of(st.none(), st.from_regex(r"[A-Z0-9][A-Z0-9-]{0,15}", fullmatch=True)),
)


@given(records)
def test_pack_then_unpack_is_identity(record):
    raw = pack(record)
    assert LAYOUT.size <= len(raw) <= LAYOUT.size + 16 <= 64  # fits hash-max-ziplist-value
    assert unpack(raw) == record


def test_never_scanned_is_none():
    assert unpack(None) is None and unpack(b"") is None


def test_the_void_script_writes_what_python_reads(redis_client):
    key = "is:{T/s0}:scan:0"
    redis_client.hset(key, "7", pack(ScanRecord(count=3, first_at=10, first_channel="sms")))
    void = register(redis_client, "verify_api", "void")
    assert void(keys=[key], args=["7", "8", "7"]) == [3, 0, -1]
    seven, eight = (unpack(redis_client.hget(key, f)) for f in ("7", "8"))
    assert seven == ScanRecord(voided=True, count=3, first_at=10, first_channel="sms")
    assert eight == ScanRecord(voided=True)
