"""Raw RESP to Redis for the hot paths: packed commands in, hiredis replies out.

A claim's credit is a few commands whose cost, through redis-py, was mostly
redis-py (connection pool, response callbacks, decoding): ~1 ms of CPU per
credit, against ~0.1 ms of Redis work. The hot paths therefore pack their
commands themselves and send them over a ``Wire``: the API's coalescing pipe
(``codegen/store/pipe.py``), shared by a worker's concurrent requests, or, in
the CLI and the reconciler, ``ClientWire`` over a redis-py client's pool.

Replies are hiredis' raw values: bytes, ints, lists, and a Redis error as a
``hiredis.ReplyError`` value in its slot, so one failing command of a batch
does not hide the others' replies.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol

import hiredis
import redis
from redis.cluster import RedisCluster

from codegen.store.scripts import script_source


class Wire(Protocol):
    """A link that sends packed commands and returns their replies in order."""

    def call(self, payload: bytes, count: int = 1) -> list: ...

    def post(self, payload: bytes, count: int = 1) -> None:
        """Send without waiting: for work whose loss only costs a later replay."""


def pack(*args: bytes) -> bytes:
    """Encode one command in RESP: ``*N`` then ``$len``-prefixed arguments."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        out.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(out)


def is_error(reply: object) -> bool:
    return isinstance(reply, hiredis.ReplyError)


def _is_noscript(reply: object) -> bool:
    return is_error(reply) and str(reply).startswith("NOSCRIPT")


class ClientWire:
    """A ``Wire`` over a redis-py client's connection pool (CLI, reconciler, tests)."""

    def __init__(self, client: redis.Redis) -> None:
        self._pool = client.connection_pool

    def call(self, payload: bytes, count: int = 1) -> list:
        conn = self._pool.get_connection()
        try:
            conn.send_packed_command([payload])
            return [self._reply(conn) for _ in range(count)]
        except BaseException:
            conn.disconnect()
            raise
        finally:
            self._pool.release(conn)

    def post(self, payload: bytes, count: int = 1) -> None:
        self.call(payload, count)

    @staticmethod
    def _reply(conn: redis.connection.AbstractConnection) -> object:
        try:
            return conn.read_response(disable_decoding=True, disconnect_on_error=False)
        except redis.exceptions.NoScriptError as exc:  # redis-py strips the prefix
            return hiredis.ReplyError(f"NOSCRIPT {exc}")
        except redis.ResponseError as exc:
            return hiredis.ReplyError(str(exc))


def wire_for(client: redis.Redis) -> Wire:
    """The ``Wire`` for a client: its own pool, or on a cluster a pipe routing by slot."""
    if isinstance(client, RedisCluster):
        # The slot router is the API's cluster pipe, reused rather than written twice.
        from codegen.store.cluster_pipe import ClusterPipe

        return ClusterPipe.for_client(client)
    return ClientWire(client)


class ScriptSet:
    """Lua scripts of one package, packed as EVALSHA and sent over a ``Wire``.

    If Redis has lost the scripts (restart, failover), ``run`` loads them and
    re-sends only the calls that came back ``NOSCRIPT``: they did not run, so
    re-sending is safe.
    """

    def __init__(
        self,
        wire: Wire,
        package: str,
        names: tuple[str, ...],
        *,
        error: type[Exception] = redis.ResponseError,
    ) -> None:
        self.wire = wire
        self._error = error
        self._source = {n: script_source(package, n).encode() for n in names}
        self._prefix = {
            name: b"$7\r\nEVALSHA\r\n$40\r\n" + hashlib.sha1(src).hexdigest().encode() + b"\r\n"
            for name, src in self._source.items()
        }

    def evalsha(self, name: str, keys: Sequence[str], args: tuple[bytes, ...]) -> bytes:
        """Pack one EVALSHA of script ``name`` (not sent yet)."""
        items = [b"%d" % len(keys), *[key.encode() for key in keys], *args]
        return b"".join(
            [
                b"*%d\r\n" % (2 + len(items)),
                self._prefix[name],
                *[b"$%d\r\n%s\r\n" % (len(item), item) for item in items],
            ]
        )

    def run(self, calls: list[bytes]) -> list:
        """Send ``calls`` (packed scripts or commands) in one round trip; raise on an error."""
        replies = self.wire.call(b"".join(calls), len(calls))
        missing = [i for i, r in enumerate(replies) if _is_noscript(r)]
        if missing:
            self.wire.call(
                b"".join(pack(b"SCRIPT", b"LOAD", src) for src in self._source.values()),
                len(self._source),
            )
            again = self.wire.call(b"".join(calls[i] for i in missing), len(missing))
            for i, reply in zip(missing, again, strict=True):
                replies[i] = reply
        for reply in replies:
            if is_error(reply):
                raise self._error(f"redis script failed: {reply}")
        return replies
