"""The answer to one check, in the vocabulary every channel uses, and its JSON form."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from points_bridge.credit import CreditResult

GENUINE = "genuine"
ALREADY_VERIFIED = "already_verified"
NOT_ACTIVATED = "not_activated"
RECALLED = "recalled"
REVOKED = "revoked"
COUNTERFEIT = "counterfeit"
MISTYPED = "mistyped"
MALFORMED = "malformed"
RESULTS = (
    GENUINE,
    ALREADY_VERIFIED,
    NOT_ACTIVATED,
    RECALLED,
    REVOKED,
    COUNTERFEIT,
    MISTYPED,
    MALFORMED,
)

MESSAGES = {
    GENUINE: "Genuine product. Thank you for checking.",
    NOT_ACTIVATED: "This code has not been released for sale. Please contact the brand.",
    RECALLED: "This product belongs to a recalled batch. Do not use it; contact the brand.",
    REVOKED: "This code is no longer valid. Please contact the brand.",
    COUNTERFEIT: "This code was not issued by the brand: the product may be counterfeit.",
    MISTYPED: "The code looks mistyped: please check the digits and enter it again.",
    MALFORMED: "That is not a product code: enter the digits printed under the scratch-off.",
}


def iso_time(ts: int | None) -> str | None:
    """Unix seconds as ``2025-01-31T08:00:00Z``; cached, the same few seconds repeat."""
    return None if ts is None else _iso_time(ts)


@functools.lru_cache(maxsize=4096)
def _iso_time(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(slots=True)  # not frozen: made on every check (ARCHITECTURE.md)
class Answer:
    """What one check found; ``credit`` is set when this check earned a member points."""

    result: str
    sku: str | None = None
    product_name: str | None = None
    scan_count: int = 0
    first_verified_at: int | None = None
    first_channel: str | None = None
    risk: str | None = None
    limit_reached: bool = False
    claimed: bool = False
    points_awarded: int = 0
    balance: int | None = None
    points_pending: bool = False
    credit: CreditResult | None = None

    @property
    def message(self) -> str:
        if self.result != ALREADY_VERIFIED:
            return MESSAGES[self.result]
        when = (iso_time(self.first_verified_at) or "?")[:10]
        text = (
            f"Genuine, but this code has been checked {self.scan_count} times, first on {when}"
            f" by {self.first_channel or 'unknown channel'}. If that was not you, the label may"
            " be a copy."
        )
        if self.limit_reached:
            text += " This code has reached its check limit."
        return text

    def product(self) -> dict | None:
        if self.sku is None:
            return None
        return {"sku": self.sku, "name": self.product_name}

    def to_json(self) -> dict:
        return {
            "result": self.result,
            "product": self.product(),
            "scan_count": self.scan_count,
            "first_verified_at": iso_time(self.first_verified_at),
            "first_channel": self.first_channel,
            "points_awarded": self.points_awarded,
            "balance": self.balance,
            "risk": self.risk,
            "limit_reached": self.limit_reached,
            "claimed": self.claimed,
            "points_pending": self.points_pending,
            "member": self.member(),
            "rules_applied": list(self.credit.applied_rules) if self.credit else [],
            "message": self.message,
        }

    def member(self) -> dict | None:
        """The crediting member's standing: card, tier and the way to the next tier."""
        if self.credit is None:
            return None
        return {
            "card": self.credit.member_card,
            "tier": self.credit.tier,
            "next_tier": self.credit.next_tier,
            "points_to_next": self.credit.points_to_next,
            "new_member": self.credit.member_created,
        }

    def to_batch_json(self, code: str) -> dict:
        """The shorter per-code entry of a batch answer."""
        return {
            "code": code,
            "result": self.result,
            "product": self.product(),
            "scan_count": self.scan_count,
            "first_verified_at": iso_time(self.first_verified_at),
        }
