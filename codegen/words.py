"""Counts in English messages: "1 member", "2 members", never "1 members".

Chinese messages need none of this (no plural); English ones go through
``plural`` so a count of one reads right.
"""

from __future__ import annotations


def plural(count: int, one: str, many: str | None = None) -> str:
    """``count`` and the noun, singular for exactly one: ``plural(1, "time")`` -> "1 time"."""
    return f"{count} {one if count == 1 else (many or one + 's')}"


def rate(per_second: float, unit: str = "codes") -> str:
    """A throughput a person reads: "850 codes/s", "12,400 codes/s", "4.17 M codes/s"."""
    if per_second >= 1e6:
        return f"{per_second / 1e6:.2f} M {unit}/s"
    return f"{per_second:,.0f} {unit}/s"
