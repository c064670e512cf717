"""Phones: the fast national-mobile path agrees with the full parser; fingerprints."""

from __future__ import annotations

import string
import unicodedata

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from codegen.keys import MasterKey
from points_bridge.exc import BadPhone, PointsError
from points_bridge.phones import _national_mobile, _parsed, normalize_phone
from verify_api.check.fingerprints import Fingerprints

digits = st.text(alphabet=string.digits, min_size=1, max_size=15)
cn_mobiles = st.builds(
    lambda head, rest: head + rest,
    st.sampled_from(["13", "14", "15", "16", "17", "18", "19", "11", "12", "10"]),
    st.text(alphabet=string.digits, min_size=9, max_size=9),
)


def full(text: str, region: str) -> str | None:
    """The full parser alone, without the fast path."""
    try:
        return _parsed(unicodedata.normalize("NFKC", text).strip(), region, text)
    except PointsError:
        return None


@given(st.one_of(digits, cn_mobiles), st.sampled_from(["CN", "US", "GB", "HK", "DE"]))
@example("13800138000", "CN")
@example("17951138001380", "CN")
def test_fast_path_agrees_with_the_full_parser(text, region):
    fast = _national_mobile(text, region)
    if fast is not None:
        assert fast == full(text, region)
    assert normalize_phone(text, region) == full(text, region) if full(text, region) else True


@given(st.one_of(digits, cn_mobiles), st.sampled_from(["CN", "US", "GB", "HK", "DE"]),
       st.sampled_from(["+86", "+1", "+44", "+852", "+49"]))
@example("13800138000", "CN", "+86")
@example("013800138000", "CN", "+86")
def test_the_fast_path_of_an_e164_number_agrees_with_the_full_parser(text, region, code):
    fast = _national_mobile(code + text, region)
    if fast is not None:
        assert fast == full(code + text, region)


@given(cn_mobiles, st.sampled_from(["{}", "{} ", "+86 {}", "0086{}", "+86-{}"]))
def test_every_way_of_typing_one_number_gives_one_e164(number, template):
    expected = full(number, "CN")
    typed = template.format(number)
    if expected is None:
        with pytest.raises(BadPhone):
            normalize_phone(typed)
    else:
        assert normalize_phone(typed) == expected
        assert normalize_phone(expected) == expected  # idempotent


@pytest.mark.parametrize("text", ["", "12345", "call me", "+", "1" * 40])
def test_not_a_phone_is_invalid_field(text):
    with pytest.raises(BadPhone) as caught:
        normalize_phone(text)
    assert caught.value.field == "phone"


def test_fingerprints_are_short_nonzero_and_hide_the_number():
    e164 = normalize_phone("138 0013 8000")
    prints = Fingerprints.from_master(MasterKey(bytes(range(32))))
    assert 0 < prints.phone_fingerprint(e164) < 2**32
    assert "13800138000" not in prints.phone_key(e164) and len(prints.phone_key(e164)) == 16
    other_phone = normalize_phone("13900139000")
    assert prints.phone_fingerprint(e164) != prints.phone_fingerprint(other_phone)
    other = Fingerprints.from_master(MasterKey(bytes(32)))  # another deployment's key
    assert other.phone_key(e164) != prints.phone_key(e164), "keyed: not a plain hash"
