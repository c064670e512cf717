"""bench_verify.py's closed loops through Debian's wrk: a list that alternates kinds stays a mix.

The server is a real HTTP/1.1 server on a loopback socket that answers one
kind of body at once and the other after a pause, as a repeat check and a
first check differ. Were each wrk thread given every other line of the list,
one thread would send only the fast kind and run far ahead; each thread walks
a run of the list in order instead, so the two kinds are sent in turn and
their counts differ by no more than what is in flight.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from helpers.httpkit import serve_posts

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.wrk_load import run_wrk  # noqa: E402

SLOW_SECONDS = 0.02


def test_each_wrk_thread_sends_the_kinds_of_a_mixed_list_in_turn():
    if shutil.which("wrk") is None:
        pytest.skip("\n" + "#" * 78 + "\n# wrk is not installed: the closed-loop load test is"
                    " SKIPPED.\n# Install it with: sh scripts/ensure-debs.sh wrk\n" + "#" * 78)
    counts: Counter[bytes] = Counter()
    lock = threading.Lock()

    def answer(headers: dict, body: bytes) -> tuple:
        if body == b'"slow"':
            time.sleep(SLOW_SECONDS)
        with lock:
            counts[body] += 1
        return 200, b"ok"

    with serve_posts(answer, "/", keep_alive=True) as url:
        result = run_wrk(url, [b'"fast"', b'"slow"'] * 50, threads=2, connections=4, seconds=1)
    fast, slow = counts[b'"fast"'], counts[b'"slow"']
    assert result["errors"] == 0 and slow > 0
    # in turn in each thread: at most one of each connection's requests unmatched (a thread
    # given every other line would send fast ones only, hundreds to the slow ones' ~100)
    assert abs(fast - slow) <= 4, (fast, slow)
