"""The short fingerprints of a phone that scan records and rate limits keep, never the number.

A 32-bit one says which phone claimed a code, a 64-bit one is a rate-limit
subject, and one bit of a small sketch estimates how many phones checked a
code. Numbers are normalised first (``points_bridge.phones.normalize_phone``).

Keyed (BLAKE2b's own key), with a key derived from the master key: the space
of phone numbers is small enough to hash exhaustively, so an unkeyed hash in
a scan record or a rate-limit key name would give the number back to anyone
who reads the store (or a backup of it). Without the master key a
fingerprint reveals nothing, and the derivation keeps it stable across
workers and restarts.
"""

from __future__ import annotations

import hashlib
import hmac

from codegen.keys import MasterKey

_PURPOSE = b"itemseal/phone-fingerprint/v1"


class Fingerprints:
    """The fingerprints of one deployment (one master key)."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("a fingerprint key is at least 16 bytes")
        self._key = key[:64]

    @classmethod
    def from_master(cls, master: MasterKey) -> Fingerprints:
        return cls(hmac.digest(master.secret, _PURPOSE, "sha256"))

    def _digest(self, e164: str) -> bytes:
        return hashlib.blake2b(e164.encode(), digest_size=8, key=self._key,
                               person=b"itemseal/phone").digest()

    def phone_fingerprint(self, e164: str) -> int:
        """Return a nonzero 32-bit fingerprint (zero means "no phone" in a scan record)."""
        return int.from_bytes(self._digest(e164)[:4], "big") or 1

    def phone_key(self, e164: str) -> str:
        """Return the rate-limit subject for a phone: 64 bits, hex, no number in the key."""
        return self._digest(e164).hex()

    def sketch_bit(self, value: str, bits: int) -> int:
        """Return the one-bit mask ``value`` sets in a ``bits``-wide distinct-count sketch."""
        digest = hashlib.blake2b(value.encode(), digest_size=2, key=self._key,
                                 person=b"itemseal/sketch").digest()
        return 1 << (int.from_bytes(digest, "big") % bits)
