"""Member card numbers: 12 digits, not sequential, with a Damm check digit.

A card number identifies a member across a change of phone (seed 001: the new
phone is bound to the old card). It is typed on keypads and read out on the
phone, so it follows the code format's habits:

* ``P`` 11 digits: a tenant-keyed permutation of the tenant's card counter,
  so a card reveals neither how many members the brand has nor its
  neighbours' cards. The first digit is never 0, because spreadsheets in
  CRM exports drop leading zeros;
* ``C`` the Damm check digit over ``P`` (``codegen.codes.damm_check_digit``):
  every single-digit slip and every swap of two adjacent digits is caught.

12 digits on purpose: a Chinese mobile has 11 and an item code 20 or 24, so an
SMS parser tells the three apart by length alone.

The permutation is a 6-round alternating Feistel network over 11 decimal
digits (split 5 + 6) with HMAC-SHA256 round functions, cycle-walked into
``[0, CARD_SPACE)``. It is written here rather than borrowed from
``codegen.codes.permute_serial`` because that one is tied to code profiles;
only the check digit and the digit normaliser are shared.
"""

from __future__ import annotations

import hashlib
import hmac
import json

from codegen.codes import damm_check_digit
from codegen.codes import normalize as normalize_digits
from codegen.exc import MasterKeyError
from codegen.keys import MasterKey
from points_bridge.exc import BadSecret, CardSpaceExhausted

CARD_DIGITS = 12
PAYLOAD_DIGITS = CARD_DIGITS - 1
CARD_SPACE = 9 * 10 ** (PAYLOAD_DIGITS - 1)
"""Cards a tenant can issue: every 11-digit payload with a non-zero first digit."""

MIN_KEY_BYTES = 16
ROUNDS = 6
_HIGH = PAYLOAD_DIGITS // 2
_LOW = PAYLOAD_DIGITS - _HIGH
_MODULI = tuple(10 ** (_HIGH if i % 2 == 0 else _LOW) for i in range(ROUNDS))
_OFFSET = 10 ** (PAYLOAD_DIGITS - 1)
_DOMAIN = 10**PAYLOAD_DIGITS
_LABEL = b"itemseal/card/v1\x00"
_SHA256_BLOCK = 64


def _check_key(tenant_key: bytes) -> bytes:
    if not isinstance(tenant_key, bytes | bytearray):
        raise BadSecret("card key", "must be bytes")
    if len(tenant_key) < MIN_KEY_BYTES:
        raise BadSecret("card key", f"must be at least {MIN_KEY_BYTES} bytes")
    return bytes(tenant_key)


def _round(key: bytes, index: int, half: int, modulus: int) -> int:
    msg = _LABEL + bytes([index]) + half.to_bytes(8, "big")
    return int.from_bytes(hmac.digest(key, msg, "sha256")[:8], "big") % modulus


def _feistel(value: int, key: bytes) -> int:
    a, b = divmod(value, 10**_LOW)
    for index, modulus in enumerate(_MODULI):
        a, b = b, (a + _round(key, index, b, modulus)) % modulus
    return a * 10**_LOW + b


def _feistel_inverse(value: int, key: bytes) -> int:
    a, b = divmod(value, 10**_LOW)
    for index in reversed(range(ROUNDS)):
        modulus = _MODULI[index]
        a, b = (b - _round(key, index, a, modulus)) % modulus, a
    return a * 10**_LOW + b


def _permute(seq: int, key: bytes) -> int:
    """Map ``[0, CARD_SPACE)`` onto itself; cycle walking keeps it a bijection."""
    value = _feistel(seq, key)
    while value >= CARD_SPACE:
        value = _feistel(value, key)
    return value


def _unpermute(value: int, key: bytes) -> int:
    value = _feistel_inverse(value, key)
    while value >= CARD_SPACE:
        value = _feistel_inverse(value, key)
    return value


def card_number(seq: int, tenant_key: bytes) -> str:
    """Return the card number of the tenant's ``seq``-th member (from 0).

    Distinct ``seq`` give distinct cards (a bijection), so the caller only
    needs a counter, never a uniqueness retry loop. ``tenant_key`` is a
    secret of at least 16 bytes from the tenant's key ring.
    """
    key = _check_key(tenant_key)
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq < CARD_SPACE:
        raise CardSpaceExhausted(seq, CARD_SPACE)
    payload = str(_permute(seq, key) + _OFFSET)
    return payload + str(damm_check_digit(payload))


def _hmac_pads(key: bytes) -> tuple[hashlib._Hash, hashlib._Hash]:
    """SHA-256 states after HMAC's inner and outer key blocks (RFC 2104), to copy per message."""
    if len(key) > _SHA256_BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_SHA256_BLOCK, b"\0")
    return (hashlib.sha256(bytes(x ^ 0x36 for x in key)),
            hashlib.sha256(bytes(x ^ 0x5C for x in key)))


def card_numbers(start: int, count: int, tenant_key: bytes) -> list[str]:
    """Return ``card_number(seq)`` for ``count`` sequence numbers from ``start`` (a block).

    Written out rather than calling ``card_number`` per card: the HMAC rounds
    were a fifth of an import's Python time (``benchmarks/bench_members.py``).
    ``CardNumbers`` does the work; an import keeps one for all its blocks.
    """
    return CardNumbers(tenant_key).block(start, count)


class CardNumbers:
    """``card_number`` for blocks of sequence numbers under one key (an import's cards).

    HMAC is computed from the key's inner and outer SHA-256 states, hashed
    once and copied per round (~0.7 us a round against ~2 us for
    ``hmac.digest``, which hashes the key blocks again each call). The rounds
    whose input is the 5-digit half (1, 3 and 5) have 10^5 inputs each: their
    outputs are remembered (~1 MB a round when all are met), so past the first
    ~100,000 cards of an import most of those rounds are a lookup: ~6.9 us a
    card without it, ~5.6 us over 100k cards and ~4.3 us over 1M (blocks of
    2,000 as ``benchmarks/bench_members.py``'s import takes them, timed apart;
    the importing process's Python paces the import). The same
    permutation, card for card (tests compare it with ``card_number``).
    """

    def __init__(self, tenant_key: bytes) -> None:
        self._inner, self._outer = _hmac_pads(_check_key(tenant_key))
        small = 10**_HIGH
        self._rounds = [
            (_LABEL + bytes([index]), modulus,
             [None] * small if index and _MODULI[index - 1] == small else None)
            for index, modulus in enumerate(_MODULI)
        ]

    def block(self, start: int, count: int) -> list[str]:
        """``card_number(seq)`` for ``count`` sequence numbers from ``start``."""
        if count <= 0:
            return []
        if isinstance(start, bool) or not isinstance(start, int) or start < 0:
            raise CardSpaceExhausted(start, CARD_SPACE)
        if start + count > CARD_SPACE:
            raise CardSpaceExhausted(max(start, CARD_SPACE), CARD_SPACE)
        low = 10**_LOW
        out = []
        for seq in range(start, start + count):
            value = self._feistel(seq, low)
            while value >= CARD_SPACE:  # cycle walking, as _permute
                value = self._feistel(value, low)
            payload = str(value + _OFFSET)
            out.append(payload + str(damm_check_digit(payload)))
        return out

    def _feistel(self, value: int, low: int) -> int:
        inner, outer = self._inner, self._outer
        a, b = divmod(value, low)
        for prefix, modulus, memo in self._rounds:
            f = None if memo is None else memo[b]
            if f is None:
                h = inner.copy()
                h.update(prefix + b.to_bytes(8, "big"))
                o = outer.copy()
                o.update(h.digest())
                f = int.from_bytes(o.digest()[:8], "big") % modulus
                if memo is not None:
                    memo[b] = f
            a, b = b, (a + f) % modulus
        return a * low + b


def normalize_card(text: str) -> str | None:
    """Return the 12 digits of a typed card number, or None if it cannot be one."""
    digits = normalize_digits(text) if isinstance(text, str) else None
    if digits is None or len(digits) != CARD_DIGITS or digits[0] == "0":
        return None
    return digits


def is_valid_card(text: str) -> bool:
    """Tell whether ``text`` is a well-formed card number (check digit holds).

    Needs no key and no store: a typo is answered "please re-enter" before
    any lookup. It does not say the card was issued; only the store can.
    """
    digits = normalize_card(text)
    return digits is not None and damm_check_digit(digits) == 0


def card_seq(card: str, tenant_key: bytes) -> int | None:
    """Return the sequence number behind a card, or None if it is not well formed.

    The inverse of ``card_number``: a card whose sequence is at or past the
    tenant's counter was never issued, which the caller can answer without a
    lookup.
    """
    key = _check_key(tenant_key)
    if not is_valid_card(card):
        return None
    digits = normalize_card(card)
    assert digits is not None
    return _unpermute(int(digits[:PAYLOAD_DIGITS]) - _OFFSET, key)


def format_card(card: str) -> str:
    """Group a card number by four digits for printing: ``1234 5678 9012``."""
    return " ".join(card[i : i + 4] for i in range(0, len(card), 4))


# -- the card key at rest ------------------------------------------------------------------
# The card key is stored sealed under the master key, like the tenant's signing
# keys, so a copy of Redis (a backup, a replica) does not carry it. A key
# written raw by an older version is still read, and sealed in place by the
# first process that holds the master key: the permutation must never change,
# or new cards could collide with old ones.

CARD_KEY_BYTES = 32
SEALED_PREFIX = b"sealed:"


def _card_key_context(tenant: str) -> bytes:
    return b"itemseal/card-key/" + tenant.encode()


def seal_card_key(master: MasterKey, tenant: str, card_key: bytes, nonce: bytes) -> bytes:
    """The stored form of a tenant's card key: sealed, bound to the tenant (AAD)."""
    record = master.seal_record(card_key, _card_key_context(tenant), nonce)
    return SEALED_PREFIX + json.dumps(record, sort_keys=True).encode()


def card_master(master: MasterKey | None) -> MasterKey:
    """The master key a card-issuing caller was given; a reader of members has none."""
    if master is None:
        raise MasterKeyError("issuing or listing member cards needs the master key")
    return master


def open_card_key(master: MasterKey, tenant: str, stored: bytes) -> tuple[bytes, bool]:
    """The card key from its stored form, and whether it was stored raw (to be sealed)."""
    if not stored.startswith(SEALED_PREFIX):
        return _check_key(stored), True
    record = json.loads(stored[len(SEALED_PREFIX):])
    what = f"the card key of {tenant!r}"
    return master.open_record(record, _card_key_context(tenant), what), False
