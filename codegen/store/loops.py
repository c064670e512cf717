"""The running event loop, without a system call on every ask.

On CPython 3.11 ``asyncio.get_running_loop`` (and ``current_task()``, which
calls it) checks ``os.getpid()`` on every call, to notice a loop inherited
across ``fork``; ``getpid`` is a system call. A check asked for the loop
three times (its body's deadline twice, its turn once); under load py-spy put
~5% of a worker's samples on those lines (wall time: a system call is also
where the scheduler takes the core away), alone a call costs 0.26 µs here
against 0.10 µs remembered. Here the loop is remembered per thread and taken
again while it is still running: a thread runs one loop at a time, so a
running loop remembered by this thread is the thread's running loop. A loop
that stopped (a test's ``asyncio.run`` ended) is asked for afresh, as is a
forked child's, whose loop has not run yet. What this does not see: a loop
this thread ran, stopped and handed to another thread that runs it while
this one runs a new one; nothing here moves loops between threads.
"""

from __future__ import annotations

import asyncio
import threading


class _Remembered(threading.local):
    loop: asyncio.AbstractEventLoop | None = None


_REMEMBERED = _Remembered()


def running_loop() -> asyncio.AbstractEventLoop:
    """``asyncio.get_running_loop()``, remembered while it runs; RuntimeError outside one."""
    loop = _REMEMBERED.loop
    if loop is not None and loop.is_running():
        return loop
    loop = _REMEMBERED.loop = asyncio.get_running_loop()
    return loop
