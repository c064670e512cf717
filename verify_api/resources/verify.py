"""Consumer checks, the brand's look-up, and distributors' batch checks."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import falcon
import orjson

from verify_api.admin.auth import authenticate_over
from verify_api.check.engine import VerifyEngine
from verify_api.resources import bodies, json_body, read_body
from verify_api.resources.admin import bearer


class VerifyResource:
    """``POST /v1/tenants/{tenant}/verify``: a consumer's check; records it.

    The route is public, so a declared ``region`` counts only when the
    request also carries a bearer token of the tenant (any role: the brand's
    app, a shop's till); a bad token is 401, no token leaves the region to
    the phone's home region (``points_bridge/regions.py``).
    """

    def __init__(self, engine: VerifyEngine) -> None:
        self._engine = engine

    async def on_post(self, req: falcon.Request, resp: falcon.Response, tenant: str) -> None:
        request = bodies.parse_verify(
            json_body(req.content_type, await read_body(req, bodies.MAX_VERIFY_BODY)))
        if request.region and (token := bearer(req)):
            await authenticate_over(self._engine.link, tenant, token)
            request = replace(request, region_trusted=True)
        answer = await self._engine.verify(tenant, request, req.remote_addr)
        resp.data = orjson.dumps(answer.to_json())  # JSON, falcon's default type; no handler lookup


class CodeResource:
    """``GET /v1/tenants/{tenant}/codes/{code}``: the same answer, nothing recorded."""

    def __init__(self, engine: VerifyEngine) -> None:
        self._engine = engine

    async def on_get(
        self, req: falcon.Request, resp: falcon.Response, tenant: str, code: str
    ) -> None:
        resp.media = (await self._engine.lookup(tenant, code, req.remote_addr)).to_json()


class BatchResource:
    """``POST /v1/tenants/{tenant}/verify:batch``: up to 1,000 codes, one pipeline."""

    def __init__(self, engine: VerifyEngine, max_codes: int = bodies.MAX_BATCH_CODES) -> None:
        self._engine = engine
        self._max_codes = max_codes

    async def on_post(self, req: falcon.Request, resp: falcon.Response, tenant: str) -> None:
        body = json_body(req.content_type, await read_body(req, bodies.MAX_BATCH_BODY))
        batch = bodies.parse_batch(body, self._max_codes)
        found = await self._engine.verify_batch(tenant, batch.codes, req.remote_addr)
        resp.media = {
            "results": [a.to_batch_json(c) for c, a in zip(batch.codes, found, strict=True)],
            "summary": dict(Counter(a.result for a in found)),
        }
