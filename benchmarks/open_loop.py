"""An open-loop HTTP/1.1 load generator: requests leave at fixed scheduled times.

wrk (closed loop) sends a connection's next request only when the previous
answer is in, so when the server stalls the generator politely stops asking
and the stall shows up as one slow request instead of hundreds: coordinated
omission. Debian has wrk but not wrk2, hence this: request ``i`` is due at
``start + i / rate`` whatever the server does; it goes out on the first free
keep-alive connection (one request in flight per connection, like a browser)
and its latency is measured from when it was *due*, so time spent waiting for
a free connection counts. Its lateness counts too: a request that leaves after
it was due is timed from when it was due.

Times are read from ``time.perf_counter``, not the event loop's clock: uvloop's
is libuv's, which moves in whole milliseconds, so a latency read from it was
up to 1 ms short, and requests put up on its timers (1 ms ticks) left up to
~2 ms late (dispatch lag p99 1.9 ms at 1,432 requests/s here; a ``GET`` of the
bare route took 0.86 ms at p50, 2.0 ms at p99, nearly all of it that lag). So a
thread of its own paces the requests with ``time.sleep`` (microseconds) and
hands each to the event loop as it falls due (``call_soon_threadsafe``), which
sends it on a free connection; ``dispatch_lag_*`` is measured there, on the
loop, when a request is handed to a connection or queued for one. The bare
route then took 0.39 ms at p50 and 0.83 ms at p99 (lag p99 0.23 ms). Under a
load that keeps the machine busy the pacing thread waits for a CPU like every
other process (lag p99 1.5 to 3 ms in bench_verify.py's mix at 1,432/s, where
the old ticks gave 2.2 to 2.6 ms; that mix's p99, 4 rounds each way in turn,
did not move beyond the noise), and it costs ~0.17 of a core at that rate
against ~0.12.

It is one Python process (uvloop when installed), so it has a ceiling of its
own. The result says whether it kept up: ``dispatch_lag_p99_ms`` is how late
the scheduler itself put requests up (its own slowness, not the server's),
``generator_cpu`` the share of a core it used; ``kept_up`` is false when
either says the figures measure the generator.

The generator's own garbage collector is off while it runs (``_quiet_gc``): a
full collection of its bookkeeping took 24 ms at 3 s into a 12 s run here, and
every request due meanwhile left late and counted that as the server's latency:
it alone made the run's p99 (2 of 3 runs had their slowest 1% bunched in the
100 ms around it, no server or store stall at the time).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

KEPT_UP_LAG_MS = 5.0
KEPT_UP_CPU = 0.9
_clock = time.perf_counter  # every time here: due, sent, answered


def _request(method: str, host: str, path: str, body: bytes) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


class _Conn(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight."""

    def __init__(self, gen: _Generator) -> None:
        self.gen = gen
        self.buf = b""
        self.need = -1
        self.due = 0.0
        self.index = 0  # of the request in flight, in the generator's list
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, due: float, index: int, request: bytes) -> None:
        self.due, self.index = due, index
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.need < 0:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].lower()
            at = head.find(b"content-length:")
            if at < 0:  # chunked or close-delimited: not what these servers send
                self.gen.fail(self)
                return
            stop = head.find(b"\r\n", at)
            self.need = end + 4 + int(head[at + 15 : stop if stop > 0 else None])
        if len(self.buf) >= self.need:
            ok = self.buf[9:10] == b"2"
            self.buf, self.need = self.buf[self.need :], -1
            self.gen.done(self, ok)

    def connection_lost(self, exc: Exception | None) -> None:
        self.gen.lost(self)


class _Generator:
    def __init__(self, requests: list[bytes], labels: list[str] | None) -> None:
        self.requests = requests
        self.labels = labels
        self.free: collections.deque[_Conn] = collections.deque()
        self.waiting: collections.deque[float] = collections.deque()  # due times
        self.busy: set[_Conn] = set()
        self.sent = 0
        self.latencies: list[float] = []
        self.lags: list[float] = []  # how late each request was handed to a connection (or queued)
        self.by_label: dict[str, list[float]] = collections.defaultdict(list)
        self.errors = 0

    def dispatch(self, due: float) -> None:
        self.lags.append((_clock() - due) * 1000.0)
        if self.free:
            self._send(self.free.popleft(), due)
        else:
            self.waiting.append(due)

    def _send(self, conn: _Conn, due: float) -> None:
        self.busy.add(conn)
        index = self.sent % len(self.requests)
        conn.send(due, index, self.requests[index])
        self.sent += 1

    def done(self, conn: _Conn, ok: bool) -> None:
        latency = (_clock() - conn.due) * 1000.0
        self.latencies.append(latency)
        if self.labels:
            self.by_label[self.labels[conn.index]].append(latency)
        self.errors += not ok
        self.busy.discard(conn)
        if self.waiting:
            self._send(conn, self.waiting.popleft())
        else:
            self.free.append(conn)

    def fail(self, conn: _Conn) -> None:
        conn.transport.close()  # lost() counts the request as an error

    def lost(self, conn: _Conn) -> None:
        if conn in self.busy:  # a request died with its connection
            self.busy.discard(conn)
            self.errors += 1
        if conn in self.free:
            self.free.remove(conn)


async def _run(url: str, bodies: list[bytes] | None, labels: list[str] | None, rate: float,
               seconds: float, connections: int, grace: float) -> dict:  # fmt: skip
    loop = asyncio.get_running_loop()
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    method = "POST" if bodies else "GET"
    requests = [_request(method, parts.netloc, path, b) for b in (bodies or [b""])]
    gen = _Generator(requests, labels)
    for _ in range(connections):
        _, conn = await loop.create_connection(lambda: _Conn(gen), parts.hostname, parts.port or 80)
        gen.free.append(conn)
    total = int(rate * seconds)
    cpu0, start = time.process_time(), _clock()
    paced: asyncio.Future[None] = loop.create_future()
    threading.Thread(target=_pace, args=(loop, gen, start, rate, total, paced),
                     name="open-loop-pacer", daemon=True).start()
    await paced
    sent_by = _clock()
    while (gen.busy or gen.waiting) and _clock() < sent_by + grace:
        await asyncio.sleep(0.005)
    end = _clock()
    cpu = (time.process_time() - cpu0) / (end - start)
    unfinished = len(gen.busy) + len(gen.waiting)
    # Unanswered requests count with what they waited so far: a lower bound, not nothing.
    latencies = gen.latencies + [(end - c.due) * 1000.0 for c in gen.busy]
    latencies += [(end - due) * 1000.0 for due in gen.waiting]
    if labels:
        for conn in gen.busy:
            gen.by_label[labels[conn.index]].append((end - conn.due) * 1000.0)
        for k, due in enumerate(gen.waiting):
            gen.by_label[labels[(gen.sent + k) % len(labels)]].append((end - due) * 1000.0)
    for conn in list(gen.free) + list(gen.busy):
        conn.transport.close()
    latencies.sort()
    lags = sorted(gen.lags)
    by_label = sorted((label, sorted(v)) for label, v in gen.by_label.items())

    def pct(values: list[float], q: float) -> float:
        return values[min(len(values) - 1, int(q / 100 * len(values)))] if values else float("nan")

    lag_p99 = pct(lags, 99)
    return {
        "target_rps": rate,
        "achieved_rps": round(len(gen.latencies) / (end - start), 1),
        "p50_ms": round(pct(latencies, 50), 3),
        "p99_ms": round(pct(latencies, 99), 3),
        "errors": gen.errors,
        "unfinished": unfinished,
        "dispatch_lag_p99_ms": round(lag_p99, 3),
        "dispatch_lag_max_ms": round(lags[-1], 3) if lags else float("nan"),
        "generator_cpu": round(cpu, 3),
        "kept_up": lag_p99 <= KEPT_UP_LAG_MS and cpu < KEPT_UP_CPU,
        # requests sent again because the list ran out: a first check sent twice is a repeat
        "reused": max(0, gen.sent - len(requests)),
        "p50_ms_by_label": {label: round(pct(v, 50), 3) for label, v in by_label},
        "p99_ms_by_label": {label: round(pct(v, 99), 3) for label, v in by_label},
        "count_by_label": {label: len(v) for label, v in by_label},
    }


def _pace(loop: asyncio.AbstractEventLoop, gen: _Generator, start: float, rate: float,
          total: int, paced: asyncio.Future[None]) -> None:
    """Hand request ``i`` to the event loop at ``start + i / rate`` (a thread of its own)."""
    try:
        i = 0
        while i < total:
            due_now = min(total, int((_clock() - start) * rate) + 1)
            while i < due_now:
                loop.call_soon_threadsafe(gen.dispatch, start + i / rate)
                i += 1
            if i < total:
                time.sleep(max(0.0, start + i / rate - _clock()))
    finally:
        loop.call_soon_threadsafe(paced.set_result, None)  # after the last dispatch, in order


@contextlib.contextmanager
def _quiet_gc() -> Iterator[None]:
    """No cyclic garbage collection in this process while the generator runs.

    What it keeps (latencies, due times, connections) holds no reference
    cycles, so nothing is lost by waiting; the objects there before are frozen
    (not collected: the caller's garbage, and its finalizers, stay the
    caller's) so the collection after the run does not walk them.
    """
    was_enabled = gc.isenabled()
    gc.freeze()  # no collection first: the caller's garbage is the caller's to collect
    gc.disable()
    try:
        yield
    finally:
        gc.unfreeze()
        if was_enabled:
            gc.enable()


def run_open_loop(
    url: str,
    bodies: list[bytes] | None,
    rate: float,
    seconds: float,
    connections: int = 32,
    grace: float = 5.0,
    labels: list[str] | None = None,
) -> dict:
    """Send ``rate`` requests a second for ``seconds`` to ``url`` (POST ``bodies`` in turn,
    GET if none) over ``connections`` keep-alive connections.

    Returns p50_ms and p99_ms (from each request's scheduled time), achieved_rps,
    errors (non-2xx answers and requests lost with a connection), unfinished
    (still unanswered ``grace`` seconds after the last was due), and whether the
    generator kept up (``kept_up``, ``dispatch_lag_p99_ms``, ``generator_cpu``);
    ``dispatch_lag_max_ms`` is its worst hold-up (a stall of its own, or of
    the machine, that a p99 of lags hides when it is short).
    """
    try:
        from uvloop import run
    except ImportError:
        run = asyncio.run
    with _quiet_gc():
        return run(_run(url, bodies, labels, rate, seconds, connections, grace))
