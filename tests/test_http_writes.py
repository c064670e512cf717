"""A response's head and body in one write (verify_api/http_writes.py), on a real uvicorn.

Each test runs uvicorn's own server with ``OneWriteHttpProtocol`` on a loopback
port (``helpers.asgi_server``, uvloop as in the workers) and talks to it over a
real socket. Writes
are counted by a transport that records what passes to the real one beneath.
"""

from __future__ import annotations

import asyncio
import socket

import uvloop
from helpers.asgi_server import serving_app

from verify_api.http_writes import OneWriteHttpProtocol, OneWriteTransport


class _Recording:
    """The real transport, with every write that reaches it recorded."""

    def __init__(self, transport: asyncio.Transport, writes: list[bytes]) -> None:
        self._transport = transport
        self._writes = writes

    def write(self, data: bytes) -> None:
        self._writes.append(bytes(data))
        self._transport.write(data)

    def __getattr__(self, name: str):
        return getattr(self._transport, name)


def _serve(app, body: bytes) -> tuple[bytes, list[bytes]]:
    """Send ``body`` (raw HTTP) to a uvicorn running ``app``; return all it answered until it
    closed or went quiet, and the writes that reached the real transport."""
    writes: list[bytes] = []

    class Protocol(OneWriteHttpProtocol):
        def connection_made(self, transport):
            super().connection_made(_Recording(transport, writes))

    with serving_app(_http_only(app), http=Protocol) as base:
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=1.0) as client:
            client.sendall(body)
            answered = b""
            while True:
                try:
                    chunk = client.recv(65536)
                except TimeoutError:
                    break
                if not chunk:
                    break
                answered += chunk
    return answered, writes


def _http_only(app):
    """``app`` with the lifespan messages answered, as ``serving_app`` starts one."""

    async def wrapped(scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
        else:
            await app(scope, receive, send)

    return wrapped


async def _json_app(scope, receive, send) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"{}"})


GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def test_a_response_leaves_in_one_write():
    answered, writes = _serve(_json_app, GET * 3)  # three on one keep-alive connection
    assert answered.count(b"HTTP/1.1 200 OK") == 3 and answered.endswith(b"\r\n\r\n{}")
    assert len(writes) == 3, [w[:40] for w in writes]
    assert all(w.startswith(b"HTTP/1.1 200 OK") and w.endswith(b"{}") for w in writes)


def test_a_head_whose_body_comes_later_is_not_held_for_it():
    """A stream's head leaves at the end of its turn: the client sees it before any body."""
    async def streaming(scope, receive, send) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await asyncio.sleep(0.2)  # a slow source: the head must not wait for it
        for part in (b"one ", b"two"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    answered, writes = _serve(streaming, GET)
    assert answered.startswith(b"HTTP/1.1 200 OK") and b"transfer-encoding: chunked" in answered
    assert answered.endswith(b"4\r\none \r\n3\r\ntwo\r\n0\r\n\r\n")
    assert writes[0].endswith(b"\r\n\r\n"), "the head left alone, before the body existed"
    assert b"".join(writes) == answered


def test_an_answer_then_close_is_flushed_before_the_close():
    """uvicorn's 400 for a request it cannot parse is written and closed in one go."""
    answered, writes = _serve(_json_app, b"NOT HTTP AT ALL\r\n\r\n")
    assert answered.startswith(b"HTTP/1.1 400 Bad Request")
    assert len(writes) == 1


def test_the_transport_keeps_order_across_turns():
    """Joined, held and flushed writes arrive in the order written; close sends what is held."""

    async def main() -> tuple[bytes, list[bytes]]:
        loop = asyncio.get_running_loop()
        writes: list[bytes] = []
        left, right = socket.socketpair()
        transport, _ = await loop.create_connection(asyncio.Protocol, sock=left)
        one = OneWriteTransport(_Recording(transport, writes), loop)  # type: ignore[arg-type]
        one.write(b"a")
        one.write(b"b")  # takes a along
        one.write(b"c")  # alone in its turn: leaves at the turn's end
        await asyncio.sleep(0.01)
        one.writelines([b"d", b"e"])
        one.close()  # what is held leaves before the close
        await asyncio.sleep(0.05)
        got = right.recv(100)
        right.close()
        return got, writes

    got, writes = uvloop.run(main())
    assert got == b"abcde"
    assert writes == [b"ab", b"c", b"de"]


def test_abort_drops_what_is_held():
    async def main() -> bytes:
        loop = asyncio.get_running_loop()
        left, right = socket.socketpair()
        transport, _ = await loop.create_connection(asyncio.Protocol, sock=left)
        one = OneWriteTransport(transport, loop)
        one.write(b"never")
        one.abort()
        await asyncio.sleep(0.05)
        got = right.recv(100)
        right.close()
        return got

    assert uvloop.run(main()) == b""
