"""Phone numbers on the verify path: E.164 fast, and the short fingerprints we store.

One canonical E.164 form keeps one member one member, so the full parse is
``points_bridge.phones.normalize_phone`` (the members' own). Most checks carry
a plain national mobile number (``13800138000`` from an SMS gateway), and the
full parse costs ~14 us a request; ``_national_mobile`` answers those from
phonenumbers' own metadata for the region in ~1 us and steps aside for
anything else (tests prove both give the same answer).

The scan record and the rate limiter keep only fingerprints, never the
number: a 32-bit one to say which phone claimed a code, a 64-bit rate-limit
subject, and one bit of a small sketch to estimate how many phones checked it.
"""

from __future__ import annotations

import functools
import hashlib
import re

import phonenumbers

from points_bridge import phones as members_phones
from points_bridge.exc import BadPhone, BadRegion
from verify_api.exc import InvalidField

DEFAULT_REGION = members_phones.DEFAULT_REGION
MAX_PHONE_CHARS = 32
_SEPARATORS = str.maketrans("", "", " -")


def normalize_phone(text: str, default_region: str = DEFAULT_REGION) -> str:
    """Return ``text`` as an E.164 number (``+8613800138000``) or raise InvalidField."""
    if not text or len(text) > MAX_PHONE_CHARS:
        raise InvalidField("phone", f"not a phone number: {text[:MAX_PHONE_CHARS]!r}")
    fast = _national_mobile(text, default_region)
    return fast if fast is not None else _parse(text, default_region)


def _parse(text: str, default_region: str) -> str:
    try:
        return members_phones.normalize_phone(text, default_region)
    except (BadPhone, BadRegion) as exc:
        raise InvalidField("phone", str(exc)) from None


@functools.cache
def _mobile_rules(region: str) -> tuple[re.Pattern, re.Pattern, re.Pattern | None, str] | None:
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if metadata is None or metadata.mobile is None or not metadata.mobile.national_number_pattern:
        return None
    strip = metadata.national_prefix_for_parsing
    return (
        re.compile(metadata.mobile.national_number_pattern),
        re.compile(metadata.general_desc.national_number_pattern),
        re.compile(strip) if strip else None,
        f"+{metadata.country_code}",
    )


def _national_mobile(text: str, region: str) -> str | None:
    """The common case without the full parser: a national mobile number, digits only.

    Uses phonenumbers' own metadata for ``region`` and steps aside (None) for
    anything the full parser might read differently: a leading + or 00, a
    national or carrier prefix, letters. ``normalize_phone`` then parses.
    """
    rules = _mobile_rules(region)
    if rules is None or not text.isascii():
        return None
    digits = text.translate(_SEPARATORS)
    mobile, general, prefix, country = rules
    if (
        digits.isdigit()
        and mobile.fullmatch(digits)
        and general.fullmatch(digits)
        and (prefix is None or not prefix.match(digits))
    ):
        return country + digits
    return None


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
