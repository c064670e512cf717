"""The naive peers' code scheme, and a generator of valid codes for a driver's code list.

A peer code is 24 digits, ``SERIAL_DIGITS`` of serial then ``TAG_DIGITS`` of
tag: the first 8 bytes of ``HMAC-SHA256(key, serial digits)`` read as an
integer, modulo ``10**TAG_DIGITS``. It is the simplest scheme a user would
write and of itemseal's cost class (one HMAC-SHA256 over a few bytes and a
constant-time compare per check, 13 tag digits like itemseal's numeric-24), so
a comparison measures the servers, not the formats. The peer servers spell the
same few lines out themselves, as a user's program would.
"""

from __future__ import annotations

import hmac
import json

SERIAL_DIGITS = 11
TAG_DIGITS = 13
LENGTH = SERIAL_DIGITS + TAG_DIGITS


def tag(key: bytes, serial_digits: str) -> str:
    """The tag digits of a serial: what both the servers and this generator compute."""
    mac = hmac.digest(key, serial_digits.encode(), "sha256")
    return f"{int.from_bytes(mac[:8], 'big') % 10**TAG_DIGITS:0{TAG_DIGITS}d}"


def code(key: bytes, serial: int) -> str:
    """The 24 digits of ``serial``'s code under ``key``."""
    digits = f"{serial:0{SERIAL_DIGITS}d}"
    return digits + tag(key, digits)


def make_codes(key: bytes, count: int, first: int = 1) -> list[str]:
    """``count`` valid codes of consecutive serials, so a driver can build its code list."""
    return [code(key, s) for s in range(first, first + count)]


def grouped(digits: str, size: int = 4) -> str:
    """The code as printed, in groups of four: the servers strip the spaces."""
    return " ".join(digits[i : i + size] for i in range(0, len(digits), size))


def bodies(codes: list[str]) -> list[bytes]:
    """One ``POST /verify`` JSON body per code (grouped, as a consumer types it)."""
    return [json.dumps({"code": grouped(c)}).encode() for c in codes]
