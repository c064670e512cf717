"""codegen/store/loops.py: the remembered loop is always the caller's running loop."""

from __future__ import annotations

import asyncio
import threading

import pytest

from codegen.store.loops import running_loop


def test_the_running_loop_and_a_fresh_one_after_it_stopped():
    async def ask():
        assert running_loop() is asyncio.get_running_loop()
        assert running_loop() is asyncio.get_running_loop()  # the remembered one
        return asyncio.get_running_loop()

    first = asyncio.run(ask())
    second = asyncio.run(ask())  # the first loop stopped: not handed out again
    assert first is not second


def test_outside_a_loop_it_refuses_as_asyncio_does():
    asyncio.run(asyncio.sleep(0))
    with pytest.raises(RuntimeError):
        running_loop()


def test_threads_running_loops_at_once_each_get_their_own():
    both_running = threading.Barrier(2)
    seen: dict[str, bool] = {}

    async def ask(name: str) -> None:
        running_loop()
        await asyncio.to_thread(both_running.wait, 10)  # the other thread's loop runs too
        seen[name] = running_loop() is asyncio.get_running_loop()

    threads = [threading.Thread(target=asyncio.run, args=(ask(n),)) for n in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert seen == {"a": True, "b": True}
