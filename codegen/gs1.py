"""GS1 Digital Link for GTIN products: the code inside AI 21, and reading it back.

Pure functions, no I/O. The format is documented in ``schemas/code-format.md``
("GS1 Digital Link for GTIN products"); keep the two in step.

Why this module exists: GS1 caps AI 21 (serial number) at 20 characters of the
"GS1 AI encodable character set 82", and the default code is 24 digits. A link
``/01/{gtin}/21/{24 digits}`` is refused by GS1 readers (or, worse, cut to 20
characters). Printing only 20 digits would drop the tag below the 40 bits the
default profile promises, so the 24 digits travel in a *compact serial*
instead: the same number written in a denser alphabet, decoded back to exactly
the same code. Nothing about the code changes, only how the link spells it.

The compact serial of a 24-digit code is ``MARKER`` followed by 16 characters of
Crockford's base 32 (``0-9 A-Z`` without ``I L O U``), 17 characters in all:

* the two 12-digit halves of the code are each written in 8 base-32 characters
  (``10**12 < 32**8 = 2**40``), so encoding needs no arithmetic wider than 64
  bits and vectorises over a whole run of codes (``fill_compact``);
* letters and digits need no percent-encoding in a URL path, and the alphabet
  is a subset of GS1's character set 82;
* it is read case-insensitively (Crockford also reads ``I``/``L`` as 1 and
  ``O`` as 0): the SMS channel case-folds a pasted link before reading it,
  and a 62-symbol alphabet would then turn a genuine code into another one;
* ``MARKER`` is a letter, and a plain code is digits only, so a serial is
  compact exactly when it starts with the marker; ``U`` is not a base-32
  digit, so the marker cannot be mistaken for part of the number.

Codes of 20 digits or fewer (the ``numeric-20`` profile) fit AI 21 as they are
and stay plain digits.
"""

from __future__ import annotations

import re
from typing import NamedTuple
from urllib.parse import quote, unquote, urlsplit

import numpy as np

from codegen.exc import CodegenError

MAX_SERIAL = 20  # GS1: AI 21 is at most 20 characters
MAX_LOT = 20  # GS1: AI 10 is at most 20 characters
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford's base 32
MARKER = "U"
HALF_DIGITS = 12  # a compact serial writes the code in halves of 12 digits
HALF_CHARS = 8  # ... each in 8 base-32 characters: 10**12 < 32**8
COMPACT_DIGITS = 2 * HALF_DIGITS  # the code length that is written compact (numeric-24)
COMPACT_WIDTH = len(MARKER) + 2 * HALF_CHARS  # 17 characters
# In a URL template: where the compact serial of each code goes (render.TextLayout).
COMPACT_SLOT = "{gs1_serial}"
GTIN_LENGTHS = (8, 12, 13, 14)

# GS1 AI encodable character set 82, for lots read from a link.
_CSET82 = re.compile(r"[!\"%&'()*+,\-./0-9:;<=>?A-Z_a-z]{1," + str(MAX_LOT) + "}")
_VALUE = {ch: i for i, ch in enumerate(ALPHABET)}
_VALUE.update({ch.lower(): i for ch, i in list(_VALUE.items())})
_VALUE.update({"I": 1, "i": 1, "L": 1, "l": 1, "O": 0, "o": 0})  # Crockford's aliases
# ASCII of every 10-bit value as two base-32 characters, one little-endian uint16 each.
_PAIRS = np.frombuffer(
    b"".join((ALPHABET[v >> 5] + ALPHABET[v & 31]).encode() for v in range(1024)), dtype="<u2"
)


class Gs1Error(CodegenError, ValueError):
    """Text that is not a GS1 Digital Link / element string of an itemseal code.

    A ``ValueError`` too, as the parsers' callers catch it (``biip``'s habit).
    """


class Gs1Read(NamedTuple):
    """What a link or element string says: GTIN-14, the code's digits, the lot if any."""

    gtin: str
    code: str
    lot: str | None


# ----------------------------------------------------------------------- GTIN


def gtin_check_digit(body: str) -> int:
    """The GS1 mod-10 check digit of ``body``: weights 3, 1, 3, ... from the right."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return -total % 10


def normalize_gtin(text: str) -> str:
    """Check a GTIN-8, -12, -13 or -14 and return it as 14 digits.

    A Digital Link may carry any of the four lengths; GS1 compares them in the
    14-digit form, so a resolver and a test see one GTIN for one product.
    """
    if not (text.isascii() and text.isdigit() and len(text) in GTIN_LENGTHS):
        raise Gs1Error(f"bad GTIN {text!r}: 8, 12, 13 or 14 digits")
    if gtin_check_digit(text[:-1]) != int(text[-1]):
        raise Gs1Error(f"bad GTIN {text!r}: the check digit does not match")
    return text.zfill(14)


# -------------------------------------------------------------- compact serial


def compact_serial(code: str) -> str:
    """Write a 24-digit code as its 17-character compact serial (``MARKER`` + base 32)."""
    if not (len(code) == COMPACT_DIGITS and code.isascii() and code.isdigit()):
        raise Gs1Error(f"a compact serial carries {COMPACT_DIGITS} digits, got {code!r}")
    out = [MARKER]
    for half in (code[:HALF_DIGITS], code[HALF_DIGITS:]):
        value = int(half)
        out.extend(ALPHABET[(value >> (5 * k)) & 31] for k in range(HALF_CHARS - 1, -1, -1))
    return "".join(out)


def decode_compact(serial: str) -> str | None:
    """The 24 digits of a compact serial, or None if ``serial`` is not one.

    Leading zeros are kept: each half is padded to 12 digits. A half whose value
    is 10**12 or more was never written by ``compact_serial``: rejected.
    """
    if len(serial) != COMPACT_WIDTH or serial[0] not in (MARKER, MARKER.lower()):
        return None
    halves = []
    for at in (1, 1 + HALF_CHARS):
        value = 0
        for ch in serial[at : at + HALF_CHARS]:
            digit = _VALUE.get(ch)
            if digit is None:
                return None
            value = value * 32 + digit
        if value >= 10**HALF_DIGITS:
            return None
        halves.append(f"{value:0{HALF_DIGITS}d}")
    return "".join(halves)


def serial_for(code: str) -> str:
    """The AI 21 value of a code: itself if it fits 20 characters, else compact."""
    if len(code) <= MAX_SERIAL:
        if not (code.isascii() and code.isdigit()):
            raise Gs1Error(f"a code is digits, got {code!r}")
        return code
    return compact_serial(code)


def code_of_serial(serial: str) -> str:
    """Invert ``serial_for``: the code's digits, or Gs1Error."""
    if serial[:1] in (MARKER, MARKER.lower()):
        code = decode_compact(serial)
        if code is None:
            raise Gs1Error(f"AI 21 {serial!r} starts like a compact serial but is not one")
        return code
    if serial.isascii() and serial.isdigit() and len(serial) <= MAX_SERIAL:
        return serial
    raise Gs1Error(f"AI 21 {serial!r} is neither a plain code nor a compact serial")


def compact_filler() -> bytes:
    """The bytes ``TextLayout.prefill`` lays down for a compact slot (marker, zeros)."""
    return (MARKER + ALPHABET[0] * (2 * HALF_CHARS)).encode()


def fill_compact(rows: np.ndarray, offset: int, groups: list[np.ndarray]) -> None:
    """Write the compact serial of each row's code at byte ``offset`` of ``rows``.

    ``groups`` are the six 4-digit group values of 24-digit codes
    (``codes.group_values``); the marker is constant and already in place
    (``compact_filler``). Each 12-digit half is three groups, below 2**40, so
    four 10-bit lookups of two characters write it: a handful of array passes
    for a whole run of codes, no Python object per code.
    """
    if len(groups) != COMPACT_DIGITS // 4:
        raise ValueError(
            f"a compact serial needs the 6 groups of a 24-digit code, got {len(groups)}"
        )
    at = offset + len(MARKER)
    for first in (0, 3):
        g = [groups[first + k].astype(np.uint64) for k in range(3)]
        half = (g[0] * np.uint64(10**4) + g[1]) * np.uint64(10**4) + g[2]
        for k in range(HALF_CHARS // 2):
            shift = np.uint64(10 * (HALF_CHARS // 2 - 1 - k))
            pairs = _PAIRS[((half >> shift) & np.uint64(1023)).astype(np.intp)]
            _put_u16(rows, at, pairs)
            at += 2


def _put_u16(rows: np.ndarray, offset: int, values: np.ndarray) -> None:
    """Store one uint16 per row at byte ``offset`` of a C-contiguous (n, width) matrix."""
    column = np.ndarray(
        (rows.shape[0],), dtype="<u2", buffer=rows, offset=offset, strides=(rows.shape[1],)
    )
    column[:] = values


# ------------------------------------------------------------------ Digital Link


def link_template(base_url: str, gtin: str, code_length: int, code_slot: str) -> str:
    """``digital_link`` with a placeholder where each code's serial goes.

    ``code_slot`` (the plain digits) if codes of ``code_length`` digits fit AI 21,
    else ``COMPACT_SLOT``; a renderer fills either per code.
    """
    placeholder = code_slot if code_length <= MAX_SERIAL else COMPACT_SLOT
    return f"{base_url.rstrip('/')}/01/{normalize_gtin(gtin)}/21/{placeholder}"


def digital_link(base_url: str, gtin: str, code: str, lot: str | None = None) -> str:
    """``{base}/01/{gtin14}/[10/{lot}/]21/{serial}``, the serial compact if the code is long.

    ``base_url`` is scheme and host (and a path prefix if the resolver has one),
    kept as given: a tenant whose verify URL is ``http://`` gets ``http://``.
    """
    parts = [base_url.rstrip("/"), "01", normalize_gtin(gtin)]
    if lot is not None:
        if not _CSET82.fullmatch(lot):
            raise Gs1Error(f"bad lot {lot!r}: 1-{MAX_LOT} characters of GS1's set 82")
        parts += ["10", quote(lot, safe="")]
    parts += ["21", serial_for(code)]
    return "/".join(parts)


# Path segments of a Digital Link: AI or its short name -> AI.
_DL_NAMES = {"01": "01", "gtin": "01", "10": "10", "lot": "10", "21": "21", "ser": "21",
             "22": "22", "cpv": "22"}  # fmt: skip
_DL_ORDER = ("22", "10", "21")  # the qualifiers of a GTIN, in the order GS1 fixes


def parse_digital_link(url_or_path: str) -> Gs1Read:
    """Read ``/01/{gtin}/[10/{lot}/]21/{serial}`` from a URL or a path; Gs1Error if not one.

    A path prefix before ``/01/`` (a resolver's) and a query string are allowed;
    segments are percent-decoded. The serial must decode (``code_of_serial``).
    """
    path = urlsplit(url_or_path).path if "://" in url_or_path else url_or_path.split("?")[0]
    segments = [unquote(s) for s in path.split("/") if s]
    names = [_DL_NAMES.get(s.lower()) for s in segments]
    if "01" not in names:
        raise Gs1Error(f"no /01/{{gtin}} in {url_or_path!r}")
    start = names.index("01")
    pairs = segments[start:]
    if len(pairs) % 2:
        raise Gs1Error(f"an AI without its value in {url_or_path!r}")
    values: dict[str, str] = {}
    order = -1
    for i in range(0, len(pairs), 2):
        ai = _DL_NAMES.get(pairs[i].lower())
        if i == 0:
            values["01"] = pairs[1]
            continue
        if ai not in _DL_ORDER or _DL_ORDER.index(ai) <= order:
            raise Gs1Error(f"unexpected {pairs[i]!r} in {url_or_path!r}")
        order = _DL_ORDER.index(ai)
        values[ai] = pairs[i + 1]
    return _read(values, url_or_path)


def _read(values: dict[str, str], text: str) -> Gs1Read:
    if "21" not in values:
        raise Gs1Error(f"no serial (AI 21) in {text!r}")
    lot = values.get("10")
    if lot is not None and not _CSET82.fullmatch(lot):
        raise Gs1Error(f"bad lot {lot!r} in {text!r}")
    return Gs1Read(normalize_gtin(values["01"]), code_of_serial(values["21"]), lot)


# --------------------------------------------------------------- element string

GS = "\x1d"  # FNC1 as a scanner sends it between variable-length fields
# GS1 "predefined length" AI prefixes -> total length, AI digits included (GS1
# General Specifications): AI 414 has 13 data digits, "414" + 13 = 16.
PREDEFINED_TOTAL = {
    "00": 20, "01": 16, "02": 16, "03": 16, "04": 18,
    "11": 8, "12": 8, "13": 8, "14": 8, "15": 8, "16": 8, "17": 8, "18": 8, "19": 8,
    "20": 4, "31": 10, "32": 10, "33": 10, "34": 10, "35": 10, "36": 10, "41": 16,
}  # fmt: skip
_VARIABLE = {"10": MAX_LOT, "21": MAX_SERIAL, "22": 20}  # 2-digit variable-length AIs we read
_BRACKETED = re.compile(r"\((\d{2,4})\)([^()]*)")
_SYMBOLOGY_ID = re.compile(r"^\][A-Za-z]\d")


def parse_element_string(text: str) -> Gs1Read:
    """Read GTIN, serial and lot from a GS1 element string; Gs1Error if it has none.

    Bracketed ``(01)...(10)...(21)...`` or unbracketed with FNC1 (``GS``) after
    each variable-length field but the last, optionally behind a scanner's
    ``]C1``-style symbology identifier: what a GS1 reader gives for a label.
    The bracketed form is for the eye: a value holding ``(`` or ``)`` (set 82
    allows them in a lot) is ambiguous there and misread.
    """
    text = _SYMBOLOGY_ID.sub("", text.strip())
    if text.startswith("("):
        values = {ai: value.rstrip(GS) for ai, value in _BRACKETED.findall(text)}
    else:
        values = _walk(text)
    if "01" not in values:
        raise Gs1Error(f"no GTIN (AI 01) in {text!r}")
    return _read(values, text)


def _walk(text: str) -> dict[str, str]:
    """Split an unbracketed element string: predefined lengths, then up to FNC1."""
    values: dict[str, str] = {}
    at = 0
    while at < len(text):
        prefix = text[at : at + 2]
        total = PREDEFINED_TOTAL.get(prefix)
        if total is not None:
            field = text[at : at + total]
            if len(field) != total or not (field.isascii() and field.isdigit()):
                raise Gs1Error(f"short or non-digit AI {prefix} field in {text!r}")
            values.setdefault(prefix, field[2:])  # for 31xx, 41x: the AI's rest leads the data
            at += total
            if text[at : at + 1] == GS:
                at += 1
        elif prefix in _VARIABLE:
            end = text.find(GS, at)
            end = len(text) if end < 0 else end
            value = text[at + 2 : end]
            if not 0 < len(value) <= _VARIABLE[prefix]:
                raise Gs1Error(f"AI {prefix} of length {len(value)} in {text!r}")
            values.setdefault(prefix, value)
            at = end + 1
        else:
            raise Gs1Error(f"AI starting {prefix!r} is not one this reader knows, in {text!r}")
    return values
