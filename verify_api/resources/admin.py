"""The admin API's plumbing: the base resource, token check and role check on every route.

Every admin resource is an ``AdminResource`` naming, per HTTP method, the
``roles.py`` action it performs. ``AdminAuth`` (a falcon middleware) runs
before the responder: it authenticates the bearer token against the
route's tenant (401, or 404 for another tenant's token) and checks the role
(403). Responders only parse, call the same stores the CLI uses, write the
audit entry and answer.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import falcon
import redis

from codegen.keys import KeyStore
from codegen.store.audit import AuditLog
from verify_api.admin import roles
from verify_api.admin.auth import TokenInfo, TokenStore
from verify_api.exc import Forbidden
from verify_api.resources import body_of
from verify_api.resources.admin_bodies import MAX_ADMIN_BODY, Fields

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
    """Middleware: no admin responder runs without a token of its tenant and a role for it.

    The token store is synchronous, like every admin route: it runs in the
    thread pool, never on the event loop.
    """

    def __init__(self, tokens: TokenStore) -> None:
        self._tokens = tokens

    async def process_resource(self, req, resp, resource, params) -> None:
        resource = getattr(resource, "resource", resource)  # under admin_routes.threaded
        if not isinstance(resource, AdminResource):
            return
        req.context.token = await asyncio.to_thread(self._check, req, resource, params)

    def _check(self, req, resource: AdminResource, params) -> TokenInfo | None:
        action = resource.actions.get(req.method)
        if action is None:  # falcon answers 405 after us; still no anonymous answers
            self._tokens.authenticate(params.get("tenant", ""), bearer(req))
            return None
        return authorize(self._tokens, params["tenant"], bearer(req), action)


def fields(req: falcon.Request) -> Fields:
    return Fields.parse(body_of(req, MAX_ADMIN_BODY))


def plain(record: object) -> object:
    """A stored record as JSON-ready values (datetimes and sets as the stores dump them)."""
    return json.loads(json.dumps(record, default=str))
