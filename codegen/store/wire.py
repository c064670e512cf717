"""Raw RESP to Redis for the hot paths: packed commands in, hiredis replies out.

A check and a claim's credit are a few commands whose cost, through redis-py,
is mostly redis-py (connection pool, command objects, response callbacks):
``benchmarks/bench_link.py`` measures it. The hot paths therefore pack their
commands themselves and send them over an asyncio ``Link``
(``codegen/store/link.py``, or ``cluster_link.py`` on a cluster), shared by a
worker's concurrent requests; the CLI and the reconciler run the same code in
``asyncio.run`` over a link of their own (``link_for``).

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

from codegen.exc import StoreError
from codegen.store.scripts import script_source


class Link(Protocol):
    """An asyncio link that sends packed commands and returns their replies in order
    (``RedisLink``, ``ClusterLink``)."""

    async def call(self, payload: bytes, count: int = 1) -> list: ...

    async def post(self, payload: bytes, count: int = 1) -> None:
        """Send without waiting: for work whose loss only costs a later replay."""

    def close(self) -> None: ...

    async def aclose(self) -> None: ...


def pack(*args: bytes | str | int) -> bytes:
    """Encode one command in RESP: ``*N`` then ``$len``-prefixed arguments (hiredis, in C;
    a str goes as UTF-8, an int as its digits)."""
    return hiredis.pack_command(args)


async def call(link: Link, *commands: bytes) -> list:
    """Send packed commands in one round trip; a Redis error reply raises StoreError.

    For plain reads and writes, whose error replies (``LOADING`` after a
    restart, ``READONLY`` on a demoted master) mean the store cannot answer.
    """
    replies = await link.call(b"".join(commands), len(commands))
    for reply in replies:
        if is_error(reply):
            raise StoreError(f"redis: {reply}")
    return replies


def hash_pairs(raw: list | dict) -> dict:
    """A hash as a dict, from a raw HGETALL reply (a flat list, or a RESP3 map)."""
    if isinstance(raw, dict):
        return raw
    return dict(zip(raw[::2], raw[1::2], strict=True))


def text_pairs(raw: list | dict) -> dict[str, str]:
    """``hash_pairs`` decoded as UTF-8 text, in one pass over the reply (a member's record is
    read this way on every first check)."""
    if isinstance(raw, dict):
        return {k.decode(): v.decode() for k, v in raw.items()}
    pairs = iter(raw)
    return {k.decode(): v.decode() for k, v in zip(pairs, pairs, strict=True)}


def is_error(reply: object) -> bool:
    return isinstance(reply, hiredis.ReplyError)


def _is_noscript(reply: object) -> bool:
    return is_error(reply) and str(reply).startswith("NOSCRIPT")


def link_for(client: redis.Redis | RedisCluster, *, timeout: float = 5.0) -> Link:
    """The asyncio link to the server (or cluster) a redis-py client talks to."""
    if isinstance(client, RedisCluster):
        from codegen.store.cluster_link import ClusterLink

        return ClusterLink.for_client(client, timeout=timeout)
    from codegen.store.link import RedisLink

    kw = client.connection_pool.connection_kwargs
    if kw.get("path"):
        url = f"unix://{kw['path']}?db={kw.get('db') or 0}"
    else:
        tls = issubclass(client.connection_pool.connection_class, redis.SSLConnection)
        host, port = kw.get("host", "localhost"), kw.get("port", 6379)
        url = f"{'rediss' if tls else 'redis'}://{host}:{port}/{kw.get('db') or 0}"
        if tls:
            options = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs")
            query = "&".join(f"{k}={kw[k]}" for k in options if kw.get(k))
            url += f"?{query}" if query else ""
    credentials = {k: kw[k] for k in ("username", "password") if kw.get(k)}
    return RedisLink(url, timeout=timeout, credentials=credentials)


class ScriptSet:
    """Lua scripts of one package, packed as EVALSHA and sent over a ``Link``.

    If Redis has lost the scripts (restart, failover), ``run`` loads them and
    re-sends only the calls that came back ``NOSCRIPT``: they did not run, so
    re-sending is safe.
    """

    def __init__(
        self,
        wire: Link | None,
        package: str,
        names: tuple[str, ...],
        *,
        error: type[Exception] = redis.ResponseError,
    ) -> None:
        self.wire = wire
        self._error = error
        self._source = {n: script_source(package, n).encode() for n in names}
        self._sha = {n: hashlib.sha1(src).hexdigest().encode() for n, src in self._source.items()}

    def evalsha(
        self, name: str, keys: Sequence[str], args: Sequence[bytes | str | int]
    ) -> bytes:
        """Pack one EVALSHA of script ``name`` (not sent yet); keys are str, UTF-8 on the wire."""
        return hiredis.pack_command((b"EVALSHA", self._sha[name], len(keys), *keys, *args))

    async def run(self, calls: list[bytes]) -> list:
        """Send ``calls`` (packed scripts or commands) in one round trip; raise on an error."""
        replies = await self.wire.call(b"".join(calls), len(calls))
        error = hiredis.ReplyError  # one isinstance a reply: twice a check, ~6 replies each
        if not any(isinstance(reply, error) for reply in replies):
            return replies
        missing = [i for i, r in enumerate(replies) if _is_noscript(r)]
        if missing:
            await self.wire.call(
                b"".join(pack(b"SCRIPT", b"LOAD", src) for src in self._source.values()),
                len(self._source),
            )
            again = await self.wire.call(b"".join(calls[i] for i in missing), len(missing))
            for i, reply in zip(missing, again, strict=True):
                replies[i] = reply
        for reply in replies:
            if is_error(reply):
                raise self._error(f"redis script failed: {reply}")
        return replies


class Conversation:
    """Packed commands down one pooled connection of a redis-py client, from one thread.

    The synchronous counterpart of a ``Link`` for a job that talks to one server
    for a long while (a members import, ``member_import.py``): replies are read
    when the caller asks, so it can send the next commands before reading the
    replies of the last. An error reply is returned in its slot as the
    exception redis-py would raise (``NoScriptError``, ``NoPermissionError``...),
    once every reply before it is read, so the connection stays in step; a
    connection that failed is disconnected before it goes back to the pool.
    """

    def __init__(self, client: redis.Redis) -> None:
        self._pool = client.connection_pool
        self._conn: redis.Connection | None = None
        self._owed = 0  # replies sent for and not read yet

    def send(self, payload: bytes, count: int) -> None:
        """Write ``count`` packed commands; their replies wait for ``replies``."""
        if self._conn is None:
            self._conn = self._pool.get_connection()
        try:
            self._conn.send_packed_command([payload])
        except BaseException:
            self.close(failed=True)
            raise
        self._owed += count

    def replies(self, count: int) -> list:
        """The next ``count`` replies, in order."""
        conn = self._conn
        if conn is None or count > self._owed:
            raise ValueError(f"{count} replies asked, {self._owed} owed")
        out: list = []
        try:
            for _ in range(count):
                try:
                    out.append(conn.read_response())
                except redis.ResponseError as exc:
                    out.append(exc)
        except BaseException:
            self.close(failed=True)
            raise
        self._owed -= count
        return out

    def call(self, payload: bytes, count: int) -> list:
        """Send ``count`` packed commands and return their replies (one round trip)."""
        self.send(payload, count)
        return self.replies(count)

    def close(self, *, failed: bool = False) -> None:
        """Give the connection back to the pool: disconnected when ``failed`` or when
        replies are still owed, so no later user reads them."""
        conn, self._conn = self._conn, None
        if conn is not None:
            if failed or self._owed:
                conn.disconnect()
            self._pool.release(conn)
        self._owed = 0
