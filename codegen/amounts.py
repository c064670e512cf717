"""The bounds of every points quantity, so each one stays an exact integer everywhere.

Points travel through Python (unbounded ints), Redis (64-bit integers) and
Lua scripts, whose numbers are IEEE doubles: exact only up to 2^53. Every
entrance (CLI, admin API, import, rules, products) checks a quantity against
these bounds before anything is stored, so a script never sees a figure it
would round, and a balance plus any one entry stays far below 2^53:

=====================  ==============  =================================================
bound                  value           applies to
=====================  ==============  =================================================
``MAX_ENTRY_POINTS``   10^9            one ledger entry: an adjustment, a redemption, a
                                       credit; a daily cap
``MAX_RULE_POINTS``    10^7            a product's points, a campaign or birthday bonus
``MAX_BALANCE``        10^15           a balance, lifetime earned points, a tier
                                       threshold, a campaign budget
=====================  ==============  =================================================

``MAX_BALANCE + MAX_ENTRY_POINTS`` < 2^53, so the scripts' sums and
comparisons are exact; they still refuse (``why = "bounds"``) an entry that
would carry a balance past ``MAX_BALANCE``. The written rules are in
``schemas/points-rules.md``.
"""

from __future__ import annotations

MAX_ENTRY_POINTS = 10**9
MAX_RULE_POINTS = 10**7
MAX_BALANCE = 10**15
EXACT_IN_LUA = 2**53
MAX_PURCHASE_AMOUNT = 10**10
"""Money, in integer minor units (fen): one purchase's total, one line, one stored-value
movement (top-up, pay, refund, adjustment). A stored-value balance and a member's lifetime
spend are bounded by ``MAX_BALANCE`` like points."""
MINOR_PER_UNIT = 100
"""Minor units in one currency unit (fen per yuan); tiers by spend count whole units."""
MAX_LINES = 200
"""Lines of one purchase."""


def yuan(fen: int) -> str:
    """Minor units (fen) as whole units with two decimals, as every screen shows money:
    12800 -> "128.00", -3050 -> "-30.50"."""
    whole, cents = divmod(abs(fen), MINOR_PER_UNIT)
    return f"{'-' if fen < 0 else ''}{whole}.{cents:02d}"
assert MAX_BALANCE + MAX_ENTRY_POINTS < EXACT_IN_LUA
assert MAX_BALANCE + MAX_PURCHASE_AMOUNT < EXACT_IN_LUA


def is_points(value: object, low: int, high: int) -> bool:
    """Tell whether ``value`` is an int (not a bool) within ``[low, high]``."""
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
