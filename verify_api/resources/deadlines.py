"""Give up on a request body that is late: one timer per worker instead of one per request.

``asyncio.timeout`` arms a timer for every read, ~4.5 us on uvloop, about 3% of
a repeat check's app CPU (``benchmarks/bench_verify.py``, issue 15), although
the body of almost every request is already in when it is read. Here a read
only notes its deadline in a dict; one timer a worker, set while any read is
waiting, looks every ``tick`` seconds and cancels the reads past theirs, so a
trickling client is cut off between ``seconds`` and ``seconds + tick``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from codegen.store.loops import running_loop
from verify_api.exc import BodyTimeout


class BodyDeadlines:
    """Reads of request bodies in progress, each with its deadline on the loop's clock."""

    def __init__(self, tick: float = 1.0) -> None:
        self.tick = tick
        self._reading: dict[asyncio.Task, float] = {}
        self._late: set[asyncio.Task] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None

    async def read(self, reading: Awaitable[bytes], seconds: float) -> bytes:
        """Await ``reading``; raise BodyTimeout (408) if it takes longer than ``seconds``."""
        loop = running_loop()
        task = asyncio.current_task(loop)
        self._reading[task] = loop.time() + seconds
        if self._timer is None or self._timer_loop is not loop:
            self._timer, self._timer_loop = loop.call_later(self.tick, self._sweep), loop
        try:
            return await reading
        except asyncio.CancelledError:
            if task not in self._late:
                raise  # cancelled by someone else: the server stopping, the client gone
            task.uncancel()
            raise BodyTimeout(f"the body did not arrive within {seconds:g} s") from None
        finally:
            del self._reading[task]
            self._late.discard(task)

    def _sweep(self) -> None:
        loop, self._timer = self._timer_loop, None
        now = loop.time()
        for task, deadline in self._reading.items():
            if deadline <= now and task not in self._late and task.get_loop() is loop:
                self._late.add(task)
                task.cancel()
        if self._reading:
            self._timer = loop.call_later(self.tick, self._sweep)
