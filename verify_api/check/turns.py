"""The checks of one event-loop turn, sent to Redis as one verify script call per segment.

Under load a worker's event loop runs many requests in each turn, and each
used to send its own ``verify.lua`` call. One call for all of them costs
redis-server a script call's overhead once, and the day's counters one
``HINCRBY`` per field instead of five per check (``verify.lua`` adds them
up); the worker packs one call instead of several. Measured by
``benchmarks/bench_verify.py`` (``cpu_us_per_request``, issue 15): a repeat
check cost redis-server ~35 us and its worker ~156 us before, ~27 and ~143
after (repeat checks 7,344/s before, 8,968/s after). Each code keeps the
context of its own request (phone, channel, region), so the answers, claims
and counters are those separate calls give.

No check waits for another: a request hands its code over, then sends its
other commands (rate-limit counts, the credit's reads) through the link, and
the link packs the turn's calls just before it writes the turn's commands
(``RedisLink.defer``, ``codegen/store/link.py``): they leave in one write, the
round trip each check would have taken alone. A link still connecting takes
the call once connected (a link that breaks first hands it over for that);
NOSCRIPT (a restarted Redis) is answered by ``ScriptSet.run`` loading the
scripts and sending the call again. Only the single server's link can take
a call at once (``submit``): on a cluster every check sends its own call.
"""

from __future__ import annotations

import asyncio
from functools import partial

from codegen.exc import StoreError
from codegen.store.keyspace import TenantKeys
from codegen.store.loops import running_loop
from codegen.store.wire import is_error
from verify_api.check.scans import (
    CheckContext,
    ScanQuery,
    VerifyScripts,
    parse_verify_reply,
    verify_calls,
)


class CheckTurns:
    """One worker's gatherer of checks: ``scan`` now, one call per segment at the turn's end."""

    def __init__(self, scripts: VerifyScripts) -> None:
        self._scripts = scripts
        self._waiting: list[tuple[TenantKeys, ScanQuery, CheckContext, int, asyncio.Future]] = []
        self._scheduled_on: asyncio.AbstractEventLoop | None = None
        self._sending: set[asyncio.Task] = set()  # calls sent the long way, kept till done
        self.calls = 0
        """Script calls sent (the tests' and the benchmark's checks per call)."""

    def scan(
        self, keys: TenantKeys, query: ScanQuery, context: CheckContext, now: int
    ) -> asyncio.Future:
        """The future ScanReply of one code, checked in this turn's call of its segment."""
        loop = running_loop()
        if self._scheduled_on is not loop:
            if self._scheduled_on is not None:  # a loop that was stopped before its turn ended
                self._waiting = []
            self._scheduled_on = loop
            try:
                self._scripts.link.defer(self._send)  # in the write of the turn's other calls
            except StoreError:  # no live connection yet: at the turn's end, the long way
                loop.call_soon(self._send)
        future = loop.create_future()
        self._waiting.append((keys, query, context, now, future))
        return future

    def _send(self) -> None:
        self._scheduled_on = None
        waiting, self._waiting = self._waiting, []
        groups: dict[tuple[str, int], list] = {}
        for item in waiting:
            groups.setdefault((item[0].tenant, item[3]), []).append(item)
        for (_, now), items in groups.items():
            try:
                packed = verify_calls(self._scripts, items[0][0], [item[1] for item in items],
                                      [item[2] for item in items], now)
            except Exception as exc:  # noqa: BLE001 - a loop callback: the requests must hear
                _fail([item[4] for item in items], exc)
                continue
            for call, indexes in packed:
                targets = [items[i][4] for i in indexes]
                self.calls += 1
                try:
                    sent = self._scripts.link.submit(call, 1)
                except StoreError:  # no live connection on this loop yet
                    self._background(self._connect_and_send(call, targets))
                    continue
                sent.add_done_callback(partial(self._settle, call, targets))

    def _background(self, sending) -> None:
        task = asyncio.ensure_future(sending)
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _connect_and_send(self, call: bytes, targets: list[asyncio.Future]) -> None:
        try:
            await self._scripts.link.ensure_connected()
            sent = self._scripts.link.submit(call, 1)
            await asyncio.wait([sent])
        except Exception as exc:  # noqa: BLE001 - handed to every waiting request
            _fail(targets, exc)
        else:
            self._settle(call, targets, sent)

    def _settle(self, call: bytes, targets: list[asyncio.Future], sent: asyncio.Future) -> None:
        if sent.cancelled():
            _fail(targets, StoreError("the verify call was cancelled"))
            return
        if sent.exception() is not None:
            _fail(targets, sent.exception())
            return
        (reply,) = sent.result()
        if is_error(reply) and str(reply).startswith("NOSCRIPT"):
            self._background(self._run(call, targets))
        elif is_error(reply):
            _fail(targets, StoreError(f"redis script failed: {reply}"))
        else:
            _give(targets, reply)

    async def _run(self, call: bytes, targets: list[asyncio.Future]) -> None:
        """Send ``call`` the long way: connecting first, loading lost scripts."""
        try:
            (reply,) = await self._scripts.run([call])
        except Exception as exc:  # noqa: BLE001 - handed to every waiting request
            _fail(targets, exc)
        else:
            _give(targets, reply)


def _give(targets: list[asyncio.Future], reply: list) -> None:
    for target, scan in zip(targets, parse_verify_reply(reply), strict=True):
        if not target.done():
            target.set_result(scan)


def _fail(targets: list[asyncio.Future], error: BaseException) -> None:
    for target in targets:
        if not target.done():
            target.set_exception(error)
