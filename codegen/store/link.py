"""The API's asyncio link to one Redis server: packed commands in, raw hiredis replies out.

Hand-written, not ``redis.asyncio``: measured on the check path
(``benchmarks/bench_link.py``), a request's pipeline of EVALSHAs costs this
link a fraction of the CPU that redis-py's asyncio pipeline spends on its
connection pool, command objects and response callbacks, and the API's check
is bound by that CPU. The bench prints the ratio; the docstring of
``bench_link.py`` says when to drop this module for redis-py.

How it works, like ioredis' auto-pipelining:

* one connection per event loop (per worker), shared by all its requests;
* a caller appends its packed commands to the write buffer and a future to
  the FIFO of calls in flight; the first caller of a loop iteration schedules
  one flush (``call_soon``), so every request that runs in the same iteration
  shares one ``write``;
* ``data_received`` parses replies with hiredis as they arrive and resolves
  the futures in FIFO order, which is the order Redis answers in.

Redis errors come back as ``hiredis.ReplyError`` values in their slot. A call
that waits longer than ``timeout`` breaks the link (the replies after it
could no longer be matched to their callers): every call in flight fails
with StoreError and the next call reconnects. TLS takes redis-py's own
``ssl_*`` URL options through redis-py's ``RedisSSLContext``, so a
``rediss://`` URL means here what it means to redis-py.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping

import hiredis
from redis.asyncio.connection import RedisSSLContext
from redis.connection import parse_url

from codegen.exc import StoreError
from codegen.store.loops import running_loop
from codegen.store.wire import pack

__all__ = ["RedisLink", "forget", "pack"]

_SSL_OPTIONS = {
    "ssl_keyfile": "keyfile", "ssl_certfile": "certfile", "ssl_cert_reqs": "cert_reqs",
    "ssl_ca_certs": "ca_certs", "ssl_ca_data": "ca_data", "ssl_ca_path": "ca_path",
    "ssl_check_hostname": "check_hostname", "ssl_password": "password",
    "ssl_ciphers": "ciphers",
}  # fmt: skip
_SSL_DEFAULTS = {"cert_reqs": "required", "check_hostname": True}  # redis-py's SSLConnection


def ssl_context(options: Mapping[str, object]):
    """The client TLS context redis-py would build from the same URL options."""
    kwargs = dict(_SSL_DEFAULTS)
    for url_name, name in _SSL_OPTIONS.items():
        if options.get(url_name) is not None:
            kwargs[name] = options[url_name]
    if isinstance(kwargs["check_hostname"], str):
        kwargs["check_hostname"] = kwargs["check_hostname"].lower() in ("1", "true", "yes")
    return RedisSSLContext(**kwargs).get()


class _Call:
    __slots__ = ("count", "replies", "future", "deadline")

    def __init__(self, count: int, future: asyncio.Future, deadline: float) -> None:
        self.count = count
        self.replies: list = []
        self.future = future
        self.deadline = deadline


class _Connection(asyncio.Protocol):
    """One socket, its FIFO of calls in flight, its write buffer and its reply parser."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self.loop = loop
        self.timeout = timeout
        self.transport: asyncio.Transport | None = None
        self.reader = hiredis.Reader()
        self.waiting: deque[_Call] = deque()
        self.buffer: list[bytes] = []
        self.flush_scheduled = False
        self.before_flush: list = []  # callbacks that add their calls to this turn's write
        self.watchdog: asyncio.TimerHandle | None = None
        self.broken: Exception | None = None
        self.writes = 0

    # -- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        reader, waiting = self.reader, self.waiting
        reader.feed(data)
        try:
            while (reply := reader.gets()) is not False:
                call = waiting[0]
                call.replies.append(reply)
                if len(call.replies) == call.count:
                    waiting.popleft()
                    if not call.future.done():
                        call.future.set_result(call.replies)
        except (hiredis.ProtocolError, IndexError) as exc:
            self.fail(StoreError(f"redis: {exc!r}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(StoreError(f"redis closed the connection{f': {exc}' if exc else ''}"))

    # -- calls --------------------------------------------------------------------------

    def submit(self, payload: bytes, count: int) -> asyncio.Future:
        if self.broken is not None:
            raise self.broken
        future = self.loop.create_future()
        self.waiting.append(_Call(count, future, self.loop.time() + self.timeout))
        self.buffer.append(payload)
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self._flush)
        if self.watchdog is None:
            self.watchdog = self.loop.call_later(self.timeout, self._watch)
        return future

    def defer(self, callback) -> None:
        """Run ``callback`` at the end of this turn, just before the write: what it submits
        leaves with everything else submitted in the turn (``verify_api/check/turns.py``)."""
        self.before_flush.append(callback)
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        while self.before_flush:
            hooks, self.before_flush = self.before_flush, []
            for hook in hooks:
                hook()
        self.flush_scheduled = False
        if self.broken is None and self.buffer:
            data = b"".join(self.buffer)
            self.buffer.clear()
            self.writes += 1
            self.transport.write(data)

    def _watch(self) -> None:
        """Break the link if the oldest call in flight is past its deadline."""
        self.watchdog = None
        if not self.waiting or self.broken is not None:
            return
        late = self.waiting[0].deadline - self.loop.time()
        if late <= 0:
            self.fail(StoreError(f"redis did not answer within {self.timeout} s"))
        else:
            self.watchdog = self.loop.call_later(late, self._watch)

    def fail(self, error: Exception) -> None:
        """Fail every call in flight and close; the link's next call reconnects."""
        if self.broken is None:
            self.broken = error
        waiting, self.waiting = self.waiting, deque()
        for call in waiting:
            if not call.future.done():
                call.future.set_exception(self.broken)
        hooks, self.before_flush = self.before_flush, []
        for hook in hooks:  # they send the long way: a new connection
            self.loop.call_soon(hook)
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None
        if self.transport is not None:
            self.transport.abort()


def forget(future: asyncio.Future) -> None:
    """Retrieve an outcome nobody waits for (a posted call's) so asyncio does not log it."""
    if not future.cancelled():
        future.exception()


class RedisLink:
    """Send packed commands of many concurrent requests over one pipelined connection."""

    def __init__(
        self, url: str, *, timeout: float = 5.0, credentials: Mapping[str, str] | None = None
    ) -> None:
        self.url = url
        self.timeout = timeout
        self._options = parse_url(url)
        self._options.update({k: v for k, v in (credentials or {}).items() if v})
        self._conn: _Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connecting: asyncio.Lock | None = None
        self.calls = 0

    @property
    def writes(self) -> int:
        """Socket writes of the live connection (the benchmark's calls per write)."""
        return self._conn.writes if self._conn else 0

    async def call(self, payload: bytes, count: int = 1) -> list:
        """Send ``count`` packed commands; return their replies in order."""
        conn = self._conn
        if conn is None or conn.broken is not None or self._loop is not conn.loop:
            conn = await self._connected()
        self.calls += 1
        return await conn.submit(payload, count)

    def submit(self, payload: bytes, count: int = 1) -> asyncio.Future:
        """Send now on the live connection and return the future of the replies.

        For a caller that sends to several links before it awaits any (the
        cluster link); raises StoreError when there is no live connection.
        """
        conn = self._live()
        self.calls += 1
        return conn.submit(payload, count)

    def defer(self, callback) -> None:
        """Run ``callback`` just before this turn's write on the live connection
        (``_Connection.defer``); raises StoreError when there is none."""
        self._live().defer(callback)

    def _live(self) -> _Connection:
        """The connection of the running loop, usable now; StoreError when there is none."""
        conn = self._conn
        if conn is None or conn.broken is not None or conn.loop is not running_loop():
            raise StoreError(f"no live connection to {self.url}")
        return conn

    async def post(self, payload: bytes, count: int = 1) -> None:
        """Send ``count`` packed commands and return at once; their replies are dropped.

        For work that a later replay settles if it is lost (an outbox entry's
        removal): the caller does not wait one more round trip for it.
        """
        conn = self._conn
        if conn is None or conn.broken is not None or self._loop is not conn.loop:
            conn = await self._connected()
        conn.submit(payload, count).add_done_callback(forget)

    async def ensure_connected(self) -> None:
        await self._connected()

    def close(self) -> None:
        """Fail what is in flight and drop the connection (its loop closes the socket)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.fail(StoreError("the redis link was closed"))

    async def aclose(self) -> None:
        """``close``, then let the event loop close the socket before returning."""
        self.close()
        await asyncio.sleep(0)

    # -- internals ----------------------------------------------------------------------

    async def _connected(self) -> _Connection:
        """Return the live connection of this event loop, connecting first if needed."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new loop (a test's asyncio.run): start afresh
            self._loop, self._conn, self._connecting = loop, None, asyncio.Lock()
        async with self._connecting:
            conn = self._conn
            if conn is not None and conn.broken is None:
                return conn
            conn = await self._open(loop)
            self._conn = conn
            return conn

    async def _open(self, loop: asyncio.AbstractEventLoop) -> _Connection:
        opts = self._options
        conn = _Connection(loop, self.timeout)
        try:
            if opts.get("path"):
                connecting = loop.create_unix_connection(lambda: conn, opts["path"])
            else:
                host, port = opts.get("host", "localhost"), int(opts.get("port", 6379))
                tls = None
                if opts.get("connection_class") is not None and "SSL" in opts[
                    "connection_class"
                ].__name__:
                    tls = ssl_context(opts)
                connecting = loop.create_connection(lambda: conn, host, port, ssl=tls)
            await asyncio.wait_for(connecting, self.timeout)
            await self._handshake(conn)
        except (TimeoutError, OSError) as exc:
            conn.fail(StoreError("connect failed"))
            raise StoreError(f"cannot reach redis at {self.url}: {exc or 'timed out'}") from exc
        return conn

    async def _handshake(self, conn: _Connection) -> None:
        """AUTH and SELECT as the URL asks, before the connection is shared."""
        opts = self._options
        commands = []
        if opts.get("password"):
            auth = [opts["username"].encode()] if opts.get("username") else []
            commands.append(pack(b"AUTH", *auth, opts["password"].encode()))
        if int(opts.get("db") or 0):
            commands.append(pack(b"SELECT", str(opts["db"]).encode()))
        if not commands:
            return
        replies = await conn.submit(b"".join(commands), len(commands))
        for reply in replies:
            if isinstance(reply, hiredis.ReplyError):
                conn.fail(StoreError("setup refused"))
                raise StoreError(f"redis refused the connection setup: {reply}")
