"""Phone numbers of members: one canonical E.164 form, fast for the common case.

A member is found by phone, and the same phone arrives as ``13812345678`` from
an SMS gateway, ``+86 138-1234-5678`` from the web form, ``0086 138 1234 5678``
from a CRM import and in full-width digits from a Chinese IME. Unless all of
them become one string, one person becomes several members, so every entry
point calls ``normalize_phone`` before any lookup.

Most checks carry a plain national mobile number (``13800138000`` from an SMS
gateway), and the full parse costs ~14 us; ``_national_mobile`` answers those
from phonenumbers' own metadata for the region in ~1 us and steps aside for
anything else (tests prove both give the same answer).

Pure functions: no I/O, no clock. The per-tenant default region comes from the
caller (tenant configuration); it is CN when unset.
"""

from __future__ import annotations

import functools
import re
import unicodedata

import phonenumbers

from points_bridge.exc import BadPhone, BadRegion

DEFAULT_REGION = "CN"

MAX_INPUT_CHARS = 64

# What a person may type around the digits: spaces, dashes, dots, brackets, slash.
# Letters are refused: phonenumbers would read "ext 5" or vanity letters, which
# never belong to a member's phone.
_ALLOWED = re.compile(r"[0-9+\s\-.()/\u2010-\u2015\u2212]*")
_SEPARATORS = str.maketrans("", "", " -")


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
    fast = _national_mobile(text, region)
    if fast is not None:
        return fast
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
    national or carrier prefix, letters. ``normalize_phone`` then parses. The region's
    own E.164 form (``+86`` and a mobile number) is the same number without its code.
    """
    rules = _mobile_rules(region)
    if rules is None or not text.isascii():
        return None
    digits = text.translate(_SEPARATORS)
    mobile, general, prefix, country = rules
    if digits.startswith(country):  # E.164 of the region itself (an export, a CRM): +86...
        digits = digits[len(country):]
        prefix = None  # after the country code no national prefix is stripped
    if (
        digits.isdigit()
        and mobile.fullmatch(digits)
        and general.fullmatch(digits)
        and (prefix is None or not prefix.match(digits))
    ):
        return country + digits
    return None
