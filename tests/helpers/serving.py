"""``itemseal serve`` for real (gunicorn and its workers) on a free local port."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import requests

from helpers.cli_runner import ITEMSEAL


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(
    env: dict[str, str], log: Path, workers: int = 2, extra: tuple[str, ...] = ()
) -> Iterator[tuple[str, subprocess.Popen]]:
    """Run `itemseal serve` until the block ends; yield its base URL and the gunicorn master.

    ``extra``: more `itemseal serve` options (``--trusted-proxies ...``).

    Its standard error (the app's log) goes to ``log``: a pipe nobody reads
    would fill up and stall the server once the store is down and every
    request logs a warning.
    """
    port = free_port()
    args = [ITEMSEAL, "serve", "--bind", f"127.0.0.1:{port}", "--workers", str(workers), *extra]
    with open(log, "ab") as sink:
        proc = subprocess.Popen(args, env=env, stdout=sink, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if requests.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:  # not listening yet, or busy starting
                pass
            assert time.monotonic() < deadline, "itemseal serve did not come up"
            time.sleep(0.1)
        yield base, proc
    finally:  # quick shutdown: a graceful one waits for idle keep-alive connections
        proc.send_signal(signal.SIGQUIT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
