"""Prometheus metrics: requests by route and status, results by kind, latency.

Under ``itemseal serve`` every gunicorn worker writes its samples to files in
``PROMETHEUS_MULTIPROC_DIR`` (set by the server before any worker starts) and
``/metrics`` adds them up, so a scrape sees the whole server whichever worker
answers. Without that variable (tests, a single process) the numbers are this
process's own.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import os
import time

import falcon
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prom_multiprocess

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
STARTED = "itemseal.started"
"""The scope's key for when the app was handed the request (``time.perf_counter``)."""
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """The metric objects of one app; ``render`` produces the exposition text.

    A request adds to plain dicts; ``flush`` hands the sums to prometheus_client
    at most a second later (a timer the first sample after a flush sets, or
    ``render``, or the app's shutdown). Under ``itemseal serve`` each sample
    handed over is a locked write to a shared file, four per check: batching
    them took ~8 us off a check's ~110 us of app CPU (``benchmarks/bench_verify.py``,
    issue 15). So a scrape sees another worker's last second late, never lost.
    """

    FLUSH_SECONDS = 1.0

    def __init__(self) -> None:
        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "itemseal_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.results = Counter(
            "itemseal_verify_results",
            "Codes answered, by result (genuine, already_verified, counterfeit, ...).",
            ["result"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "itemseal_http_request_seconds",
            "Time from request parsed to response ready, by route template.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._bounds = (*LATENCY_BUCKETS, math.inf)
        self._requests: dict[tuple[str, str, int], int] = {}
        self._results: dict[str, int] = {}
        self._latency: dict[str, list] = {}  # route -> [count per bucket..., sum of seconds]
        self._timer: asyncio.TimerHandle | None = None

    def count_result(self, result: str, count: int = 1) -> None:
        self._results[result] = self._results.get(result, 0) + count
        if self._timer is None:
            self._flush_later()

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        self._requests[key] = self._requests.get(key, 0) + 1
        counts = self._latency.get(route)
        if counts is None:
            counts = self._latency[route] = [0] * len(self._bounds) + [0.0]
        counts[bisect.bisect_left(self._bounds, seconds)] += 1
        counts[-1] += seconds
        if self._timer is None:
            self._flush_later()

    def _flush_later(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop (a synchronous caller): nothing to wait for
            self.flush()
            return
        self._timer = loop.call_later(self.FLUSH_SECONDS, self.flush)

    def flush(self) -> None:
        """Hand the samples gathered since the last flush to prometheus_client."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        requests, self._requests = self._requests, {}
        results, self._results = self._results, {}
        latency, self._latency = self._latency, {}
        for (route, method, status), count in requests.items():
            self.requests.labels(route, method, str(status)).inc(count)
        for result, count in results.items():
            self.results.labels(result).inc(count)
        for route, counts in latency.items():
            _add_to_histogram(self.latency.labels(route), counts, self._bounds)

    def render(self) -> bytes:
        self.flush()
        if self.multiprocess:
            registry = CollectorRegistry()
            prom_multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)


def _add_to_histogram(child: Histogram, counts: list, bounds: tuple[float, ...]) -> None:
    """Add gathered bucket counts and their sum to a histogram child, one write each.

    prometheus_client has no public call for this (``observe`` takes one
    sample), so it adds to the child's ``_buckets`` and ``_sum``, the values
    ``observe`` itself writes; ``tests/test_verify_api.py`` checks the
    exposition against the samples. Should a release rename them, each sample
    is observed at its bucket's bound: counts stay exact, the sum approximate.
    """
    buckets, total = getattr(child, "_buckets", None), getattr(child, "_sum", None)
    if buckets is None or total is None or len(buckets) != len(bounds):
        for bound, count in zip(bounds, counts, strict=False):
            for _ in range(count):
                child.observe(min(bound, 2 * LATENCY_BUCKETS[-1]))
        return
    total.inc(counts[-1])
    for bucket, count in zip(buckets, counts, strict=False):
        if count:
            bucket.inc(count)


class MetricsMiddleware:
    """Time every request and count it under its route template (not its raw path).

    The clock starts in ``VerifyApp.__call__`` (``STARTED`` in the scope) rather
    than in a ``process_request``: one coroutine less for falcon to await on
    every request.
    """

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    async def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, ok: bool
    ) -> None:
        started = req.scope.get(STARTED)
        if started is None:
            return
        route = req.uri_template or "unmatched"
        self._metrics.observe(route, req.method, resp.status_code, time.perf_counter() - started)

    async def process_shutdown(self, scope, event) -> None:
        """A worker that stops hands over its last second of samples."""
        self._metrics.flush()


def render_response(metrics: Metrics, resp: falcon.Response) -> None:
    resp.data = metrics.render()
    resp.content_type = CONTENT_TYPE_LATEST
