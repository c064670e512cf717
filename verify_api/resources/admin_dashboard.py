"""``GET /admin/{tenant}``: the reports as a page, behind a token login.

The token is posted once in a form and kept in an HttpOnly, SameSite=Strict
cookie scoped to the tenant's dashboard path, so it never appears in a URL,
a log line or the reach of page scripts. The same checks as the admin API
apply: a token of another tenant gets 404, a role without ``reports.read``
gets 403.
"""

from __future__ import annotations

from urllib.parse import parse_qs

import falcon

from codegen.tenants import TenantStore, check_tenant_id
from verify_api.admin import dashboard
from verify_api.admin.reports import Reports, date_range
from verify_api.exc import Unauthorized
from verify_api.resources import Threaded, body_of
from verify_api.resources.admin import AdminContext, authorize

COOKIE = "itemseal_admin"
ACTION = "reports.read"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}


def _html(resp: falcon.Response, text: str, status: str = falcon.HTTP_200) -> None:
    resp.status = status
    resp.content_type = "text/html; charset=utf-8"
    resp.text = text
    resp.set_headers(SECURITY_HEADERS)


class Dashboard:
    def __init__(self, ctx: AdminContext) -> None:
        self.ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response, tenant: str) -> None:
        check_tenant_id(tenant)  # 404 before its id goes into a page, a cookie or a header
        token = req.get_cookie_values(COOKIE)
        try:
            authorize(self.ctx.tokens, tenant, token[0] if token else None, ACTION)
        except Unauthorized:
            _html(resp, dashboard.login_page(tenant))
            return
        reports = Reports(self.ctx.client, tenant, key_store=self.ctx.key_store,
                          clock=self.ctx.clock)
        first, last = date_range(req.get_param("from"), req.get_param("to"), self.ctx.clock())
        name = TenantStore(self.ctx.client).get(tenant).name
        _html(resp, dashboard.page(
            tenant, name, (first.isoformat(), last.isoformat()),
            reports.checks(first, last, "day"), reports.checks(first, last, "region"),
            reports.counterfeits(first, last), reports.suspicious(limit=20),
        ))


class Login:
    def __init__(self, ctx: AdminContext) -> None:
        self.ctx = ctx

    def on_post(self, req: falcon.Request, resp: falcon.Response, tenant: str) -> None:
        check_tenant_id(tenant)
        form = parse_qs(body_of(req, 4096).decode("utf-8", "replace"))
        token = (form.get("token") or [""])[0].strip()
        try:
            authorize(self.ctx.tokens, tenant, token, ACTION)
        except Unauthorized as exc:
            _html(resp, dashboard.login_page(tenant, str(exc)), falcon.HTTP_401)
            return
        resp.set_cookie(COOKIE, token, path=f"/admin/{tenant}", http_only=True,
                        same_site="Strict", secure=req.scheme == "https", max_age=8 * 3600)
        resp.status = falcon.HTTP_303
        resp.location = f"/admin/{tenant}"


class Logout:
    def __init__(self, ctx: AdminContext) -> None:
        self.ctx = ctx

    def on_post(self, req: falcon.Request, resp: falcon.Response, tenant: str) -> None:
        check_tenant_id(tenant)
        resp.unset_cookie(COOKIE, path=f"/admin/{tenant}")
        resp.status = falcon.HTTP_303
        resp.location = f"/admin/{tenant}"


def register(app: falcon.App, ctx: AdminContext) -> None:
    app.add_route("/admin/{tenant}", Threaded(Dashboard(ctx)))
    app.add_route("/admin/{tenant}/login", Threaded(Login(ctx)))
    app.add_route("/admin/{tenant}/logout", Threaded(Logout(ctx)))
