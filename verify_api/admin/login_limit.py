"""Failed office log-ins counted per client address, beside each account's own lock-out.

The account lock-out (``staff.py``) stops anyone guessing one account's
password, but one address could still try four passwords on each of many
usernames and lock nothing. So failures are also counted per client address:
``MAX_FAILURES`` failed log-ins within one ``WINDOW_SECONDS`` window, and the
address's next log-in posts are refused (429, ``Retry-After``) until the
window ends, before any password is hashed. A right password does not clear
the count (else one known account would reopen the door for guessing the
others).

* The address is the one ``verify_api/proxies.py`` resolved: behind a trusted
  proxy the client the proxy saw, from anyone else the peer itself, so a
  forged ``X-Forwarded-For`` does not buy a fresh count.
* IPv6 clients are counted per /64, the block one subscriber usually holds,
  so walking through one's own addresses does not either.
* Windows are fixed and numbered by the injected clock (``now // WINDOW_SECONDS``);
  the key of each expires after two windows. One hash per address and window,
  ``TenantKeys.office_login_failures``, under the tenant's hash tag:
  ``failures`` and ``refused`` counted with HINCRBY, so workers never lose one.
* ``refused`` tells the first refusal of a window, which the office writes to
  the audit log: one entry per address and window, so hammering cannot flood
  the audit stream and push real entries out of it.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from codegen.store.keyspace import TenantKeys
from verify_api.exc import RequestError

MAX_FAILURES = 10
WINDOW_SECONDS = 600


class LoginsLimited(RequestError):
    """Too many failed log-ins from one address (429): wait for the window to end."""

    status = 429
    code = "login_limited"

    def __init__(self, retry_after: int, *, first: bool) -> None:
        minutes = -(-retry_after // 60)
        super().__init__(f"too many failed log-ins from your address: try again in {minutes}"
                         f" minute{'s' if minutes != 1 else ''}")
        self.retry_after = retry_after
        self.first = first  # the window's first refusal: the one to audit

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


def subject_of(address: str) -> str:
    """What is counted: an IPv4 address as it is, an IPv6 one as its /64; else the text."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64] or "-"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


@dataclass(frozen=True)
class Window:
    """The fixed window ``now`` falls in: its number and the seconds it has left."""

    number: int
    left: int


def window_of(now: float, seconds: int = WINDOW_SECONDS) -> Window:
    number = int(now // seconds)
    return Window(number, max(1, int((number + 1) * seconds - now)))


class LoginLimit:
    """Count one tenant's failed office log-ins per client address."""

    def __init__(self, client: redis.Redis, tenant: str, *,
                 clock: Callable[[], float] = time.time, max_failures: int = MAX_FAILURES,
                 window_seconds: int = WINDOW_SECONDS) -> None:
        self._redis = client
        self._keys = TenantKeys(tenant)
        self._clock = clock
        self.max_failures = max_failures
        self.window_seconds = window_seconds

    def _key(self, address: str) -> tuple[str, Window]:
        window = window_of(self._clock(), self.window_seconds)
        return self._keys.office_login_failures(subject_of(address), window.number), window

    def check(self, address: str) -> None:
        """Raise ``LoginsLimited`` if ``address`` has used up this window's failures."""
        key, window = self._key(address)
        failures = int(self._redis.hget(key, "failures") or 0)
        if failures < self.max_failures:
            return
        refused = self._redis.hincrby(key, "refused", 1)
        raise LoginsLimited(window.left, first=refused == 1)

    def fail(self, address: str) -> int:
        """Count a failed log-in from ``address``; return the window's failures so far."""
        key, _ = self._key(address)
        pipe = self._redis.pipeline(transaction=True)
        pipe.hincrby(key, "failures", 1)
        pipe.expire(key, 2 * self.window_seconds)
        failures, _ = pipe.execute()
        return int(failures)
