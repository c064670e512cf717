"""gunicorn settings and hooks for ``itemseal serve`` (loaded with ``-c python:...``)."""

from __future__ import annotations

import os

keepalive = 30  # clients (SMS gateways, load balancers) reuse connections
graceful_timeout = 10


def child_exit(server, worker) -> None:
    """Let /metrics drop the live gauges of a worker that is gone."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
