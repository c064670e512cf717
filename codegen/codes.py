"""The printed code: profiles, Damm check digit, serial permutation, digit layout.

Pure functions only (no keys are stored here, no I/O), so every property of the
format can be tested exhaustively. The layout is documented in
``schemas/code-format.md``; keep the two in step.

A code of profile P is ``S K T C`` read left to right:

* ``S`` ``P.serial_digits`` digits: the serial after a keyed Feistel permutation,
  so consecutive labels share no prefix and reveal no production volume;
* ``K`` one digit: the key id, masked with the last tag digit so it is not a
  constant column on a reel of labels;
* ``T`` ``P.tag_digits`` digits: the HMAC-SHA256 tag (see ``signing``);
* ``C`` the Damm check digit over everything before it, which catches every
  single-digit slip and every swap of two adjacent digits.
"""

from __future__ import annotations

import enum
import functools
import unicodedata
from dataclasses import dataclass

import numpy as np

FEISTEL_ROUNDS = 6
KEY_ID_SLOTS = 10
GROUP = 4  # digits per printed group, and per vectorised step
MASK64 = (1 << 64) - 1
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB

# Damm's totally anti-symmetric quasigroup of order 10.
DAMM_TABLE = np.array(
    [
        [0, 3, 1, 7, 5, 9, 8, 6, 4, 2],
        [7, 0, 9, 2, 1, 5, 4, 8, 6, 3],
        [4, 2, 0, 6, 8, 7, 1, 3, 5, 9],
        [1, 7, 5, 0, 9, 8, 3, 4, 2, 6],
        [6, 1, 2, 3, 0, 4, 5, 9, 7, 8],
        [3, 6, 7, 4, 2, 0, 9, 5, 8, 1],
        [5, 8, 6, 9, 7, 2, 0, 1, 3, 4],
        [8, 9, 4, 5, 3, 6, 2, 0, 1, 7],
        [9, 4, 3, 8, 6, 1, 7, 2, 0, 5],
        [2, 5, 8, 1, 4, 3, 6, 7, 9, 0],
    ],
    dtype=np.uint8,
)
_DAMM_ROWS = tuple(tuple(int(v) for v in row) for row in DAMM_TABLE)


@dataclass(frozen=True)
class Profile:
    """A code length and how its digits are shared between serial and tag."""

    name: str
    wire_id: int
    serial_digits: int
    tag_digits: int
    serial_base: int

    def __post_init__(self) -> None:
        if not 1 <= self.tag_digits <= 19:  # a tag is 8 digest bytes (signing.tag_matches)
            raise ValueError(f"a tag has 1 to 19 digits, not {self.tag_digits}")

    @property
    def length(self) -> int:
        return self.serial_digits + 1 + self.tag_digits + 1

    @property
    def serial_space(self) -> int:
        """Serials a code of this profile can carry: ``[0, 10**serial_digits)``."""
        return 10**self.serial_digits

    @property
    def serial_range(self) -> range:
        """The tenant serials this profile mints: disjoint across profiles.

        Both profiles share one serial namespace per tenant (so one batch index
        serves both); the short profile takes the low serials it can encode.
        """
        return range(self.serial_base, self.serial_space)

    @property
    def tag_modulus(self) -> int:
        return 10**self.tag_digits

    @property
    def guess_probability(self) -> float:
        """Chance that one well-formed random code carries a valid tag."""
        return 1.0 / self.tag_modulus


NUMERIC_24 = Profile("numeric-24", wire_id=1, serial_digits=9, tag_digits=13, serial_base=10**8)
NUMERIC_20 = Profile("numeric-20", wire_id=2, serial_digits=8, tag_digits=10, serial_base=0)
PROFILES: dict[str, Profile] = {p.name: p for p in (NUMERIC_24, NUMERIC_20)}
PROFILE_BY_LENGTH: dict[int, Profile] = {p.length: p for p in PROFILES.values()}
DEFAULT_PROFILE = NUMERIC_24


class Verdict(enum.StrEnum):
    """What the format alone can say about a piece of text."""

    MALFORMED = "malformed"
    MISTYPED = "mistyped"
    WELL_FORMED = "well_formed"


@dataclass(slots=True)  # not frozen: made on every check (ARCHITECTURE.md)
class ParsedCode:
    """A code whose check digit holds; the tag is not checked yet."""

    digits: str
    profile: Profile
    key_id: int
    permuted_serial: int
    tag: int


@dataclass(frozen=True)
class Rejected:
    """Text that is not a code (``malformed``) or a code typed wrong (``mistyped``)."""

    text: str
    verdict: Verdict


# ---------------------------------------------------------------- check digit


def damm_check_digit(digits: str) -> int:
    """Return the digit that makes the Damm checksum of ``digits`` zero."""
    interim = 0
    for ch in digits:
        interim = _DAMM_ROWS[interim][ord(ch) - 48]
    return interim


def damm_check_digits(matrix: np.ndarray) -> np.ndarray:
    """Vectorised ``damm_check_digit`` over the rows of an (n, k) digit matrix."""
    state = np.zeros(matrix.shape[0], dtype=np.intp)
    for col in range(matrix.shape[1]):
        state = _DAMM_FLAT[state * 10 + matrix[:, col]]
    return state.astype(np.uint8)


def _damm_block_table(width: int) -> np.ndarray:
    """Flat table: ``[state * 10**width + value]`` -> state after the ``width`` digits of value.

    Feeding a code four digits at a time takes a quarter of the table lookups of
    ``damm_check_digits``; the 4-digit table is 100,000 bytes and stays in cache.
    """
    values = np.arange(10**width)
    table = np.empty((10, 10**width), dtype=np.uint8)
    for start in range(10):
        state = np.full(values.shape, start, dtype=np.intp)
        for pos in range(width - 1, -1, -1):
            state = _DAMM_FLAT[state * 10 + (values // 10**pos) % 10]
        table[start] = state
    return table.reshape(-1)


_DAMM_FLAT = DAMM_TABLE.reshape(-1).astype(np.intp)
_DAMM_BLOCKS = {width: _damm_block_table(width) for width in range(1, GROUP + 1)}


# ---------------------------------------------------------- serial permutation


def _split(profile: Profile) -> tuple[int, int]:
    high = profile.serial_digits // 2
    return high, profile.serial_digits - high


@functools.cache
def _round_moduli(profile: Profile) -> tuple[int, ...]:
    high, low = _split(profile)
    return tuple(10 ** (high if i % 2 == 0 else low) for i in range(FEISTEL_ROUNDS))


def _mix(z: int) -> int:
    z = ((z ^ (z >> 30)) * _MIX1) & MASK64
    z = ((z ^ (z >> 27)) * _MIX2) & MASK64
    return z ^ (z >> 31)


def _mix_array(z: np.ndarray) -> np.ndarray:
    z = (z ^ (z >> np.uint64(30))) * np.uint64(_MIX1)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(_MIX2)
    return z ^ (z >> np.uint64(31))


def permute_serial(serial: int, round_keys: tuple[int, ...], profile: Profile) -> int:
    """Map a serial to its printed position; a bijection on the serial space.

    An FF1-style alternating Feistel network over the two decimal halves, so the
    image stays inside ``profile.serial_space`` without cycle walking.
    """
    _, low = _split(profile)
    a, b = divmod(serial, 10**low)
    for key, modulus in zip(round_keys, _round_moduli(profile), strict=True):
        a, b = b, (a + _mix(b ^ key)) % modulus
    return a * 10**low + b


def unpermute_serial(permuted: int, round_keys: tuple[int, ...], profile: Profile) -> int:
    """Invert ``permute_serial``."""
    _, low = _split(profile)
    a, b = divmod(permuted, 10**low)
    for key, modulus in zip(reversed(round_keys), reversed(_round_moduli(profile)), strict=True):
        a, b = (b - _mix(a ^ key)) % modulus, a
    return a * 10**low + b


def permute_serials(
    serials: np.ndarray, round_keys: tuple[int, ...], profile: Profile
) -> np.ndarray:
    """Vectorised ``permute_serial`` over a uint64 array."""
    _, low = _split(profile)
    low_mod = np.uint64(10**low)
    a = serials // low_mod
    b = serials - a * low_mod
    with np.errstate(over="ignore"):
        for key, modulus in zip(round_keys, _round_moduli(profile), strict=True):
            a, b = b, umod(a + umod(_mix_array(b ^ np.uint64(key)), modulus), modulus)
    return a * low_mod + b


def unpermute_serials(
    permuted: np.ndarray, round_keys: tuple[int, ...], profile: Profile
) -> np.ndarray:
    """Vectorised ``unpermute_serial`` (a distributor's carton of codes at once)."""
    _, low = _split(profile)
    low_mod = np.uint64(10**low)
    a = permuted // low_mod
    b = permuted - a * low_mod
    steps = reversed(list(zip(round_keys, _round_moduli(profile), strict=True)))
    with np.errstate(over="ignore"):
        for key, modulus in steps:
            m = np.uint64(modulus)
            mixed = umod(_mix_array(a ^ np.uint64(key)), modulus)
            a, b = umod(b + m - mixed, modulus), a  # b < m and mixed < m: never negative
    return a * low_mod + b


# ------------------------------------------------------------------- layout


def umod(values: np.ndarray, modulus: int) -> np.ndarray:
    """``values % modulus`` for unsigned arrays, about 4x faster than numpy's ``%``.

    numpy divides by a scalar with libdivide but computes ``%`` with a hardware
    division per element; a divide, multiply and subtract is cheaper.
    """
    m = values.dtype.type(modulus)
    return values - (values // m) * m


def _digits_of(values: np.ndarray, width: int) -> np.ndarray:
    """Split uint64 ``values`` into an (n, width) matrix of decimal digits."""
    out = np.empty((values.shape[0], width), dtype=np.uint8)
    rest = values.astype(np.uint64)
    for col in range(width - 1, -1, -1):
        quotient = rest // np.uint64(10)
        out[:, col] = rest - quotient * np.uint64(10)
        rest = quotient
    return out


def masked_key_digit(key_id: int, tag: int) -> int:
    return (key_id + tag) % 10


def group_values(
    permuted_serials: np.ndarray, key_id: int, tags: np.ndarray, profile: Profile
) -> list[np.ndarray]:
    """Values of the code's printed groups of ``GROUP`` digits, check digit included.

    Group ``j`` holds digits ``[4j, 4j + 4)`` of the code as one integer (the
    last group may be shorter). Working on groups instead of single digits takes
    a handful of array passes per code, and gives the Damm digit (via
    ``_DAMM_BLOCKS``) and the printed text (via 4-digit lookup tables) directly.
    """
    s, t, length = profile.serial_digits, profile.tag_digits, profile.length
    tags = tags.astype(np.uint64)
    key_digits = umod(tags + np.uint64(key_id), 10)
    fields = ((0, s, permuted_serials.astype(np.uint64)), (s, 1, key_digits), (s + 1, t, tags))
    groups = []
    for g0 in range(0, length, GROUP):
        g1 = min(g0 + GROUP, length)
        value = None
        for f0, width, digits in fields:
            a, b = max(g0, f0), min(g1, f0 + width)
            if a < b:
                part = _scaled(_field_slice(digits, width, a - f0, b - f0), g1 - b)
                value = part if value is None else value + part
        groups.append(value)
    state = np.zeros(permuted_serials.shape[0], dtype=np.intp)
    body = length - 1
    for g0, value in zip(range(0, length, GROUP), groups, strict=True):
        width = min(g0 + GROUP, body) - g0
        fed = _scaled(value, -(min(g0 + GROUP, length) - g0 - width))
        state = _DAMM_BLOCKS[width][state * 10**width + fed.astype(np.intp)].astype(np.intp)
    groups[-1] = groups[-1] + state.astype(np.uint64)
    return groups


def _scaled(values: np.ndarray, exponent: int) -> np.ndarray:
    """``values * 10**exponent`` (floor division for a negative exponent)."""
    if exponent > 0:
        return values * np.uint64(10**exponent)
    if exponent < 0:
        return values // np.uint64(10**-exponent)
    return values


def _field_slice(digits: np.ndarray, width: int, lo: int, hi: int) -> np.ndarray:
    """Digits ``[lo, hi)`` (from the left) of ``width``-digit values, as a number."""
    part = digits // np.uint64(10 ** (width - hi)) if hi < width else digits
    return umod(part, 10 ** (hi - lo)) if lo > 0 else part


def compose_digits(
    permuted_serials: np.ndarray, key_id: int, tags: np.ndarray, profile: Profile
) -> np.ndarray:
    """Lay out the full (n, profile.length) digit matrix of a run of codes."""
    groups = group_values(permuted_serials, key_id, tags, profile)
    matrix = np.empty((permuted_serials.shape[0], profile.length), dtype=np.uint8)
    for j, value in enumerate(groups):
        g0 = j * GROUP
        width = min(GROUP, profile.length - g0)
        matrix[:, g0 : g0 + width] = _digits_of(value, width)
    return matrix


def compose_code(permuted_serial: int, key_id: int, tag: int, profile: Profile) -> str:
    """Scalar ``compose_digits``: the plain digit string of one code."""
    body = (
        f"{permuted_serial:0{profile.serial_digits}d}"
        f"{masked_key_digit(key_id, tag)}"
        f"{tag:0{profile.tag_digits}d}"
    )
    return body + str(damm_check_digit(body))


# ------------------------------------------------------------------ parsing

_SEPARATORS = frozenset(" -\u00a0\u3000\u2010\u2011\u2012\u2013\u2014\u2212\uff0d\t")


def normalize(text: str) -> str | None:
    """Reduce typed or scanned text to ASCII digits, or None if it is not digits.

    Accepts spaces and dashes of every width and full-width digits, as phones
    in China type them.
    """
    if len(text) > 64:
        return None
    if text.isascii() and text.isdigit():
        return text  # what most checks send: nothing to take out
    out = []
    for ch in text:
        if "0" <= ch <= "9":
            out.append(ch)
        elif ch in _SEPARATORS:
            continue
        elif ch.isdigit():
            try:
                out.append(str(unicodedata.digit(ch)))
            except ValueError:
                return None
        else:
            return None
    return "".join(out)


def parse_code(text: str) -> ParsedCode | Rejected:
    """Decide what the format alone says about ``text``: no key is needed.

    A wrong length or a non-digit is ``malformed``; a failing check digit is
    ``mistyped``. Everything else is well formed and carries its key id.
    """
    digits = normalize(text)
    profile = PROFILE_BY_LENGTH.get(len(digits)) if digits else None
    if profile is None:
        return Rejected(text, Verdict.MALFORMED)
    if damm_check_digit(digits) != 0:
        return Rejected(text, Verdict.MISTYPED)
    s, t = profile.serial_digits, profile.tag_digits
    tag = int(digits[s + 1 : s + 1 + t])
    return ParsedCode(
        digits=digits,
        profile=profile,
        key_id=(int(digits[s]) - tag) % 10,
        permuted_serial=int(digits[:s]),
        tag=tag,
    )


def group_digits(digits: str, size: int = 4) -> str:
    """Format for printing: groups of four separated by spaces."""
    return " ".join(digits[i : i + size] for i in range(0, len(digits), size))
