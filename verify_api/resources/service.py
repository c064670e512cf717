"""Operational routes: health, metrics, the OpenAPI document, a bare ping."""

from __future__ import annotations

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


class MetricsResource:
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    async def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        render_response(self._metrics, resp)


class OpenApiResource:
    """``GET /openapi.json``: schemas/openapi.yaml, converted once at start."""

    def __init__(self, document: bytes) -> None:
        self._document = document

    async def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.data = self._document
        resp.content_type = falcon.MEDIA_JSON
