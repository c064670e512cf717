"""How suspicious a repeat check is: a pure function of a code's scan history.

A genuine item is checked once, maybe twice by the same buyer. A copied label
is checked many times, by many phones, in several regions, often within hours.
The scan record keeps a count, the first check time and two tiny sketches
(bitmaps) that estimate distinct phones and regions; this module turns them
into ``low``, ``medium`` or ``high``. Pure, so hypothesis can prove it moves in
the right direction with every input.
"""

from __future__ import annotations

import math

LOW, MEDIUM, HIGH = "low", "medium", "high"
LEVELS = (LOW, MEDIUM, HIGH)
PHONE_SKETCH_BITS = 16
REGION_SKETCH_BITS = 8
DAY = 86400.0


def distinct_estimate(bitmap: int, bits: int) -> int:
    """Estimate how many distinct values set bits in ``bitmap`` (linear counting)."""
    zeros = bits - bin(bitmap & ((1 << bits) - 1)).count("1")
    if zeros == bits:
        return 0
    zeros = max(zeros, 0.5)  # a full sketch: report its ceiling, not infinity
    return max(1, round(-bits * math.log(zeros / bits)))


def risk_level(count: int, seconds_since_first: float, phones: int, regions: int) -> str:
    """Return the risk of a code checked ``count`` times.

    Points: the count itself (3, 6, 20 checks), every phone after the first,
    every region after the first (two each: one label in two cities is the
    clearest sign of a copy), and one more when several phones or regions
    show up within a day of the first check. 0 is low, 1-2 medium, 3+ high.
    """
    if count <= 1:
        return LOW
    score = (count >= 3) + (count >= 6) + (count >= 20)
    score += min(max(phones - 1, 0), 3)
    score += 2 * min(max(regions - 1, 0), 2)
    if (phones >= 2 or regions >= 2) and seconds_since_first < DAY:
        score += 1
    if score == 0:
        return LOW
    return MEDIUM if score <= 2 else HIGH
