"""One pipelined Redis connection per worker, shared by all its concurrent requests.

A verification is one EVALSHA; the round trip, not Redis, is what costs. Like
ioredis's auto-pipelining, requests never wait for each other's round trips:

* a caller appends its packed commands to the write buffer and its slot to a
  FIFO of calls in flight, then waits on its own event;
* writes are coalesced: the first caller to find no flush pending yields once
  (``time.sleep(0)``: under gevent every greenlet already runnable gets its
  turn, so one ``send`` carries all their commands) and then sends the buffer;
* one reader (a greenlet under gevent, a thread otherwise) parses replies with
  hiredis as they arrive and hands each caller its own, in FIFO order, which
  is the order Redis answers in.

Many batches can be in flight at once on the one connection, so a request's
latency is one round trip however busy the worker is. Redis errors come back
as ``hiredis.ReplyError`` values in their slot; a broken link fails every
call in flight with StoreError and the next call reconnects.
"""

from __future__ import annotations

import os
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Mapping

import hiredis
import redis
from redis.cluster import RedisCluster
from redis.connection import parse_url

from codegen.exc import StoreError
from codegen.store.wire import pack

__all__ = ["RedisPipe", "pack"]


class _Call:
    __slots__ = ("count", "replies", "error", "event")

    def __init__(self, count: int) -> None:
        self.count = count
        self.replies: list = []
        self.error: Exception | None = None
        self.event = threading.Event()


class _Link:
    """One connected socket, its FIFO of calls in flight and its reader."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.waiting: deque[_Call] = deque()
        self.buffer: list[bytes] = []
        self.flush_pending = False
        self.broken: Exception | None = None


class RedisPipe:
    """Send packed commands of many callers over one pipelined connection."""

    def __init__(
        self, url: str, *, timeout: float = 5.0, credentials: Mapping[str, str] | None = None
    ) -> None:
        self.url = url
        self.timeout = timeout
        self._options = parse_url(url)
        self._options.update({k: v for k, v in (credentials or {}).items() if v})
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._link: _Link | None = None
        self._pid = 0
        self.writes = 0  # statistics for the benchmark: calls per socket write
        self.calls = 0

    @classmethod
    def for_client(cls, client: redis.Redis | RedisCluster, *, timeout: float = 5.0) -> RedisPipe:
        """Return a pipe to the server ``client`` talks to (unix socket or TCP).

        For a cluster client, a ``ClusterPipe``: one such pipe per master.
        """
        if isinstance(client, RedisCluster):
            from codegen.store.cluster_pipe import ClusterPipe

            return ClusterPipe.for_client(client, timeout=timeout)  # type: ignore[return-value]
        kw = client.connection_pool.connection_kwargs
        if kw.get("path"):
            url = f"unix://{kw['path']}?db={kw.get('db') or 0}"
        else:
            tls = issubclass(client.connection_pool.connection_class, redis.SSLConnection)
            host, port = kw.get("host", "localhost"), kw.get("port", 6379)
            url = f"{'rediss' if tls else 'redis'}://{host}:{port}/{kw.get('db') or 0}"
        pipe = cls(url, timeout=timeout)
        pipe._options.update({k: kw[k] for k in ("username", "password") if kw.get(k)})
        return pipe

    def call(self, payload: bytes, count: int = 1) -> list:
        """Send ``count`` packed commands; return their replies in order."""
        return self.wait(self.submit(payload, count))

    def submit(self, payload: bytes, count: int = 1) -> tuple[_Link, _Call]:
        """Send ``count`` packed commands; ``wait`` on the ticket for their replies.

        Split from ``call`` so that a cluster pipe sends to every master
        before it waits for any.
        """
        return self._send(payload, count)

    def wait(self, ticket: tuple[_Link, _Call]) -> list:
        """Return the replies of a ``submit``, or raise StoreError."""
        link, call = ticket
        if not call.event.wait(self.timeout):
            self._break(link, StoreError(f"redis did not answer within {self.timeout} s"))
        if call.error is not None:
            raise call.error
        return call.replies

    def post(self, payload: bytes, count: int = 1) -> None:
        """Send ``count`` packed commands and return at once; their replies are dropped.

        For work that a later replay settles if it is lost (an outbox entry's
        removal): the caller does not wait one more round trip for it.
        """
        self._send(payload, count)

    def close(self) -> None:
        with self._lock:
            link, self._link = self._link, None
        if link is not None:
            self._break(link, StoreError("the redis pipe was closed"))

    # -- internals ----------------------------------------------------------------------

    def _send(self, payload: bytes, count: int) -> tuple[_Link, _Call]:
        """Queue the commands; the first caller with no flush pending sends the buffer."""
        call = _Call(count)
        with self._lock:
            link = self._connected()
            link.waiting.append(call)
            link.buffer.append(payload)
            self.calls += 1
            schedule = not link.flush_pending
            link.flush_pending = True
        if schedule:
            time.sleep(0)  # let requests already under way add their commands to this write
            self._flush(link)
        return link, call

    def _flush(self, link: _Link) -> None:
        """Send the buffer; the send lock keeps the bytes in FIFO order."""
        with self._send_lock:
            with self._lock:
                data = b"".join(link.buffer)
                link.buffer.clear()
                link.flush_pending = False
            if not data or link.broken:
                return
            self.writes += 1
            try:
                link.sock.sendall(data)
            except OSError as exc:
                self._break(link, StoreError(f"redis: {exc}"))

    def _read_loop(self, link: _Link) -> None:
        reader = hiredis.Reader()
        current: _Call | None = None
        try:
            while link.broken is None:
                data = link.sock.recv(262144)
                if not data:
                    raise StoreError("redis closed the connection")
                reader.feed(data)
                while (reply := reader.gets()) is not False:
                    if current is None:
                        current = link.waiting[0]
                    current.replies.append(reply)
                    if len(current.replies) == current.count:
                        link.waiting.popleft()
                        current.event.set()
                        current = None
        except (OSError, hiredis.ProtocolError, StoreError, IndexError) as exc:
            error = exc if isinstance(exc, StoreError) else StoreError(f"redis: {exc!r}")
            self._break(link, error)

    def _break(self, link: _Link, error: Exception) -> None:
        """Fail every call in flight on ``link`` and drop it; the next call reconnects."""
        with self._lock:
            if link.broken is None:
                link.broken = error
            if self._link is link:
                self._link = None
            waiting = list(link.waiting)
            link.waiting.clear()
        for call in waiting:
            call.error = link.broken
            call.event.set()
        try:
            link.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        link.sock.close()

    def _connected(self) -> _Link:
        """Return the live link, connecting first if needed (called under the lock)."""
        if self._link is not None and self._pid == os.getpid():
            return self._link
        self._link = None  # a socket inherited across fork() belongs to the parent
        sock = self._open()
        link = _Link(sock)
        sock.settimeout(None)  # the reader blocks; callers time out on their events
        self._link, self._pid = link, os.getpid()
        threading.Thread(target=self._read_loop, args=(link,), daemon=True).start()
        return link

    def _open(self) -> socket.socket:
        opts = self._options
        sock = None
        try:
            if opts.get("path"):
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(self.timeout)
                sock.connect(opts["path"])
            else:
                address = (opts.get("host", "localhost"), int(opts.get("port", 6379)))
                sock = socket.create_connection(address, self.timeout)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if opts.get("connection_class") is redis.SSLConnection:
                    sock = ssl.create_default_context().wrap_socket(
                        sock, server_hostname=address[0]
                    )
            self._handshake(sock)
        except (OSError, StoreError) as exc:
            if sock is not None:
                sock.close()
            if isinstance(exc, StoreError):
                raise
            raise StoreError(f"cannot reach redis at {self.url}: {exc}") from exc
        return sock

    def _handshake(self, sock: socket.socket) -> None:
        """AUTH and SELECT as the URL asks, before the link is shared."""
        opts = self._options
        commands = []
        if opts.get("password"):
            auth = [opts["username"].encode()] if opts.get("username") else []
            commands.append(pack(b"AUTH", *auth, opts["password"].encode()))
        if int(opts.get("db") or 0):
            commands.append(pack(b"SELECT", str(opts["db"]).encode()))
        if not commands:
            return
        sock.sendall(b"".join(commands))
        reader = hiredis.Reader()
        replies: list = []
        while len(replies) < len(commands):
            reply = reader.gets()
            if reply is False:
                data = sock.recv(4096)
                if not data:
                    raise OSError("redis closed the connection during setup")
                reader.feed(data)
            else:
                replies.append(reply)
        for reply in replies:
            if isinstance(reply, hiredis.ReplyError):
                raise StoreError(f"redis refused the connection setup: {reply}")
