"""Find the code in what a consumer typed or a scanner read.

Pure functions, no I/O. Accepted forms, besides the digits themselves (with
any spaces, dashes or full-width digits, which ``codegen.codes.normalize``
handles later):

* the URL printed in itemseal's QR code, ``https://host/.../t/{tenant}/v/{digits}``;
* a GS1 Digital Link URI, ``https://host/01/{gtin}/21/{code}`` (also the short
  names ``gtin``/``ser``, extra qualifiers such as ``/10/{lot}``, a query string);
* a GS1 element string, bracketed ``(01)...(21)...`` or unbracketed with FNC1
  (``\\x1d``) separators, optionally behind a scanner's ``]C1``-style prefix.

In the GS1 forms the code is the serial, AI 21. GS1 caps AI 21 at 20
characters, so new labels of the 24-digit default profile carry its compact
serial (``codegen.gs1``), decoded back to the digits here; we still accept any
length of digits rather than reject labels a brand has already printed.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

from codegen.codes import PROFILE_BY_LENGTH
from codegen.gs1 import decode_compact

GS = "\x1d"
MAX_INPUT = 512
# Fixed-length GS1 application identifiers (first two AI digits -> length after
# them; GS1's predefined total length counts the AI, so 414 + 13 digits is "41": 14):
# the ones that may precede AI 21 without an FNC1 separator. Others are variable length.
_FIXED = {
    "00": 18, "01": 14, "02": 14, "03": 14, "04": 16,
    "11": 6, "12": 6, "13": 6, "14": 6, "15": 6, "16": 6, "17": 6, "18": 6, "19": 6,
    "20": 2, "31": 8, "32": 8, "33": 8, "34": 8, "35": 8, "36": 8, "41": 14,
}  # fmt: skip
_DL_SHORT_NAMES = {"gtin": "01", "ser": "21", "lot": "10", "cpv": "22"}
_BRACKETED = re.compile(r"\((\d{2,4})\)([^()]*)")
_TYPED_GAPS = re.compile("[\\s\\-\uff0d]")
_SYMBOLOGY_ID = re.compile(r"^\][A-Za-z]\d")
# Unbracketed element strings start with (01) and are longer than any code, so
# a code whose digits happen to read as AIs (e.g. 11xxxxxx21...) stays a code.
_LONGEST_CODE = max(PROFILE_BY_LENGTH)


def extract_code(text: str) -> str:
    """Return the code text carried by ``text``, or ``text`` itself.

    Never raises: input that is none of the known forms is returned unchanged
    and the code parser calls it ``malformed``.
    """
    found = _gs1_value(text, "21")
    if found is None:
        return text
    return decode_compact(found) or found  # a compact serial is the code's digits


def extract_gtin(text: str) -> str | None:
    """The GTIN (AI 01, as 14 digits) a GS1 link or element string carries, else None.

    The engine compares it with the GTIN of the code's product: a genuine
    serial printed under another product's GTIN is a copied label.
    """
    found = _gs1_value(text, "01")
    if not found:
        return None
    if found.isascii() and found.isdigit() and len(found) <= 14:
        return found.zfill(14)
    return found  # no GTIN at all: no product has it, so the link is refused


def _gs1_value(text: str, wanted: str) -> str | None:
    """AI ``wanted`` of the GS1 form ``text`` is in (21 also from itemseal's QR URL)."""
    if len(text) > MAX_INPUT or (len(text) <= _LONGEST_CODE and text.isdigit()):
        return None  # the common case, the code's digits alone: no GS1 form is that short
    stripped = _SYMBOLOGY_ID.sub("", text.strip())
    lowered = stripped[:8].lower()
    if lowered.startswith(("http://", "https://")):
        return _from_url(stripped, wanted)
    if stripped.startswith("("):
        return _bracketed_ai(stripped, wanted)
    # a code typed in groups ("0100 0000 ...") is no element string: count it without them
    if len(_TYPED_GAPS.sub("", stripped)) > _LONGEST_CODE and stripped.startswith("01"):
        return _unbracketed_ai(stripped, wanted)
    return None


def _from_url(url: str, wanted: str = "21") -> str | None:
    try:
        path = urlsplit(url).path
    except ValueError:
        return None
    parts = [unquote(p) for p in path.split("/") if p]
    # itemseal's own QR URL: .../t/{tenant}/v/{code}
    if len(parts) >= 4 and parts[-4] == "t" and parts[-2] == "v":
        return parts[-1] if wanted == "21" else None
    return _digital_link_value(parts, wanted)


def _digital_link_value(parts: list[str], wanted: str) -> str | None:
    """Return AI ``wanted`` of a Digital Link path: key-qualifier pairs from the GTIN on."""
    names = [_DL_SHORT_NAMES.get(p.lower(), p) for p in parts]
    for i in range(len(names) - 1):
        if names[i] == "01":
            pairs = names[i:]
            for j in range(0, len(pairs) - 1, 2):
                if pairs[j] == wanted:
                    return parts[i + j + 1]
            return None
    return None


def _bracketed_ai(text: str, wanted: str) -> str | None:
    for ai, value in _BRACKETED.findall(text):
        if ai == wanted:
            return value.rstrip(GS)
    return None


def _unbracketed_ai(text: str, wanted: str) -> str | None:
    """Walk an element string: fixed-length AIs, then variable ones up to FNC1."""
    at = 0
    while at + 2 <= len(text):
        ai = text[at : at + 2]
        at += 2
        length = _FIXED.get(ai)
        if length is not None:
            value = text[at : at + length]
            at += length
            if at < len(text) and text[at] == GS:
                at += 1
        else:
            end = text.find(GS, at)
            end = len(text) if end < 0 else end
            value = text[at:end]
            at = end + 1
        if ai == wanted:
            return value
        if length is None and ai not in ("10", "21", "22"):
            return None  # an AI we do not know the length rules of: stop guessing
    return None
