"""The admin API's plumbing: token check and role check on every route, errors, routes.

Every admin resource is an ``AdminResource`` naming, per HTTP method, the
``roles.py`` action it performs. ``AdminAuth`` (a falcon middleware) runs
before the responder: it authenticates the bearer token against the
route's tenant (401, or 404 for another tenant's token) and checks the role
(403). Responders only parse, call the same stores the CLI uses, write the
audit entry and answer.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import falcon
import redis

from codegen.batches import BatchError, UnknownBatch
from codegen.exc import ProductError, ProductExists, UnknownProduct
from codegen.keys import KeyStore
from points_bridge import exc as pexc
from points_bridge.draws import DrawClosed, UnknownDraw
from points_bridge.sms_campaigns import UnknownSmsCampaign
from verify_api import roles
from verify_api.admin_bodies import MAX_ADMIN_BODY, Fields
from verify_api.audit import AuditLog
from verify_api.auth import Forbidden, TokenInfo, TokenStore
from verify_api.resources import read_body

ADMIN = "/v1/admin/tenants/{tenant}"


@dataclass(frozen=True)
class AdminContext:
    """What every admin resource needs, passed once by ``register``."""

    client: redis.Redis
    key_store: KeyStore
    tokens: TokenStore
    clock: Callable[[], float] = time.time

    def audit(
        self, req: falcon.Request, tenant: str, action: str, target: str,
        before: object = None, after: object = None,
    ) -> None:
        actor = req.context.token.token_id
        AuditLog(self.client, tenant, clock=self.clock).record(actor, action, target, before, after)


class AdminResource:
    """Base of the admin resources; ``actions`` maps a method to a roles.py action."""

    actions: dict[str, str] = {}

    def __init__(self, ctx: AdminContext) -> None:
        self.ctx = ctx


def bearer(req: falcon.Request) -> str | None:
    header = req.get_header("Authorization") or ""
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def authorize(tokens: TokenStore, tenant: str, token: str | None, action: str) -> TokenInfo:
    """Authenticate ``token`` for ``tenant`` and check its role may do ``action``."""
    info = tokens.authenticate(tenant, token)
    if not roles.allowed(info.role, action):
        raise Forbidden(f"the {info.role} role may not do {action}")
    return info


class AdminAuth:
    """Middleware: no admin responder runs without a token of its tenant and a role for it."""

    def __init__(self, tokens: TokenStore) -> None:
        self._tokens = tokens

    def process_resource(self, req, resp, resource, params) -> None:
        if not isinstance(resource, AdminResource):
            return
        action = resource.actions.get(req.method)
        if action is None:  # falcon answers 405 after us; still no anonymous answers
            self._tokens.authenticate(params.get("tenant", ""), bearer(req))
            return
        req.context.token = authorize(self._tokens, params["tenant"], bearer(req), action)


def fields(req: falcon.Request) -> Fields:
    return Fields.parse(read_body(req, MAX_ADMIN_BODY))


def plain(record: object) -> object:
    """A stored record as JSON-ready values (datetimes and sets as the stores dump them)."""
    return json.loads(json.dumps(record, default=str))


# -- domain errors -> HTTP ------------------------------------------------------------------
NOT_FOUND = (UnknownProduct, UnknownBatch, pexc.UnknownMember, pexc.UnknownCampaign,
             pexc.UnknownTier, UnknownSmsCampaign, UnknownDraw)
CONFLICT = (ProductExists, BatchError, pexc.CampaignExists, pexc.PhoneTaken,
            pexc.IdempotencyConflict, pexc.MemberInactive, pexc.InsufficientPoints, DrawClosed)
UNAVAILABLE = (pexc.Contended,)


def status_of(ex: Exception) -> tuple[int, str]:
    """The HTTP status and error code of an expected failure of a store."""
    if isinstance(ex, NOT_FOUND):
        return 404, "not_found"
    if isinstance(ex, CONFLICT):
        return 409, "conflict"
    if isinstance(ex, UNAVAILABLE):
        return 503, "contended"
    return 422, "invalid"


def _domain_error(req: falcon.Request, resp: falcon.Response, ex: Exception, params) -> None:
    status, code = status_of(ex)
    resp.status = status
    resp.media = {"error": {"code": code, "message": str(ex)}}


def register(app: falcon.App, ctx: AdminContext) -> None:
    """Add the admin routes, their middleware and the domain error mapping to ``app``."""
    from verify_api.resources import (
        admin_batches,
        admin_care,
        admin_catalog,
        admin_members,
        admin_reports,
    )

    app.add_middleware(AdminAuth(ctx.tokens))
    for module in (admin_catalog, admin_batches, admin_members, admin_reports, admin_care):
        for path, resource in module.routes(ctx):
            app.add_route(ADMIN + path, resource)
    for error in (ProductError, BatchError, pexc.PointsError):
        app.add_error_handler(error, _domain_error)
