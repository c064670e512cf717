"""``GET /admin/{tenant}``: the reports as a page, behind a token login.

The token is posted once in a form (with a CSRF token) and exchanged for a
server-side session (``verify_api/admin/dashboard_sessions.py``): the HttpOnly,
SameSite=Strict cookie scoped to the tenant's dashboard path holds a random
session id, which expires, ends at logout (itself a CSRF-checked form) and
ends with the token's revocation. The same checks as the admin API apply: a
token of another tenant gets 404, a role without ``reports.read`` gets 403.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from urllib.parse import parse_qs

import falcon

from codegen.tenants import TenantStore, check_tenant_id
from verify_api.admin import dashboard, roles
from verify_api.admin.dashboard_sessions import SESSION_SECONDS, DashboardSessions, same
from verify_api.admin.reports import Reports
from verify_api.exc import Forbidden, Unauthorized
from verify_api.resources import Threaded, body_of
from verify_api.resources.admin import AdminContext, authorize

COOKIE = "itemseal_admin"
LOGIN_CSRF_COOKIE = "itemseal_admin_login"
ACTION = "reports.read"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self';"
                               " frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}


def _html(resp: falcon.Response, text: str, status: str = falcon.HTTP_200) -> None:
    resp.status = status
    resp.content_type = "text/html; charset=utf-8"
    resp.text = text
    resp.set_headers(SECURITY_HEADERS)


def _cookie(req: falcon.Request, name: str) -> str | None:
    values = req.get_cookie_values(name)
    return values[0] if values else None


def _login_page(req: falcon.Request, resp: falcon.Response, tenant: str, message: str = "",
                status: str = falcon.HTTP_200) -> None:
    """The login form with a fresh double-submit CSRF token (cookie and hidden field)."""
    csrf = secrets.token_urlsafe(24)
    resp.set_cookie(LOGIN_CSRF_COOKIE, csrf, path=f"/admin/{tenant}", http_only=True,
                    same_site="Strict", secure=req.scheme == "https", max_age=3600)
    _html(resp, dashboard.login_page(tenant, message, csrf=csrf), status)


class Dashboard:
    def __init__(self, ctx: AdminContext, sessions: DashboardSessions) -> None:
        self.ctx = ctx
        self._sessions = sessions

    def on_get(self, req: falcon.Request, resp: falcon.Response, tenant: str) -> None:
        check_tenant_id(tenant)  # 404 before its id goes into a page, a cookie or a header
        try:
            info, csrf = self._sessions.check(tenant, _cookie(req, COOKIE))
            if not roles.allowed(info.role, ACTION):
                raise Forbidden(f"the {info.role} role may not do {ACTION}")
        except Unauthorized:
            _login_page(req, resp, tenant)
            return
        reports = Reports(self.ctx.client, tenant, key_store=self.ctx.key_store,
                          clock=self.ctx.clock)
        first, last = reports.span(req.get_param("from"), req.get_param("to"))
        name = TenantStore(self.ctx.client).get(tenant).name
        _html(resp, dashboard.page(
            tenant, name, (first.isoformat(), last.isoformat()), reports.timezone.key,
            reports.checks(first, last, "day"), reports.checks(first, last, "region"),
            reports.counterfeits(first, last), reports.suspicious(limit=20), csrf=csrf,
        ))


class Login:
    def __init__(self, ctx: AdminContext, sessions: DashboardSessions) -> None:
        self.ctx = ctx
        self._sessions = sessions

    def on_post(self, req: falcon.Request, resp: falcon.Response, tenant: str) -> None:
        check_tenant_id(tenant)
        form = parse_qs(body_of(req, 4096).decode("utf-8", "replace"))
        if not same((form.get("csrf") or [None])[0], _cookie(req, LOGIN_CSRF_COOKIE) or "-"):
            _login_page(req, resp, tenant, "the form expired: log in again", falcon.HTTP_403)
            return
        token = (form.get("token") or [""])[0].strip()
        try:
            authorize(self.ctx.tokens, tenant, token, ACTION)
        except Unauthorized as exc:
            _login_page(req, resp, tenant, str(exc), falcon.HTTP_401)
            return
        session_id = self._sessions.open(tenant, token)
        # expired in 1970 and HttpOnly, not falcon's unset_cookie (an Expires one second ago
        # and no HttpOnly): once, under load, Chromium kept that as a cookie scripts could read
        resp.set_cookie(LOGIN_CSRF_COOKIE, "", path=f"/admin/{tenant}", expires=_EPOCH,
                        http_only=True, same_site="Strict", secure=req.scheme == "https")
        resp.set_cookie(COOKIE, session_id, path=f"/admin/{tenant}", http_only=True,
                        same_site="Strict", secure=req.scheme == "https",
                        max_age=SESSION_SECONDS)
        resp.status = falcon.HTTP_303
        resp.location = f"/admin/{tenant}"


class Logout:
    def __init__(self, ctx: AdminContext, sessions: DashboardSessions) -> None:
        self.ctx = ctx
        self._sessions = sessions

    def on_post(self, req: falcon.Request, resp: falcon.Response, tenant: str) -> None:
        check_tenant_id(tenant)
        session_id = _cookie(req, COOKIE)
        form = parse_qs(body_of(req, 4096).decode("utf-8", "replace"))
        try:
            _, csrf = self._sessions.check(tenant, session_id)
        except Unauthorized:
            csrf = None
        if csrf is not None and not same((form.get("csrf") or [None])[0], csrf):
            raise Forbidden("the logout form expired: reload the page")
        self._sessions.close(tenant, session_id)
        resp.unset_cookie(COOKIE, path=f"/admin/{tenant}")
        resp.status = falcon.HTTP_303
        resp.location = f"/admin/{tenant}"


def register(app: falcon.App, ctx: AdminContext) -> None:
    sessions = DashboardSessions(ctx.client, ctx.tokens, clock=ctx.clock)
    app.add_route("/admin/{tenant}", Threaded(Dashboard(ctx, sessions)))
    app.add_route("/admin/{tenant}/login", Threaded(Login(ctx, sessions)))
    app.add_route("/admin/{tenant}/logout", Threaded(Logout(ctx, sessions)))
