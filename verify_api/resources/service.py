"""Operational routes: health, metrics, the OpenAPI document, a bare ping."""

from __future__ import annotations

import hmac

import falcon

from verify_api.check.engine import VerifyEngine
from verify_api.metrics import Metrics, render_response


class HealthResource:
    """``GET /healthz``: 200 when Redis answers PING, 503 (StoreError) when not."""

    def __init__(self, engine: VerifyEngine) -> None:
        self._engine = engine

    async def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        await self._engine.ping()
        resp.media = {"status": "ok"}


class PingResource:
    """``GET /v1/ping``: a constant answer through the same app and middleware.

    The ceiling the verify route is measured against (benchmarks/bench_verify.py).
    """

    async def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"pong": True}


LOOPBACK = ("127.0.0.1", "::1")


class MetricsResource:
    """``GET /metrics``: for the operator's Prometheus, not for the public.

    With ``ITEMSEAL_METRICS_TOKEN`` set it needs ``Authorization: Bearer
    <token>``; without one it answers only clients on this machine (a scraper
    beside the server, or a reverse proxy that must then not route it).
    Anyone else gets the same 404 as an unknown route.
    """

    def __init__(self, metrics: Metrics, token: str | None = None) -> None:
        self._metrics = metrics
        self._token = token

    async def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self._token is not None:
            given = (req.get_header("Authorization") or "").removeprefix("Bearer ").strip()
            allowed = hmac.compare_digest(given.encode(), self._token.encode())
        else:
            allowed = req.remote_addr in LOOPBACK
        if not allowed:
            raise falcon.HTTPNotFound()
        render_response(self._metrics, resp)


class OpenApiResource:
    """``GET /openapi.json``: schemas/openapi.yaml, converted once at start."""

    def __init__(self, document: bytes) -> None:
        self._document = document

    async def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.data = self._document
        resp.content_type = falcon.MEDIA_JSON
