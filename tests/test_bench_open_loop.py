"""The open-loop generator of bench_verify.py: a stall counts for every request due during it,
and labelled requests are timed by kind.

The server here is a real HTTP/1.1 server on a loopback socket (a thread of
its own) that answers at once except for one long pause, so what is checked
is what the benchmark's ``open_loop_p99_ms`` stands on: latency is taken from
when a request was due, not from when it could leave (no coordinated
omission). Only lower bounds are asserted: a slow machine can only add. The
generator runs in a process of its own, as in the benchmark, because it turns
its garbage collector off meanwhile: here that would move when this process
collects the other tests' garbage.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from helpers.httpkit import serve_posts

REPO = Path(__file__).resolve().parent.parent
# 200 requests/s for 1 s over one connection, and whether gc is on before and after
GENERATE = """
import gc, json, sys
from benchmarks.open_loop import run_open_loop
before = gc.isenabled()
result = run_open_loop(sys.argv[1], None, rate=200, seconds=1.0, connections=1, grace=5.0)
print(json.dumps({**result, "gc_before": before, "gc_after": gc.isenabled()}))
"""

# 100 requests/s for 1 s over 4 connections, "fast" and "slow" bodies in turn, 3 bodies in all
LABELLED = """
import json, sys
from benchmarks.open_loop import run_open_loop
result = run_open_loop(sys.argv[1], [b"fast", b"slow", b"fast"], rate=100, seconds=1.0,
                       connections=4, grace=5.0, labels=["fast", "slow", "fast"])
print(json.dumps(result))
"""

STALL_AT, STALL_SECONDS = 30, 0.3
SLOW_BODY_SECONDS = 0.05
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


class StallingServer:
    """Answers GET requests on keep-alive connections; request STALL_AT waits STALL_SECONDS."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.served = 0
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        pending = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in pending:
                    data = conn.recv(65536)
                    if not data:
                        return
                    pending += data
                _, _, pending = pending.partition(b"\r\n\r\n")
                with self.lock:
                    self.served += 1
                    mine = self.served
                if mine == STALL_AT:
                    time.sleep(STALL_SECONDS)
                conn.sendall(ANSWER)

    def close(self) -> None:
        self.listener.close()


def _generate(script: str, url: str) -> dict:
    """Run a generator script in a process of its own against ``url``; its JSON result."""
    done = subprocess.run([sys.executable, "-c", script, url],
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_server_stall_shows_in_the_tail_and_the_generator_leaves_gc_as_it_was():
    server = StallingServer()
    try:
        result = _generate(GENERATE, f"http://127.0.0.1:{server.port}/")
    finally:
        server.close()
    assert result["gc_before"] and result["gc_after"]
    assert result["errors"] == 0 and result["unfinished"] == 0
    assert result["achieved_rps"] > 0
    # the requests due during the pause waited for it (timed from when they were sent,
    # only the stalled one would be slow): well over 1% of 200 took >= 100 ms
    assert result["p99_ms"] >= 100.0
    assert result["dispatch_lag_max_ms"] >= result["dispatch_lag_p99_ms"] >= 0.0


def test_labels_split_the_latencies_by_kind_and_a_list_that_runs_out_is_counted():
    def answer(headers: dict, body: bytes) -> tuple:
        if body == b"slow":
            time.sleep(SLOW_BODY_SECONDS)
        return 200, b"ok"

    with serve_posts(answer, "/", keep_alive=True) as url:
        result = _generate(LABELLED, url)
    assert result["errors"] == 0 and result["unfinished"] == 0
    # the list is fast, slow, fast, sent over and over: a third of the 100 are slow
    assert result["count_by_label"] == {"fast": 67, "slow": 33}
    assert result["reused"] == 97  # 100 sent from a list of 3
    # every slow one waited for its pause; only a lower bound, a slow machine only adds
    assert result["p50_ms_by_label"]["slow"] >= SLOW_BODY_SECONDS * 1000
    assert result["p99_ms_by_label"]["slow"] >= result["p50_ms_by_label"]["slow"]
