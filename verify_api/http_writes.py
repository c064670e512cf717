"""uvicorn's httptools protocol, with a response's head and body leaving in one write.

uvicorn writes the status line and headers when the app sends
``http.response.start`` and the body when it sends ``http.response.body``: two
``send`` calls, two TCP segments (the socket has ``TCP_NODELAY``), and a client
woken twice for an answer of a few hundred bytes. Measured side by side on one
redis-server with ``bench_verify.py``'s servers and loads (issue 15: six rounds of
5 s, wrk -t2 -c32, the order reversed every round): one write gave 1.09x the
repeat checks per second of two (rounds 0.94-1.15, five of six above 1.04) and
1.05x the first checks, with less CPU in the worker and in the client. uvicorn
has no option for it, hence this module; it replaces nothing else of uvicorn.

``OneWriteTransport`` sits between the protocol and its transport: a write is
held until the next one, which takes it along, or until the end of the event
loop's turn, when it leaves alone. So data leaves in order, never later than
the turn it was written in, and a head whose body comes in a later turn (a
stream, a ``100 Continue``) is not kept waiting for it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class OneWriteTransport(asyncio.Transport):
    """A transport that joins each write to the one after it, within one event-loop turn."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None
        self._flush_scheduled = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held is None:
            self._held = bytes(data)
            if not self._flush_scheduled:
                self._flush_scheduled = True
                self._loop.call_soon(self._flush)
        else:
            self._held = None
            self._transport.write(held + data)

    def writelines(self, list_of_data) -> None:
        self.write(b"".join(list_of_data))

    def _flush(self) -> None:
        self._flush_scheduled = False
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + len(self._held or b"")

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()


class OneWriteHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol over a ``OneWriteTransport`` (``Config(http=...)``)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(OneWriteTransport(transport, self.loop))
