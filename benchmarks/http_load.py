"""A small closed-loop HTTP/1.1 load generator: keep-alive sockets on one epoll loop.

``wrk`` is not on the machine, and a thread per connection in Python spends
more time on the GIL than on the server. One process drives N non-blocking
connections from a ``selectors`` loop with pre-encoded requests, so a request
costs the generator a send, a recv and a header scan; ``run_load`` starts
several such processes and merges their counts and latencies.
"""

from __future__ import annotations

import multiprocessing as mp
import selectors
import socket
import time
from dataclasses import dataclass


@dataclass
class LoadResult:
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def encode_request(method: str, path: str, body: bytes = b"", host: str = "bench") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


class _Conn:
    __slots__ = ("sock", "buf", "sent_at", "need")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        self.sent_at = 0.0
        self.need = -1  # total bytes of the response once its headers are in


def _response_length(buf: bytes) -> int:
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return -1
    head = buf[:end].lower()
    at = head.find(b"content-length:")
    length = int(head[at + 15 : head.find(b"\r\n", at) if head.find(b"\r\n", at) > 0 else None])
    return end + 4 + length


def _status_ok(buf: bytes) -> bool:
    return buf[9:10] in (b"2",)


def _drive(
    address: tuple[str, int], requests: list[bytes], connections: int, seconds: float, warmup: float
) -> tuple[int, int, float, list[float]]:
    """Run one generator process; return (count, errors, measured seconds, latencies)."""
    sel = selectors.DefaultSelector()
    conns = [_Conn(_connect(address)) for _ in range(connections)]
    for conn in conns:
        sel.register(conn.sock, selectors.EVENT_READ, conn)
    n_req = len(requests)
    nxt = 0
    clock = time.perf_counter
    start = clock()
    measure_from = start + warmup
    stop_at = measure_from + seconds
    count = errors = 0
    latencies: list[float] = []
    for conn in conns:
        conn.sent_at = clock()
        conn.sock.send(requests[nxt % n_req])
        nxt += 1
    while True:
        now = clock()
        if now >= stop_at:
            break
        for key, _ in sel.select(0.5):
            conn = key.data
            chunk = conn.sock.recv(65536)
            if not chunk:  # the server closed the connection (no keep-alive): reconnect
                if conn.buf:
                    raise ConnectionError("server closed a connection mid-response")
                sel.unregister(conn.sock)
                conn.sock.close()
                conn.sock = _connect(address)
                sel.register(conn.sock, selectors.EVENT_READ, conn)
                conn.sent_at = clock()
                conn.sock.send(requests[(nxt - 1) % n_req])
                continue
            conn.buf += chunk
            if conn.need < 0:
                conn.need = _response_length(conn.buf)
            if conn.need < 0 or len(conn.buf) < conn.need:
                continue
            done = clock()
            if done >= measure_from:
                count += 1
                latencies.append((done - conn.sent_at) * 1000.0)
                if not _status_ok(conn.buf):
                    errors += 1
            closing = b"connection: close" in conn.buf[: conn.need].lower()
            conn.buf = conn.buf[conn.need :]
            conn.need = -1
            conn.sent_at = done
            if closing:  # send after the reconnect above
                nxt += 1
                continue
            conn.sock.send(requests[nxt % n_req])
            nxt += 1
    elapsed = min(clock(), stop_at) - measure_from
    for conn in conns:
        conn.sock.close()
    return count, errors, elapsed, latencies


def _connect(address: tuple[str, int]) -> socket.socket:
    sock = socket.create_connection(address)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(False)
    return sock


def _worker(args: tuple, out: mp.Queue) -> None:
    try:
        out.put(_drive(*args))
    except Exception as exc:  # report it instead of leaving the parent to time out
        out.put(exc)


def run_load(
    address: tuple[str, int],
    request_sets: list[list[bytes]],
    connections: int = 32,
    seconds: float = 10.0,
    warmup: float = 1.0,
) -> LoadResult:
    """Drive the server from ``len(request_sets)`` processes sharing ``connections``."""
    procs = len(request_sets)
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    workers = []
    for i, reqs in enumerate(request_sets):
        share = connections // procs + (1 if i < connections % procs else 0)
        p = ctx.Process(target=_worker, args=((address, reqs, share, seconds, warmup), out))
        p.start()
        workers.append(p)
    parts = [out.get(timeout=seconds + warmup + 60) for _ in workers]
    for p in workers:
        p.join(10)
    for part in parts:
        if isinstance(part, Exception):
            raise part
    return LoadResult(
        requests=sum(p[0] for p in parts),
        errors=sum(p[1] for p in parts),
        seconds=max(p[2] for p in parts),
        latencies_ms=[lat for p in parts for lat in p[3]],
    )
