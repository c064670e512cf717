"""Who asked not to be texted: one hash per tenant, phone -> when.

A consumer opts out by replying a stop word (``TD``, ``STOP``, ``退订``, ...,
``verify_api/channels/keywords.STOP_WORDS``) and opts back in by texting the
join keyword, or a brand's support desk does it (``itemseal optout``). The
record is per tenant: stopping brand A's messages says nothing about brand B.

Every outbound path asks ``OptOuts`` twice: when a message is queued (so a
campaign counts the phones it skipped) and again in the enqueue script and
when the sender pops it (so an opt-out that arrives while a campaign waits in
the queue still wins). The one message an opted-out phone still gets is the
acknowledgement of its own opt-out (``outbound.OPTOUT_ACK``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import redis

from codegen.store.keyspace import PointsKeys
from points_bridge.exc import PointsError
from points_bridge.phones import normalize_phone
from points_bridge.settings import SettingsStore


def phone_of(client: redis.Redis, tenant: str, phone: str) -> str:
    """The E.164 form of a phone as texted, under the tenant's default region.

    A sender that is no phone number (a short code) is kept as its digits, so
    it can still be opted out and looked up the same way.
    """
    try:
        return normalize_phone(phone, SettingsStore(client).get(tenant).region)
    except PointsError:
        return "".join(c for c in phone if c.isdigit() or c == "+") or phone


class OptOuts:
    """Read and change one tenant's opt-out list."""

    def __init__(
        self, client: redis.Redis, tenant: str, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._redis = client
        self.tenant = tenant
        self.key = PointsKeys(tenant).optouts
        self._clock = clock

    def opt_out(self, e164: str) -> bool:
        """Record the opt-out; True if the phone was not opted out before."""
        return bool(self._redis.hsetnx(self.key, e164, int(self._clock())))

    def opt_in(self, e164: str) -> bool:
        """Lift the opt-out; True if there was one."""
        return bool(self._redis.hdel(self.key, e164))

    def is_out(self, e164: str) -> bool:
        return bool(self._redis.hexists(self.key, e164))

    def which(self, phones: Iterable[str]) -> set[str]:
        """The phones of ``phones`` that opted out, in one round trip."""
        phones = list(phones)
        if not phones:
            return set()
        found = self._redis.hmget(self.key, phones)
        return {p for p, hit in zip(phones, found, strict=True) if hit is not None}

    def all(self) -> dict[str, int]:
        return {k.decode(): int(v) for k, v in self._redis.hgetall(self.key).items()}
