"""Phone numbers of members: one canonical E.164 form, and a keyed fingerprint.

A member is found by phone, and the same phone arrives as ``13812345678`` from
an SMS gateway, ``+86 138-1234-5678`` from the web form, ``0086 138 1234 5678``
from a CRM import and in full-width digits from a Chinese IME. Unless all of
them become one string, one person becomes several members, so every entry
point calls ``normalize_phone`` before any lookup.

Pure functions: no I/O, no clock. The per-tenant default region comes from the
caller (tenant configuration); it is CN when unset.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import unicodedata

import phonenumbers

from points_bridge.exc import BadPhone, BadRegion, BadSecret

DEFAULT_REGION = "CN"

FINGERPRINT_BYTES = 12
"""Size of ``phone_fingerprint``: 96 bits.

Short, because it is stored once per scanned code and the store's budget is
64 bytes per code; long enough that two distinct phones of one tenant collide
with probability about n**2 / 2**97, i.e. < 1e-11 for a billion members.
"""

MIN_SALT_BYTES = 16
MAX_INPUT_CHARS = 64

# What a person may type around the digits: spaces, dashes, dots, brackets, slash.
# Letters are refused: phonenumbers would read "ext 5" or vanity letters, which
# never belong to a member's phone.
_ALLOWED = re.compile(r"[0-9+\s\-.()/\u2010-\u2015\u2212]*")
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")


def _check_region(region: str | None) -> str:
    region = DEFAULT_REGION if region is None else region
    if not isinstance(region, str) or region.upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise BadRegion(region)
    return region.upper()


def normalize_phone(text: str, default_region: str | None = DEFAULT_REGION) -> str:
    """Return ``text`` as an E.164 string such as ``+8613812345678``.

    ``default_region`` reads numbers typed without a country code (CN when
    None): an 11-digit Chinese mobile, ``0086``/``+86`` prefixes, spaces,
    dashes and full-width characters are all accepted. Anything that is not
    a valid, dialable number of its country raises ``BadPhone``, so garbage
    never creates a member. Idempotent: an E.164 string maps to itself.
    """
    region = _check_region(default_region)
    if not isinstance(text, str):
        raise BadPhone(text, "a phone number must be text")
    if len(text) > MAX_INPUT_CHARS:
        raise BadPhone(text[:MAX_INPUT_CHARS] + "...", "too long for a phone number")
    folded = unicodedata.normalize("NFKC", text).strip()
    if not folded or not _ALLOWED.fullmatch(folded):
        raise BadPhone(text, "only digits, '+', spaces and dashes belong in a phone number")
    return _parsed(folded, region, text)


@functools.lru_cache(maxsize=65536)
def _parsed(folded: str, region: str, text: str) -> str:
    """phonenumbers' parse and validation: ~50 us, and a member's phone comes back often."""
    try:
        number = phonenumbers.parse(folded, region)
    except phonenumbers.NumberParseException as exc:
        raise BadPhone(text) from exc
    if not phonenumbers.is_valid_number(number):
        raise BadPhone(text, f"not a valid number (read with default region {region})")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def phone_fingerprint(e164: str, tenant_salt: bytes) -> bytes:
    """Return a ``FINGERPRINT_BYTES``-byte keyed hash of a normalised phone.

    Lets the store record who scanned a code, and spot one phone scanning
    many codes, without keeping the number itself. HMAC-SHA256 keyed per
    tenant: the salt must be secret (from the tenant's key ring), because
    the space of phone numbers is small enough to hash exhaustively; with
    the salt kept secret the fingerprint reveals nothing, and fingerprints of
    different tenants cannot be joined.
    """
    if not isinstance(e164, str) or not _E164.fullmatch(e164):
        raise BadPhone(e164, "fingerprint only normalised E.164 numbers (normalize_phone)")
    if not isinstance(tenant_salt, bytes | bytearray):
        raise BadSecret("tenant salt", "must be bytes")
    if len(tenant_salt) < MIN_SALT_BYTES:
        raise BadSecret("tenant salt", f"must be at least {MIN_SALT_BYTES} bytes")
    mac = hmac.new(bytes(tenant_salt), b"itemseal/phone/v1\x00" + e164.encode(), hashlib.sha256)
    return mac.digest()[:FINGERPRINT_BYTES]
