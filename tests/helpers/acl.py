"""A client of the suite's redis-server that may do anything but run a script.

Its first EVALSHA fails (``NoPermissionError``) where the code under test
calls a script: the way the tests cut a multi-step job off at a chosen
step against the real server, with no mock in between.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import redis


@contextlib.contextmanager
def client_without_scripts(client: redis.Redis) -> Iterator[redis.Redis]:
    client.acl_setuser("no-scripts", enabled=True, passwords=["+pw"], keys=["*"],
                       channels=["*"], commands=["+@all", "-evalsha", "-eval"])
    kwargs = {**client.connection_pool.connection_kwargs,
              "username": "no-scripts", "password": "pw"}
    limited = redis.Redis(connection_pool=redis.ConnectionPool(
        connection_class=client.connection_pool.connection_class, **kwargs))
    try:
        yield limited
    finally:
        limited.close()
        client.acl_deluser("no-scripts")
