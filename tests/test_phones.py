"""Member identifiers: phone normalisation, card numbers.

Cards live here too because both answer one question, "which member is
this?"; split into test_cards.py if either grows.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from points_bridge.cards import (
    CARD_DIGITS,
    CARD_SPACE,
    card_number,
    card_seq,
    format_card,
    is_valid_card,
    normalize_card,
)
from points_bridge.exc import BadPhone, BadRegion, BadSecret, CardSpaceExhausted
from points_bridge.phones import normalize_phone

E164 = re.compile(r"\+[1-9][0-9]{6,14}")
MOBILE = "+8613812345678"
SALT = bytes(range(16))
KEY = b"tenant-card-key-0123456789abcdef"


# -------------------------------------------------------------------- phones


@pytest.mark.parametrize(
    "text",
    [
        "13812345678",
        "138 1234 5678",
        "138-1234-5678",
        "+86 138 1234 5678",
        "+86-138-1234-5678",
        "0086 138 1234 5678",
        "008613812345678",
        "8613812345678",
        "１３８１２３４５６７８",
        "＋８６ １３８－１２３４－５６７８",
        "138\u30001234\u30005678",
        " (+86) 138.1234.5678 ",
        MOBILE,
    ],
)
def test_every_way_of_typing_a_chinese_mobile_is_one_member(text):
    assert normalize_phone(text) == MOBILE


@pytest.mark.parametrize(
    ("text", "region", "expected"),
    [
        ("010 1234 5678", "CN", "+861012345678"),
        ("+1 650 253 0000", "CN", "+16502530000"),
        ("650-253-0000", "US", "+16502530000"),
        ("650-253-0000", "us", "+16502530000"),
        ("13812345678", None, MOBILE),
        ("0912 345 678", "TW", "+886912345678"),
    ],
)
def test_default_region_reads_national_numbers(text, region, expected):
    assert normalize_phone(text, region) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "abc",
        "12345",
        "1381234567",
        "138123456789",
        "+86 138",
        "138 1234 5678 ext 5",
        "13812345678; DROP TABLE",
        "1-800-FLOWERS",
        "00000000000",
        "1" * 100,
        None,
        13812345678,
    ],
)
def test_garbage_is_refused_with_badphone(text):
    with pytest.raises(BadPhone) as info:
        normalize_phone(text)
    assert (info.value.status, info.value.code, info.value.field) == (422, "invalid_field", "phone")
    assert repr(text)[:20] in str(info.value) or len(repr(text)) > 60


@pytest.mark.parametrize("region", ["XX", "", "China", 86])
def test_unknown_region_is_a_tenant_config_error(region):
    with pytest.raises(BadRegion):
        normalize_phone("13812345678", region)


typed = st.text(st.sampled_from("0123456789+- ()０１２３４５６７８９＋－\u3000"), max_size=24)


@given(typed, st.sampled_from(["CN", "US", "GB", "HK"]))
def test_normalisation_is_idempotent_or_refuses(text, region):
    try:
        e164 = normalize_phone(text, region)
    except BadPhone:
        return
    assert E164.fullmatch(e164)
    assert normalize_phone(e164, region) == e164
    assert normalize_phone(e164, "CN") == e164


@given(st.text(max_size=40))
def test_any_text_gives_e164_or_badphone_never_another_error(text):
    try:
        assert E164.fullmatch(normalize_phone(text))
    except BadPhone:
        pass


cn_mobiles = st.builds(
    lambda prefix, rest: prefix + rest,
    st.sampled_from(["130", "135", "138", "139", "150", "158", "186", "188"]),
    st.text("0123456789", min_size=8, max_size=8),
)
separators = st.sampled_from(["", " ", "-", "\u3000", "－"])


@given(cn_mobiles, separators, st.sampled_from(["", "+86", "0086", "+86 ", "86"]))
def test_separators_and_prefixes_do_not_change_the_member(mobile, sep, prefix):
    plain = normalize_phone(mobile)
    spaced = prefix + sep.join((mobile[:3], mobile[3:7], mobile[7:]))
    assert normalize_phone(spaced) == plain == "+86" + mobile


# --------------------------------------------------------------------- cards

seqs = st.integers(0, CARD_SPACE - 1)


@given(seqs)
def test_card_round_trips_and_is_well_formed(seq):
    card = card_number(seq, KEY)
    assert len(card) == CARD_DIGITS and card.isdigit() and card[0] != "0"
    assert is_valid_card(card)
    assert card_seq(card, KEY) == seq


@pytest.mark.parametrize("seq", [0, 1, CARD_SPACE - 1])
def test_card_space_edges(seq):
    assert card_seq(card_number(seq, KEY), KEY) == seq


def test_cards_are_unique_and_not_sequential_over_a_range():
    cards = [card_number(seq, KEY) for seq in range(20_000)]
    assert len(set(cards)) == len(cards)
    assert cards != sorted(cards)
    neighbours = sum(abs(int(a) - int(b)) < 10**6 for a, b in zip(cards, cards[1:], strict=False))
    assert neighbours < 5
    assert len({card[:4] for card in cards[:100]}) > 50


def test_cards_depend_on_the_tenant_key():
    other = b"another-tenant-key-0123456789abc"
    assert [card_number(s, KEY) for s in range(50)] != [card_number(s, other) for s in range(50)]


@given(seqs)
def test_check_digit_catches_every_single_digit_error(seq):
    card = card_number(seq, KEY)
    for position, digit in enumerate(card):
        for wrong in "0123456789":
            if wrong != digit:
                assert not is_valid_card(card[:position] + wrong + card[position + 1 :])


@given(seqs)
def test_check_digit_catches_every_adjacent_swap(seq):
    card = card_number(seq, KEY)
    for i in range(len(card) - 1):
        if card[i] != card[i + 1]:
            swapped = card[:i] + card[i + 1] + card[i] + card[i + 2 :]
            assert not is_valid_card(swapped)


def test_typed_cards_are_normalised():
    card = card_number(42, KEY)
    printed = format_card(card)
    assert printed.count(" ") == 2
    full_width = "".join(chr(ord(c) + 0xFEE0) for c in card)
    for typed_card in (printed, card[:6] + "-" + card[6:], full_width):
        assert normalize_card(typed_card) == card
        assert is_valid_card(typed_card)
        assert card_seq(typed_card, KEY) == 42


@pytest.mark.parametrize(
    "text", ["", "12345678901", "1234567890123", "0" * 12, "abcdefghijkl", MOBILE, None]
)
def test_not_a_card(text):
    assert not is_valid_card(text)
    assert card_seq(text, KEY) is None


@pytest.mark.parametrize("seq", [-1, CARD_SPACE, True, 1.0, "7"])
def test_card_seq_outside_the_space_is_refused(seq):
    with pytest.raises(CardSpaceExhausted):
        card_number(seq, KEY)


@pytest.mark.parametrize("key", [b"short", None, "text-key-0123456789"])
def test_card_key_must_be_a_real_secret(key):
    with pytest.raises(BadSecret):
        card_number(0, key)
