"""gunicorn settings and hooks for ``itemseal serve`` (loaded with ``-c python:...``)."""

from __future__ import annotations

import os

keepalive = 30  # clients (SMS gateways, load balancers) reuse connections
graceful_timeout = 10
# gunicorn's most: a code of 512 characters (the spec's limit) percent-encoded as 4-byte UTF-8
# makes a request line of about 6,200 bytes, which the default 4,094 refuses with a 414.
limit_request_line = 8190


def child_exit(server, worker) -> None:
    """Let /metrics drop the live gauges of a worker that is gone."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
