"""Read an SMS body: a code, the join or balance keyword, a redemption, an opt-out, or feedback.

Pure. Consumers type on whatever keyboard they have: full-width digits and
letters, spaces and dashes inside a code, a trailing full stop. Everything
is folded with NFKC and case-folded before it is compared, so ``８８８`` is
the join keyword and ``１２３４-５６７８ ...`` a code.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from verify_api.check.inputs import extract_code

CODE, JOIN, BALANCE, STOP, FEEDBACK = "code", "join", "balance", "stop", "feedback"
REDEEM = "redeem"
# A redemption: "DH#mug" (兑换, duihuan) or "兑换#mug"; NFKC folds a full-width "＃".
REDEEM_PREFIXES = ("dh#", "兑换#")
DEFAULT_JOIN = "888"
DEFAULT_BALANCE = "666"
# What carriers and consumers send to opt out (gateways usually act on them too).
STOP_WORDS = frozenset(("stop", "unsubscribe", "td", "t", "退订", "取消"))
MIN_CODE_DIGITS = 8
_CODE_TEXT = re.compile(r"^[0-9][0-9 \-]*$")
_TRAILING = " \t\r\n.。!！?？"


@dataclass(frozen=True)
class Intent:
    """What an SMS asks for; ``text`` is the code for CODE, the body otherwise."""

    kind: str
    text: str


def fold(text: str) -> str:
    """NFKC, case-folded, outer blanks and trailing punctuation removed."""
    return unicodedata.normalize("NFKC", text).strip().strip(_TRAILING).casefold()


def classify(body: str, join: str = DEFAULT_JOIN, balance: str = DEFAULT_BALANCE) -> Intent:
    """Decide what ``body`` asks for; keywords win over codes (``888`` is not a code)."""
    folded = fold(body)
    if folded == fold(join):
        return Intent(JOIN, body)
    if folded == fold(balance):
        return Intent(BALANCE, body)
    if folded in STOP_WORDS:
        return Intent(STOP, body)
    for prefix in REDEEM_PREFIXES:
        if folded.startswith(prefix) and folded[len(prefix):].strip():
            return Intent(REDEEM, folded[len(prefix):].strip())
    digits = folded.replace(" ", "").replace("-", "")
    if _CODE_TEXT.match(folded) and len(digits) >= MIN_CODE_DIGITS:
        return Intent(CODE, digits)
    if folded.startswith(("http://", "https://")) and extract_code(folded) != folded:
        return Intent(CODE, extract_code(folded))
    return Intent(FEEDBACK, body.strip())


def check_keyword(word: str) -> str:
    """Validate a keyword a tenant sets: 1-16 characters, no blanks inside, not a stop word."""
    folded = fold(word)
    if not folded or len(folded) > 16 or any(c.isspace() for c in folded):
        raise ValueError(f"bad keyword {word!r}: 1-16 characters without spaces")
    if folded in STOP_WORDS:
        raise ValueError(f"bad keyword {word!r}: it is an opt-out word")
    if folded.isdigit() and len(folded) >= MIN_CODE_DIGITS:
        raise ValueError(f"bad keyword {word!r}: it would read as a code")
    return word.strip()
