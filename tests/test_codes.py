"""Properties of the code format: round trip, typo detection, tamper detection, permutation."""

from __future__ import annotations

import hmac
import math
from functools import partial

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codegen.checker import COUNTERFEIT
from codegen.codes import (
    NUMERIC_20,
    NUMERIC_24,
    PROFILES,
    ParsedCode,
    Rejected,
    Verdict,
    damm_check_digit,
    group_digits,
    normalize,
    parse_code,
    permute_serial,
    permute_serials,
    unpermute_serial,
    unpermute_serials,
)
from codegen.signing import CodeSigner

ALL_PROFILES = list(PROFILES.values())
SECRET = bytes(range(32))
signer_factory = partial(CodeSigner, SECRET)

profiles = st.sampled_from(ALL_PROFILES)
key_ids = st.integers(0, 9)
secrets = st.binary(min_size=32, max_size=32)


@st.composite
def minted(draw):
    """A (signer, serial, code) triple from any profile, key id and secret."""
    profile = draw(profiles)
    signer = CodeSigner(draw(secrets), draw(key_ids), profile)
    serial = draw(st.integers(profile.serial_base, profile.serial_space - 1))
    return signer, serial, signer.code(serial)


def test_profiles_meet_the_tag_bars():
    assert NUMERIC_24.length == 24 and NUMERIC_20.length == 20
    assert NUMERIC_24.tag_digits * math.log2(10) >= 40
    assert NUMERIC_20.tag_digits * math.log2(10) >= 32
    assert NUMERIC_24.guess_probability <= 1e-12
    assert NUMERIC_20.serial_range.stop <= NUMERIC_24.serial_range.start


@given(minted())
def test_round_trip(case):
    signer, serial, code = case
    parsed = parse_code(code)
    assert isinstance(parsed, ParsedCode)
    assert parsed.key_id == signer.key_id
    assert signer.verify(parsed) == serial


@given(minted())
def test_printed_form_parses_like_plain_digits(case):
    signer, serial, code = case
    for typed in (group_digits(code), code.replace("", "-")[1:-1], _fullwidth(group_digits(code))):
        assert signer.verify(parse_code(typed)) == serial


@settings(max_examples=60)
@given(minted())
def test_every_single_digit_slip_is_mistyped(case):
    _, _, code = case
    for pos, original in enumerate(code):
        for digit in "0123456789":
            if digit != original:
                slipped = code[:pos] + digit + code[pos + 1 :]
                assert parse_code(slipped) == Rejected(slipped, Verdict.MISTYPED)


@settings(max_examples=60)
@given(minted())
def test_every_adjacent_swap_is_mistyped(case):
    _, _, code = case
    for pos in range(len(code) - 1):
        if code[pos] != code[pos + 1]:
            swapped = code[:pos] + code[pos + 1] + code[pos] + code[pos + 2 :]
            assert parse_code(swapped) == Rejected(swapped, Verdict.MISTYPED)


@given(minted(), st.data())
def test_a_changed_tag_is_counterfeit(case, data):
    signer, _, code = case
    profile = signer.profile
    start = profile.serial_digits + 1
    pos = data.draw(st.integers(start, start + profile.tag_digits - 2), label="tag digit")
    digit = data.draw(st.sampled_from([d for d in "0123456789" if d != code[pos]]))
    body = code[:pos] + digit + code[pos + 1 : -1]
    forged = body + str(damm_check_digit(body))
    parsed = parse_code(forged)
    assert isinstance(parsed, ParsedCode), "a re-check-digited forgery is well formed"
    assert signer.verify(parsed) is None


@given(minted())
def test_another_key_or_profile_does_not_verify(case):
    signer, _, code = case
    other_secret = CodeSigner(bytes(32) if signer.secret != bytes(32) else SECRET, signer.key_id,
                              signer.profile)
    assert other_secret.verify(parse_code(code)) is None


def test_checker_calls_unknown_key_counterfeit(key_store_factory):
    store = key_store_factory("ACME")
    code = store.signer("ACME", 0, NUMERIC_24).code(NUMERIC_24.serial_base)
    body = code[:9] + str((int(code[9]) + 5) % 10) + code[10:-1]  # key id 5 does not exist
    from codegen.checker import CodeChecker

    assert CodeChecker(store, "ACME").decode(body + str(damm_check_digit(body))).verdict == (
        COUNTERFEIT
    )


@pytest.mark.parametrize(
    "text",
    ["", "abc", "1234", "1" * 23, "1" * 25, "1" * 80, "12345678901234567890123x", "１２３"],
)
def test_not_a_code_is_malformed(text):
    assert parse_code(text) == Rejected(text, Verdict.MALFORMED)


def test_normalize_accepts_what_phones_type():
    assert normalize("１２３４－５６７８\u30009012") == "123456789012"
    assert normalize("12 34-56") == "123456"
    assert normalize("12a4") is None


@given(profiles, st.lists(st.integers(0, 2**64 - 1), min_size=6, max_size=6), st.data())
def test_permutation_inverts_and_matches_vectorised(profile, keys, data):
    round_keys = tuple(keys)
    serials = data.draw(st.lists(st.integers(0, profile.serial_space - 1), min_size=1,
                                 max_size=50))
    permuted = [permute_serial(s, round_keys, profile) for s in serials]
    assert all(0 <= p < profile.serial_space for p in permuted)
    assert [unpermute_serial(p, round_keys, profile) for p in permuted] == serials
    vector = permute_serials(np.array(serials, dtype=np.uint64), round_keys, profile)
    assert vector.tolist() == permuted
    back = unpermute_serials(np.array(permuted, dtype=np.uint64), round_keys, profile)
    assert back.tolist() == serials


@given(minted(), st.data())
def test_verify_many_agrees_with_verify(case, data):
    """A carton: consecutive codes (shared digests), forged tags and slips, in any order."""
    signer, serial, _ = case
    first = min(serial, signer.profile.serial_space - 12)
    codes = [signer.code(first + i) for i in range(12)]
    for at in data.draw(st.lists(st.integers(0, 11), max_size=4)):
        tampered = codes[at][:-2] + str((int(codes[at][-2]) + 1) % 10)
        codes[at] = tampered + str(damm_check_digit(tampered))  # well formed, wrong tag
    codes = data.draw(st.permutations(codes))
    parsed = [parse_code(code) for code in codes]
    assert signer.verify_many(parsed) == [signer.verify(p) for p in parsed]


@given(minted(), st.integers(0, 3))
def test_tags_are_hmac_sha256_as_the_standard_library_computes_it(case, offset):
    """Both spelled-out HMACs (a check's ``tag``, minting's ``tags``) against ``hmac.digest``:
    the tag is the 8 bytes of HMAC(tag key, wire id, key id, group) at the serial's slot."""
    signer, serial, _ = case
    serial = max(serial - offset, signer.profile.serial_base)
    tag_key = hmac.digest(signer.secret, b"itemseal/tag/v1", "sha256")
    message = bytes([signer.profile.wire_id, signer.key_id]) + (serial // 4).to_bytes(8, "big")
    digest = hmac.digest(tag_key, message, "sha256")
    expected = int.from_bytes(digest[8 * (serial % 4) : 8 * (serial % 4) + 8], "big")
    expected %= signer.profile.tag_modulus
    assert signer.tag(serial) == expected
    assert int(signer.tags(serial, 1)[0]) == expected


@pytest.mark.parametrize("profile", ALL_PROFILES, ids=lambda p: p.name)
def test_vectorised_codes_equal_scalar_codes(profile):
    signer = signer_factory(7, profile)
    first = profile.serial_base + 1_234_565  # not aligned to a digest group
    matrix = signer.code_matrix(first, 1000)
    as_text = ["".join(map(str, row)) for row in matrix]
    assert as_text == [signer.code(first + i) for i in range(1000)]


@pytest.mark.parametrize("profile", ALL_PROFILES, ids=lambda p: p.name)
def test_consecutive_serials_share_no_prefix_pattern(profile):
    signer = signer_factory(3, profile)
    codes = ["".join(map(str, r)) for r in signer.code_matrix(profile.serial_base, 10_000)]
    assert len(set(codes)) == 10_000
    # each of the first four columns is spread evenly over 0-9 (expected 1000 each)
    for col in range(4):
        counts = np.bincount([int(c[col]) for c in codes], minlength=10)
        assert counts.min() > 850 and counts.max() < 1150, (col, counts)
    # neighbours agree on their leading digit no more often than chance (1 in 10)
    common = [_common_prefix(a, b) for a, b in zip(codes, codes[1:], strict=False)]
    assert sum(common) / len(common) < 0.2
    assert max(common) < 6


def _common_prefix(a: str, b: str) -> int:
    n = 0
    while n < len(a) and a[n] == b[n]:
        n += 1
    return n


def _fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if c.isdigit() else "\u3000" for c in text)
