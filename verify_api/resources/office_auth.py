"""The office's doors: choose a tenant, log in, log out, language, own password, home.

Log-in is ``POST /office/{tenant}/login`` with ``username``, ``password``
and, when the account has a second factor, ``totp``: the tenant is in the
path, so the session cookie (``ios.TENANT.SECRET``, HttpOnly,
SameSite=Strict, Secure over https, path ``/office``) belongs to one
tenant. The log-in form is protected from cross-site posts by a nonce in a
short-lived cookie that the form must repeat (there is no session yet).
Failed log-ins are counted per client address too (``admin/login_limit.py``):
past the limit the form answers 429 with ``Retry-After`` before any password
is checked, and the window's first refusal is written to the audit log.
"""

from __future__ import annotations

import secrets

from markupsafe import Markup

from codegen.exc import ItemsealError
from codegen.store.audit import AuditLog
from codegen.tenants import TenantStore, check_tenant_id
from verify_api.admin import dashboard
from verify_api.admin.login_limit import LoginLimit, LoginsLimited, subject_of
from verify_api.admin.reports import Reports
from verify_api.admin.sessions import LANGUAGES, MAX_SECONDS
from verify_api.admin.staff import LoginRefused
from verify_api.channels.feedback import FeedbackInbox
from verify_api.exc import InvalidField
from verify_api.resources.office import (
    COOKIE,
    LOGIN_COOKIE,
    OFFICE,
    OfficePage,
    Visit,
    accepted_lang,
    form_of,
    page,
    same_tenant_path,
)


class Entrance(OfficePage):
    """``GET /office``: the one address to remember; asks for the tenant, then goes there."""

    def on_get(self, req, resp) -> None:
        lang = accepted_lang(req)
        tenant = (req.get_param("tenant") or "").strip()
        if tenant:
            try:
                check_tenant_id(tenant)
                TenantStore(self.ctx.client).get(tenant)
            except ItemsealError:
                self.ctx.render(resp, "entrance.html", lang=lang, status=404, typed=tenant,
                                problem="Not found")
                return
            self.ctx.redirect(resp, f"{OFFICE}/{tenant}/login")
            return
        self.ctx.render(resp, "entrance.html", lang=lang, typed="", problem="")


class Login(OfficePage):
    def _form(self, req, resp, tenant: str, *, status: int = 200, username: str = "",
              errors: dict | None = None, lang: str | None = None,
              next_: str | None = None) -> None:
        nonce = secrets.token_urlsafe(24)
        resp.set_cookie(LOGIN_COOKIE, nonce, path=f"{OFFICE}/{tenant}/login", http_only=True,
                        same_site="Strict", secure=req.scheme == "https", max_age=3600)
        self.ctx.render(resp, "login.html", tenant=tenant, lang=lang or accepted_lang(req),
                        status=status, username=username, errors=errors or {}, nonce=nonce,
                        next=next_ if next_ is not None else req.get_param("next") or "",
                        name=self._name(tenant))

    def _name(self, tenant: str) -> str:
        return TenantStore(self.ctx.client).get(tenant).name

    def on_get(self, req, resp, tenant: str) -> None:
        try:
            check_tenant_id(tenant)
            self._name(tenant)
        except ItemsealError as exc:
            self.ctx.error(resp, exc, visit=None, tenant="", lang=accepted_lang(req))
            return
        self._form(req, resp, tenant)

    def on_post(self, req, resp, tenant: str) -> None:
        try:
            check_tenant_id(tenant)
            self._name(tenant)
            form = form_of(req, 8192)
        except ItemsealError as exc:
            self.ctx.error(resp, exc, visit=None, tenant="", lang=accepted_lang(req))
            return
        lang = form.get("lang") if form.get("lang") in LANGUAGES else accepted_lang(req)
        username = form.get("username", "").strip()
        cookie = req.get_cookie_values(LOGIN_COOKIE)
        if not cookie or not secrets.compare_digest(cookie[0].encode(),
                                                     form.get("nonce", "").encode()):
            self._form(req, resp, tenant, status=403, username=username, lang=lang,
                       errors={"form": "the form has expired: try again"},
                       next_=form.get("next", ""))
            return
        address = req.remote_addr or "-"  # behind trusted proxies: the client they saw
        limit = LoginLimit(self.ctx.client, tenant, clock=self.ctx.clock)
        try:
            limit.check(address)
            staff = self.ctx.staff(tenant).authenticate(
                username, form.get("password", ""), form.get("totp") or None)
        except LoginsLimited as exc:
            if exc.first:
                AuditLog(self.ctx.client, tenant, clock=self.ctx.clock).record(
                    f"ip:{subject_of(address)}", "staff.login.limited", "office/login", None,
                    {"username": username[:64], "retry_after": exc.retry_after,
                     "failures": limit.max_failures, "window": limit.window_seconds})
            self._form(req, resp, tenant, status=429, username=username, lang=lang,
                       errors={"form": str(exc)}, next_=form.get("next", ""))
            resp.set_headers(exc.headers())
            return
        except LoginRefused as exc:
            limit.fail(address)
            self._form(req, resp, tenant, status=401, username=username, lang=lang,
                       errors={exc.field: str(exc)}, next_=form.get("next", ""))
            return
        session_id, _ = self.ctx.sessions.open(tenant, staff.username, lang)
        resp.unset_cookie(LOGIN_COOKIE, path=f"{OFFICE}/{tenant}/login")
        resp.set_cookie(COOKIE, session_id, path=OFFICE, http_only=True, same_site="Strict",
                        secure=req.scheme == "https", max_age=MAX_SECONDS)
        target = same_tenant_path(tenant, form.get("next"))
        if staff.must_change:
            target = f"{OFFICE}/{tenant}/password"
        self.ctx.redirect(resp, target)


class Logout(OfficePage):
    before_password_change = True

    @page(None)
    def on_post(self, req, resp, visit: Visit) -> None:
        self.ctx.sessions.close(visit.tenant, visit.session_id)
        resp.unset_cookie(COOKIE, path=OFFICE)
        self.ctx.redirect(resp, f"{OFFICE}/{visit.tenant}/login")


class Language(OfficePage):
    """``POST .../lang`` ``lang=zh|en``: the session's language, then back where it was."""

    before_password_change = True

    @page(None)
    def on_post(self, req, resp, visit: Visit) -> None:
        self.ctx.sessions.set_lang(visit.session_id, visit.session, visit.form.get("lang", ""))
        self.ctx.redirect(resp, same_tenant_path(visit.tenant, visit.form.get("next")))


class Password(OfficePage):
    """Every staff member's own password: the current one, then the new one twice."""

    before_password_change = True

    @page(None)
    def on_get(self, req, resp, visit: Visit) -> None:
        self.ctx.render(resp, "password.html", visit=visit, errors={}, done=False)

    @page(None)
    def on_post(self, req, resp, visit: Visit) -> None:
        form = visit.form
        errors = {}
        if form.get("new_password", "") != form.get("repeat", ""):
            errors["repeat"] = "the two new passwords differ"
        else:
            try:
                self.ctx.staff(visit.tenant).change_password(
                    visit.staff.username, form.get("old_password", ""),
                    form.get("new_password", ""))
            except LoginRefused as exc:
                errors[exc.field] = str(exc)
            except InvalidField as exc:
                errors["new_password"] = str(exc)
        if errors:
            self.ctx.render(resp, "password.html", visit=visit, errors=errors, done=False,
                            status=422)
            return
        self.ctx.audit(visit, "staff.password", f"staff/{visit.staff.username}")
        self.ctx.render(resp, "password.html", visit=visit, errors={}, done=True)


class TwoStep(OfficePage):
    """``GET``/``POST .../totp``: one's own second factor. Turning it on or off asks for the
    password; the otpauth:// URI is shown once, to add to an authenticator app."""

    @page(None)
    def on_get(self, req, resp, visit: Visit) -> None:
        self.ctx.render(resp, "totp.html", visit=visit, errors={}, uri="")

    @page(None)
    def on_post(self, req, resp, visit: Visit) -> None:
        store = self.ctx.staff(visit.tenant)
        turn = visit.form.get("turn", "")
        try:
            if turn not in ("on", "off"):
                raise InvalidField("turn", "turn it on or off")
            store.authenticate(visit.staff.username, visit.form.get("password", ""),
                               visit.form.get("totp") or None)
        except (LoginRefused, InvalidField) as exc:
            field = getattr(exc, "field", "password")
            self.ctx.render(resp, "totp.html", visit=visit, errors={field: str(exc)}, uri="",
                            status=exc.status)
            return
        uri = ""
        if turn == "on":
            _, uri = store.enable_totp(visit.staff.username)
        else:
            store.disable_totp(visit.staff.username)
        self.ctx.audit(visit, f"staff.totp.{turn}", f"staff/{visit.staff.username}")
        visit.staff = store.get(visit.staff.username)
        self.ctx.render(resp, "totp.html", visit=visit, errors={}, uri=uri)


class Home(OfficePage):
    """The office's first page: today's dashboard (charts, suspicious codes) for managers,
    the member search and the open feedback for support, the batches for operators."""

    @page(None)
    def on_get(self, req, resp, visit: Visit) -> None:
        charts = None
        if visit.may("reports.read"):
            charts = self._charts(req, visit)
        open_feedback = None
        if visit.may("feedback.read"):
            open_feedback = len(FeedbackInbox(self.ctx.client, visit.tenant).list(100, "open"))
        self.ctx.render(resp, "home.html", visit=visit, charts=charts,
                        open_feedback=open_feedback,
                        name=TenantStore(self.ctx.client).get(visit.tenant).name)

    def _charts(self, req, visit: Visit) -> dict:
        reports = Reports(self.ctx.client, visit.tenant, key_store=self.ctx.key_store,
                          clock=self.ctx.clock)
        first, last = reports.span(req.get_param("from"), req.get_param("to"))
        by_day = reports.checks(first, last, "day")
        days = [(r["day"], r["checks"]) for r in by_day.records()]
        results = [(n, sum(r[n] for r in by_day.records())) for n in by_day.columns[2:]]
        return {
            "span": (first.isoformat(), last.isoformat()),
            "zone": reports.timezone.key,
            "checks": Markup(dashboard.column_chart(days, chart_id="chart-checks",
                                                    title="checks per day")),
            "results": Markup(dashboard.bar_chart(results, chart_id="chart-results",
                                                  title="checks by result")),
            "suspicious": Markup(dashboard.html_table(
                reports.suspicious(limit=10), "suspicious",
                ("code", "sku", "checks", "phones", "regions", "risk", "score"))),
        }


def routes(ctx) -> list[tuple[str, object]]:
    return [
        ("", Entrance(ctx)),
        ("/{tenant}", Home(ctx)),
        ("/{tenant}/login", Login(ctx)),
        ("/{tenant}/logout", Logout(ctx)),
        ("/{tenant}/lang", Language(ctx)),
        ("/{tenant}/password", Password(ctx)),
        ("/{tenant}/totp", TwoStep(ctx)),
    ]
