"""Prometheus metrics: requests by route and status, results by kind, latency.

Under ``itemseal serve`` every gunicorn worker writes its samples to files in
``PROMETHEUS_MULTIPROC_DIR`` (set by the server before any worker starts) and
``/metrics`` adds them up, so a scrape sees the whole server whichever worker
answers. Without that variable (tests, a single process) the numbers are this
process's own.
"""

from __future__ import annotations

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
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """The metric objects of one app; ``render`` produces the exposition text."""

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
        self._children: dict[tuple, object] = {}

    def count_result(self, result: str, count: int = 1) -> None:
        child = self._children.get(result)
        if child is None:
            child = self._children[result] = self.results.labels(result)
        child.inc(count)

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        pair = self._children.get(key)
        if pair is None:
            pair = self._children[key] = (
                self.requests.labels(route, method, str(status)),
                self.latency.labels(route),
            )
        pair[0].inc()
        pair[1].observe(seconds)

    def render(self) -> bytes:
        if self.multiprocess:
            registry = CollectorRegistry()
            prom_multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Time every request and count it under its route template (not its raw path)."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    async def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.started = time.perf_counter()

    async def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, ok: bool
    ) -> None:
        started = getattr(req.context, "started", None)
        if started is None:
            return
        route = req.uri_template or "unmatched"
        self._metrics.observe(route, req.method, resp.status_code, time.perf_counter() - started)


def render_response(metrics: Metrics, resp: falcon.Response) -> None:
    resp.data = metrics.render()
    resp.content_type = CONTENT_TYPE_LATEST
