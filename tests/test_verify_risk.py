"""Risk of a repeat check and the distinct-count sketches: verify_api/check/risk.py (pure)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from verify_api.check.fingerprints import Fingerprints
from verify_api.check.risk import (
    DAY,
    HIGH,
    LEVELS,
    LOW,
    MEDIUM,
    PHONE_SKETCH_BITS,
    distinct_estimate,
    risk_level,
)

sketch_bit = Fingerprints(bytes(32)).sketch_bit
counts = st.integers(0, 70000)
seconds = st.floats(0, 10 * 365 * DAY, allow_nan=False)
distinct = st.integers(0, 50)
RANK = {level: i for i, level in enumerate(LEVELS)}


@given(counts, seconds, distinct, distinct)
def test_always_a_level(count, elapsed, phones, regions):
    assert risk_level(count, elapsed, phones, regions) in LEVELS


@given(seconds, distinct, distinct)
def test_a_first_check_is_low(elapsed, phones, regions):
    assert risk_level(1, elapsed, phones, regions) == LOW


@given(counts, counts, seconds, distinct, distinct)
def test_more_checks_never_lower_the_risk(a, b, elapsed, phones, regions):
    lo, hi = sorted((a, b))
    assert (
        RANK[risk_level(lo, elapsed, phones, regions)]
        <= RANK[risk_level(hi, elapsed, phones, regions)]
    )


@given(counts, seconds, distinct, distinct, distinct)
def test_more_phones_or_regions_never_lower_the_risk(count, elapsed, a, b, other):
    lo, hi = sorted((a, b))
    assert (
        RANK[risk_level(count, elapsed, lo, other)] <= RANK[risk_level(count, elapsed, hi, other)]
    )
    assert (
        RANK[risk_level(count, elapsed, other, lo)] <= RANK[risk_level(count, elapsed, other, hi)]
    )


@given(counts, seconds, seconds, distinct, distinct)
def test_a_burst_is_never_safer_than_a_slow_trickle(count, a, b, phones, regions):
    soon, late = sorted((a, b))
    assert (
        RANK[risk_level(count, soon, phones, regions)]
        >= RANK[risk_level(count, late, phones, regions)]
    )


def test_the_copied_label_pattern():
    assert risk_level(2, 60, 1, 1) == LOW  # the buyer checks again
    assert risk_level(3, 3 * DAY, 1, 1) == MEDIUM
    assert risk_level(2, 3600, 2, 2) == HIGH  # two phones in two cities within the hour
    assert risk_level(7, 30 * DAY, 1, 1) == MEDIUM
    assert risk_level(25, 30 * DAY, 1, 1) == HIGH  # nobody checks a lipstick 25 times


@given(st.sets(st.text(min_size=1, max_size=20), max_size=40))
def test_sketch_estimate_is_exact_for_one_and_grows(values):
    bitmap = 0
    for value in values:
        bitmap |= sketch_bit(value, PHONE_SKETCH_BITS)
    estimate = distinct_estimate(bitmap, PHONE_SKETCH_BITS)
    assert (estimate == 0) == (not values)
    if len(values) == 1:
        assert estimate == 1
    assert estimate <= max(len(values), 1) * 3 + 45  # bounded: a 16-bit sketch saturates


@given(st.integers(0, (1 << 16) - 1), st.integers(0, 15))
def test_setting_a_bit_never_lowers_the_estimate(bitmap, bit):
    assert distinct_estimate(bitmap | (1 << bit), 16) >= distinct_estimate(bitmap, 16)
