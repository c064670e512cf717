"""Parse and validate request bodies: bytes in, a request object or a 4xx error out.

Pure and strict: a wrong type names its field (422), bad JSON is 400, and a
body past its limit is refused before it is parsed (413). Nothing here can
raise anything but a ``RequestError``, so bad input never becomes a 500.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import orjson

from verify_api.check.engine import CheckRequest
from verify_api.check.scanrecord import CHANNELS, MAX_REGION
from verify_api.exc import InvalidField, InvalidJson, TooManyCodes

MAX_VERIFY_BODY = 4096
MAX_BATCH_CODES = 1000
MAX_BATCH_BODY = 256 * 1024
MAX_CODE_CHARS = 512
_REGION = re.compile(rf"^[A-Za-z0-9][A-Za-z0-9-]{{0,{MAX_REGION - 1}}}$")
_VERIFY_FIELDS = frozenset(("code", "phone", "channel", "region"))


def load_object(body: bytes) -> dict:
    """Parse a JSON object; anything else is InvalidJson."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidJson(f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidJson("the body must be a JSON object")
    return data


def string_field(
    data: Mapping[str, object], name: str, *, required: bool = False, limit: int = 64
) -> str | None:
    """The string field ``name``; a 422 naming it when missing (if required), not text, or long."""
    value = data.get(name)
    if value is None:
        if required:
            raise InvalidField(name, f"{name!r} is required")
        return None
    if not isinstance(value, str):
        raise InvalidField(name, f"{name!r} must be a string, not {type(value).__name__}")
    if len(value) > limit:
        raise InvalidField(name, f"{name!r} is longer than {limit} characters")
    return value


def _channel(data: dict) -> str:
    channel = string_field(data, "channel") or "api"
    if channel not in CHANNELS:
        raise InvalidField("channel", f"'channel' must be one of {', '.join(CHANNELS)}")
    return channel


def _region(data: dict) -> str | None:
    region = string_field(data, "region", limit=MAX_REGION)
    if region is not None and not _REGION.fullmatch(region):  # "$" alone lets "CN\n" in
        raise InvalidField("region", "'region' is letters, digits and '-', e.g. CN-SH")
    return region.upper() if region else None


def parse_verify(body: bytes) -> CheckRequest:
    """``{"code", "phone"?, "channel"?, "region"?}`` -> CheckRequest."""
    data = load_object(body)
    unknown = set(data) - _VERIFY_FIELDS
    if unknown:
        raise InvalidField(sorted(unknown)[0], f"unknown field {sorted(unknown)[0]!r}")
    code = string_field(data, "code", required=True, limit=MAX_CODE_CHARS)
    phone = string_field(data, "phone", limit=32)
    return CheckRequest(code, phone or None, _channel(data), _region(data), region_trusted=False)


@dataclass(frozen=True)
class BatchRequest:
    codes: list[str]


def parse_batch(body: bytes, max_codes: int = MAX_BATCH_CODES) -> BatchRequest:
    """``{"codes": [...]}`` with 1 to ``max_codes`` strings -> BatchRequest."""
    data = load_object(body)
    codes = data.get("codes")
    if not isinstance(codes, list):
        raise InvalidField("codes", "'codes' must be a list of strings")
    if not codes:
        raise InvalidField("codes", "'codes' is empty")
    if len(codes) > max_codes:
        raise TooManyCodes(f"at most {max_codes} codes per request, got {len(codes)}")
    for i, code in enumerate(codes):
        if not isinstance(code, str) or len(code) > MAX_CODE_CHARS:
            raise InvalidField("codes", f"codes[{i}] must be a string of at most 512 characters")
    unknown = set(data) - {"codes"}
    if unknown:
        raise InvalidField(sorted(unknown)[0], f"unknown field {sorted(unknown)[0]!r}")
    return BatchRequest(codes)
