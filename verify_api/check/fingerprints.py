"""The short fingerprints of a phone that scan records and rate limits keep, never the number.

A 32-bit one says which phone claimed a code, a 64-bit one is a rate-limit
subject, and one bit of a small sketch estimates how many phones checked a
code. Numbers are normalised first (``points_bridge.phones.normalize_phone``).
"""

from __future__ import annotations

import hashlib


def _digest(e164: str) -> bytes:
    return hashlib.blake2b(e164.encode(), digest_size=8, person=b"itemseal/phone").digest()


def phone_fingerprint(e164: str) -> int:
    """Return a nonzero 32-bit fingerprint (zero means "no phone" in a scan record)."""
    return int.from_bytes(_digest(e164)[:4], "big") or 1


def phone_key(e164: str) -> str:
    """Return the rate-limit subject for a phone: 64 bits, hex, no number in the key."""
    return _digest(e164).hex()


def sketch_bit(value: str, bits: int) -> int:
    """Return the one-bit mask ``value`` sets in a ``bits``-wide distinct-count sketch."""
    digest = hashlib.blake2b(value.encode(), digest_size=2, person=b"itemseal/sketch").digest()
    return 1 << (int.from_bytes(digest, "big") % bits)
