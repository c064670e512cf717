"""Drive the API's coroutines from synchronous tests, on the loop falcon's TestClient uses.

falcon's testing client runs an ASGI app on one event loop per process
(``falcon.util.async_to_sync``); the engine's asyncio link belongs to the loop
it first ran on, so direct calls go through the same runner.
"""

from __future__ import annotations

import inspect

from falcon.util import async_to_sync


def run(awaitable):
    """Run one coroutine to its result."""
    return async_to_sync(lambda: awaitable)


class Blocking:
    """An object whose coroutine methods are called as plain methods (other attributes pass)."""

    def __init__(self, target: object) -> None:
        self._target = target

    def __getattr__(self, name: str):
        value = getattr(self._target, name)
        if inspect.iscoroutinefunction(value):
            return lambda *args, **kwargs: async_to_sync(value, *args, **kwargs)
        return value

    def __setattr__(self, name: str, value) -> None:
        if name == "_target":
            object.__setattr__(self, name, value)
        else:
            setattr(self._target, name, value)
