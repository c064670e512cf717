"""Rate limits per client IP and per phone: slow guessing down as well as make it hopeless.

A sliding-window estimate from two fixed windows (the current one counted,
the previous one weighed by how much of it the sliding window still covers),
kept in Redis so every gunicorn worker shares it. Windows are numbered from the
injected clock, so tests move time by hand.

A hit is at most three plain commands, no script: ``SET current 0 EX 2w NX``
(the window's counter, with its expiry, unless it exists), ``INCRBY current
cost`` and ``GET previous``. A script doing the same cost redis-server twice the
CPU (~7 against ~3.5 us a hit, measured on the embedded store: a call's setup and
its effects wrapped in MULTI/EXEC in the append-only file; a ``SET NX`` that
finds the key writes nothing). A counter is written only during its own window
and lives two, so it cannot expire between the ``SET`` and the ``INCRBY``.

Most hits are the ``INCRBY`` alone. A worker that has counted in a window's
counter knows it exists with its expiry, so it sends no more ``SET``; and once
a window is over its count no longer moves, so the worker keeps the previous
window's count it read (``WindowMemory``) instead of reading it again. A repeat
check's one hit is one command instead of three, a first check's two hits two
instead of six: ~11k fewer redis-server instructions a hit (callgrind, 3,000
checks of 2,000 phones: 36.7k a check of two hits as three commands each, 15.0k
as one each). Should a counter a worker believes in vanish meanwhile (deleted by
hand, a restored backup), the ``INCRBY`` that makes it again says so (its count
is its own cost) and the next round trip gives it its expiry.

The keys are per client, not per code, so they cannot share a code's hash tag;
the engine sends them in the same round trip (pipeline) as the code's script.
So the one request that crosses a limit
is refused although its check ran; from then on this worker refuses that
client without touching Redis until its Retry-After has passed, so hammering
costs the store nothing and no further check is recorded.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from codegen.store.keyspace import TenantKeys
from codegen.store.wire import pack
from verify_api.check.scans import VerifyScripts
from verify_api.exc import RateLimited

MAX_COUNT = 10**9
MAX_SECONDS = 86_400
"""Bounds of a limit: a day's window, counts the Lua script keeps exact."""


@dataclass(frozen=True)
class Limit:
    """At most ``count`` hits per ``seconds``."""

    count: int
    seconds: int

    @classmethod
    def parse(cls, text: str) -> Limit | None:
        """Read ``"300/60"``; ``"0"`` or ``"off"`` means no limit."""
        text = text.strip().lower()
        if text in ("0", "off", "none", ""):
            return None
        count, _, seconds = text.partition("/")
        limit = cls(int(count), int(seconds or 60))
        if not (0 < limit.count <= MAX_COUNT and 0 < limit.seconds <= MAX_SECONDS):
            raise ValueError(
                f"a rate limit is COUNT/SECONDS with COUNT from 1 to {MAX_COUNT} and SECONDS"
                f" from 1 to {MAX_SECONDS}, or off: {text!r}"
            )
        return limit


@dataclass(slots=True)  # not frozen: made on every check (ARCHITECTURE.md)
class Hit:
    """One request's cost against the limit of one subject (``ip/...``, ``phone/...``)."""

    subject: str
    limit: Limit | None
    cost: int = 1


def window_position(now: float, seconds: int) -> tuple[int, float]:
    """Return the window index of ``now`` and how far into it we are, 0 <= f < 1."""
    index, into = divmod(now, seconds)
    return int(index), into / seconds


def estimate(current: int, previous: int, fraction: float) -> float:
    """Hits in the sliding window ending now: all of this window, the overlap of the last."""
    return current + previous * (1.0 - fraction)


def retry_after(current: int, previous: int, fraction: float, limit: Limit) -> int:
    """Seconds until one more request from a client that stops now is allowed (>= 1).

    Still in this window, the previous window's weight must shrink enough;
    in the next one, this window's count becomes the weighed one; two
    windows on, nothing is left.
    """
    room = limit.count - current - 1
    wait = None
    if previous and room >= 0:
        wait = max(0.0, 1.0 - fraction - room / previous)
        if fraction + wait >= 1.0:
            wait = None
    if wait is None:
        wait = (1.0 - fraction) + max(0.0, 1.0 - (limit.count - 1) / max(current, 1))
    return max(1, math.floor(wait * limit.seconds + 1e-6) + 1)  # strictly past the boundary


SETTLED_FRACTION = 0.05
"""How far into a window the previous one's count is taken as final (no request still
counting in it): read later than that, a worker keeps it for the rest of the window."""
REMEMBERED = 10_000
"""Counters and previous counts a worker keeps, each, before it forgets them all."""


@dataclass(slots=True)  # not frozen: made on every check (ARCHITECTURE.md)
class Counted:
    """One hit's commands in the round trip: where its replies are, what they mean."""

    hit: Hit
    fraction: float
    current: str
    previous: str
    at: int
    """Index of the ``INCRBY``'s reply in the pending commands' replies."""
    with_set: bool
    """A ``SET NX`` went first, so the counter has its expiry whatever the count says."""
    previous_count: int | None
    """The previous window's count as remembered; None: read by a ``GET`` after the INCRBY."""


@dataclass(slots=True)  # not frozen: made on every check (ARCHITECTURE.md)
class Pending:
    """The counting commands on their way, with what is needed to judge their replies."""

    tenant: str
    counted: tuple[Counted, ...]
    now: float
    commands: tuple[bytes, ...]
    """Packed commands for the engine's round trip: each hit's, after any owed expiry."""
    expiries: tuple[bytes, ...] = ()
    """The owed EXPIREs among ``commands``: owed until their replies come (``settle``)."""


class WindowMemory:
    """What one worker knows of the window counters: saves two of a hit's three commands.

    Kept per worker and never shared: a worker that forgets (``REMEMBERED``) only sends
    the ``SET`` and the ``GET`` again.
    """

    __slots__ = ("counting", "closed", "owed")

    def __init__(self) -> None:
        self.counting: set[str] = set()
        """Counters this worker has counted in: they exist with their expiry."""
        self.closed: dict[str, int] = {}
        """Counts of windows that are over, by counter."""
        self.owed: list[bytes] = []
        """EXPIREs for counters an INCRBY made again (vanished meanwhile): sent with every
        round trip until one comes back, so a trip that fails loses none."""

    def counted_in(self, counted: Counted, count: int, previous: int) -> None:
        if not counted.with_set and count == counted.hit.cost:  # made again by the INCRBY
            seconds = 2 * counted.hit.limit.seconds
            self.owed.append(pack(b"EXPIRE", counted.current, seconds))
        if len(self.counting) >= REMEMBERED:
            self.counting.clear()
        self.counting.add(counted.current)
        if counted.previous_count is None and counted.fraction >= SETTLED_FRACTION:
            if len(self.closed) >= REMEMBERED:
                self.closed.clear()
            self.closed[counted.previous] = previous


class RateLimiter:
    """Count requests against limits in Redis; remember refused clients locally.

    ``prepare`` packs the counting call so the engine can send it in the same
    round trip as the code's own script; ``settle`` judges the reply. A client
    refused once is refused by this worker, without Redis, until its
    Retry-After has passed: hammering costs the store nothing.
    """

    def __init__(self, scripts: VerifyScripts, *, clock: Callable[[], float] = time.time) -> None:
        self._scripts = scripts
        self._clock = clock
        self._refused: dict[tuple[str, str], float] = {}
        self._windows = WindowMemory()

    def prepare(self, tenant: str, hits: list[Hit]) -> Pending | None:
        """Pack the call counting ``hits``; raise RateLimited for a client refused lately."""
        hits = [h for h in hits if h.limit is not None]
        if not hits:
            return None
        now = self._clock()
        self.refuse_lately(tenant, hits, now)
        keys = TenantKeys(tenant)
        windows = self._windows
        expiries = tuple(windows.owed)
        commands: list[bytes] = list(expiries)
        counted = []
        for hit in hits:
            seconds = hit.limit.seconds
            index, fraction = window_position(now, seconds)
            current = keys.rate_limit(hit.subject, index)
            previous = keys.rate_limit(hit.subject, index - 1)
            with_set = current not in windows.counting
            if with_set:
                commands.append(pack(b"SET", current, b"0", b"EX", 2 * seconds, b"NX"))
            commands.append(pack(b"INCRBY", current, hit.cost))
            at = len(commands) - 1
            previous_count = windows.closed.get(previous)
            if previous_count is None:
                commands.append(pack(b"GET", previous))
            counted.append(Counted(hit, fraction, current, previous, at, with_set,
                                   previous_count))
        return Pending(tenant, tuple(counted), now, tuple(commands), expiries)

    def refuse_lately(self, tenant: str, hits: list[Hit], now: float | None = None) -> None:
        """Raise RateLimited for a client this worker refused until a time not yet passed.

        Without Redis: a hammering client costs the store nothing until then.
        """
        if not self._refused:
            return
        now = self._clock() if now is None else now
        for hit in hits:
            until = self._refused.get((tenant, hit.subject))
            if until is not None and now < until:
                raise RateLimited(_kind(hit), max(1, math.ceil(until - now)))

    def settle(self, pending: Pending | None, replies: list) -> None:
        """Raise RateLimited if the replies to ``pending.commands`` put a client over its limit."""
        if pending is None:
            return
        if pending.expiries:
            owed = self._windows.owed
            self._windows.owed = [e for e in owed if e not in pending.expiries]
        for counted in pending.counted:
            current, previous = int(replies[counted.at]), counted.previous_count
            if previous is None:
                previous = int(replies[counted.at + 1] or 0)
            self._windows.counted_in(counted, current, previous)
            hit, fraction = counted.hit, counted.fraction
            if estimate(current, previous, fraction) > hit.limit.count:
                wait = retry_after(current, previous, fraction, hit.limit)
                if len(self._refused) >= 10_000:
                    self._refused.clear()
                self._refused[(pending.tenant, hit.subject)] = pending.now + wait
                raise RateLimited(_kind(hit), wait)

    async def check(self, tenant: str, hits: list[Hit]) -> None:
        """Count ``hits`` in a round trip of their own; raise RateLimited if over."""
        pending = self.prepare(tenant, hits)
        if pending is not None:
            self.settle(pending, await self._scripts.run(list(pending.commands)))


def _kind(hit: Hit) -> str:
    return hit.subject.split("/", 1)[0]
