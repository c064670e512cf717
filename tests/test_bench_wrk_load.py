"""bench_verify.py's closed loops through Debian's wrk: a list that alternates kinds stays a mix.

The server is a real HTTP/1.1 server on a loopback socket that answers one
kind of body at once and the other after a pause, as a repeat check and a
first check differ. Were each wrk thread given every other line of the list,
one thread would send only the fast kind and run far ahead; each thread walks
a run of the list in order instead, so the two kinds are sent in turn and
their counts differ by no more than what is in flight.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.wrk_load import run_wrk  # noqa: E402

SLOW_SECONDS = 0.02
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


class CountingServer:
    """Counts the bodies it answers, by body; a ``slow`` one is answered after a pause."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.counts: dict[bytes, int] = {}
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
        with conn, contextlib.suppress(OSError):  # wrk resets its connections when it stops
            self._answer(conn)

    def _answer(self, conn: socket.socket) -> None:
        pending = b""
        while True:
            while b"\r\n\r\n" not in pending:
                data = conn.recv(65536)
                if not data:
                    return
                pending += data
            head, _, pending = pending.partition(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.lower().split(b"\r\n")
                           if line.startswith(b"content-length:")), 0)
            while len(pending) < length:
                data = conn.recv(65536)
                if not data:
                    return
                pending += data
            found, pending = pending[:length], pending[length:]
            if found == b'"slow"':
                time.sleep(SLOW_SECONDS)
            with self.lock:
                self.counts[found] = self.counts.get(found, 0) + 1
            conn.sendall(ANSWER)

    def close(self) -> None:
        self.listener.close()


def test_each_wrk_thread_sends_the_kinds_of_a_mixed_list_in_turn():
    if shutil.which("wrk") is None:
        pytest.skip("\n" + "#" * 78 + "\n# wrk is not installed: the closed-loop load test is"
                    " SKIPPED.\n# Install it with: sh scripts/ensure-debs.sh wrk\n" + "#" * 78)
    server = CountingServer()
    try:
        result = run_wrk(f"http://127.0.0.1:{server.port}/", [b'"fast"', b'"slow"'] * 50,
                         threads=2, connections=4, seconds=1)
    finally:
        server.close()
    fast, slow = server.counts.get(b'"fast"', 0), server.counts.get(b'"slow"', 0)
    assert result["errors"] == 0 and slow > 0
    # in turn in each thread: at most one of each connection's requests unmatched (a thread
    # given every other line would send fast ones only, hundreds to the slow ones' ~100)
    assert abs(fast - slow) <= 4, (fast, slow)
