"""Coupon codes: signed like product codes, with a key purpose and a profile of their own.

A coupon is read aloud or typed at a shop's till, so it is short: 15 digits
(``1234 5678 9012 345``) — a 7-digit permuted serial, the masked key digit, a
6-digit HMAC tag and a Damm check digit, laid out by the same code machinery
as product codes (``codes.compose_code``, ``signing.CodeSigner``). A typo is
caught by the check digit (``mistyped``) before any store is asked; a made-up
code fails the tag (one chance in a million per try, and the redeem route
needs a cashier's token besides).

The tag key is not the product key: ``coupon_signer`` derives a secret of its
own from the tenant key (HMAC with the label ``itemseal/coupon/v1``), so a
coupon's tag never says anything about product codes or the other way round,
and the 15-digit length is no product code's (``codes.PROFILE_BY_LENGTH``), so
a coupon typed into the verify page is ``malformed`` there.
"""

from __future__ import annotations

import hashlib
import hmac

from codegen.codes import (
    ParsedCode,
    Profile,
    Rejected,
    Verdict,
    damm_check_digit,
    group_digits,
    normalize,
)
from codegen.signing import CodeSigner

COUPON_15 = Profile("coupon-15", wire_id=9, serial_digits=7, tag_digits=6, serial_base=1)
_COUPON_LABEL = b"itemseal/coupon/v1"


def coupon_signer(product_signer: CodeSigner) -> CodeSigner:
    """The coupon signer of a tenant key: same key id, a secret derived for coupons only."""
    secret = hmac.digest(product_signer.secret, _COUPON_LABEL, hashlib.sha256)
    return CodeSigner(secret, product_signer.key_id, COUPON_15)


def parse_coupon(text: str) -> ParsedCode | Rejected:
    """What the format alone says about a typed coupon (``codes.parse_code`` for coupons)."""
    digits = normalize(text)
    if not digits or len(digits) != COUPON_15.length:
        return Rejected(text, Verdict.MALFORMED)
    if damm_check_digit(digits) != 0:
        return Rejected(text, Verdict.MISTYPED)
    s, t = COUPON_15.serial_digits, COUPON_15.tag_digits
    tag = int(digits[s + 1 : s + 1 + t])
    return ParsedCode(digits=digits, profile=COUPON_15, key_id=(int(digits[s]) - tag) % 10,
                      permuted_serial=int(digits[:s]), tag=tag)


def printed(code: str) -> str:
    """A coupon as shown to people: groups of four digits."""
    return group_digits(code)
