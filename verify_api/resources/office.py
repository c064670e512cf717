"""The staff back office's plumbing: sessions, CSRF, the role check, rendering, errors.

The office (``/office/{tenant}/...``) is server-rendered HTML (Jinja2 with
autoescape; no script at all), for the people of a brand: managers,
support, operators. Every page is a synchronous responder run in the thread
pool (``resources.Threaded``), like the admin API, and names the same
``roles.py`` action the admin API route for the same work names, so a role
may do exactly the same in both. ``@page(action)`` does, before the
responder runs:

1. the tenant id is checked (404 before it goes into a page or a header);
2. the session cookie is read (``admin/sessions.py``): none or expired ->
   303 to the log-in page; another tenant's session -> 404, the same as an
   unknown tenant, so staff of one brand cannot learn about another;
3. the staff account is read again (a disabled account's session ends at
   once; a role change applies at the next request);
4. the role must allow the action (403);
5. a POST must carry the session's CSRF token in its ``csrf`` field (403).

Every change is written to the tenant's audit log with ``staff:USERNAME``
as the actor. Errors are pages, not JSON: the same status and message as
the API, in the staff member's language.

The Content-Security-Policy allows no script, no frame (``frame-ancestors
'none'``) and one stylesheet, the page's own ``<style>``, by its hash.
"""

from __future__ import annotations

import base64
import email.policy
import functools
import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.parser import BytesParser
from pathlib import Path
from urllib.parse import parse_qs, quote, urlencode

import falcon
import jinja2
import redis

from codegen.exc import ItemsealError
from codegen.keys import KeyStore
from codegen.store.audit import AuditLog
from codegen.tenants import check_tenant_id
from codegen.times import iso
from verify_api.admin import roles
from verify_api.admin.office_text import LANG_NAMES, translator
from verify_api.admin.sessions import LANGUAGES, Session, Sessions
from verify_api.admin.staff import Staff, StaffStore, UnknownStaff
from verify_api.exc import Forbidden, Unauthorized
from verify_api.resources import body_of

OFFICE = "/office"
COOKIE = "itemseal_office"
LOGIN_COOKIE = "itemseal_office_login"
MAX_FORM = 1024 * 1024
TEMPLATES = Path(__file__).with_name("office_templates")
CSS = (TEMPLATES / "office.css").read_text(encoding="utf-8")
CSS_HASH = base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode()
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        f"default-src 'none'; style-src 'sha256-{CSS_HASH}'; img-src 'self' data:;"
        " form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}
NAV = (  # (path under the tenant, label, the action that shows it)
    ("", "Home", None),
    ("/members", "Members", "members.read"),
    ("/feedback", "Feedback", "feedback.read"),
    ("/sms", "SMS", "segments.read"),
    ("/reports", "Reports", "reports.read"),
    ("/audit", "Audit log", "audit.read"),
    ("/staff", "Staff", "staff.read"),
    ("/rules", "Rules", "points.write"),
    ("/products", "Products", "products.read"),
    ("/campaigns", "Campaigns", "campaigns.read"),
    ("/rewards", "Rewards", "rewards.read"),
    ("/care", "Care", "care.read"),
    ("/batches", "Batches", "batches.read"),
)


class LoginNeeded(Unauthorized):
    """No live session: ``@page`` answers with the way to the log-in page (303), not 401."""


@dataclass
class Visit:
    """One request of a logged-in staff member: who, in which tenant, and the form sent."""

    tenant: str
    staff: Staff
    session: Session
    session_id: str
    form: dict[str, str] = field(default_factory=dict)

    @property
    def actor(self) -> str:
        return f"staff:{self.staff.username}"

    def may(self, action: str) -> bool:
        return roles.allowed(self.staff.role, action)


def form_of(req: falcon.Request, limit: int = MAX_FORM) -> dict[str, str]:
    """A form body as one value per name (the first): urlencoded, or multipart when it
    uploads a file (read as UTF-8 text: the void page's list of codes)."""
    body = body_of(req, limit)
    content_type = req.content_type or ""
    if content_type.startswith("multipart/form-data"):
        message = BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
        fields: dict[str, str] = {}
        for part in message.iter_parts() if message.is_multipart() else ():
            name = part.get_param("name", header="content-disposition")
            if name and name not in fields:
                payload = part.get_payload(decode=True) or b""
                fields[str(name)] = payload.decode("utf-8", "replace")
        return fields
    raw = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {name: values[0] for name, values in raw.items()}


class OfficeContext:
    """What every office page needs, built once by ``office_routes.register``."""

    def __init__(self, client: redis.Redis, key_store: KeyStore,
                 clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.key_store = key_store
        self.clock = clock
        self.sessions = Sessions(client, clock=clock)
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATES),
            autoescape=jinja2.select_autoescape(["html"], default=True),
            undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
        )
        self.env.globals["iso"] = iso
        self.jobs: dict[str, threading.Thread] = {}

    def staff(self, tenant: str) -> StaffStore:
        return StaffStore(self.client, tenant, master=self.key_store.master, clock=self.clock)

    def audit(self, visit: Visit, action: str, target: str, before: object = None,
              after: object = None) -> None:
        AuditLog(self.client, visit.tenant, clock=self.clock).record(
            visit.actor, action, target, before, after)

    def begin(self, req: falcon.Request, tenant: str, action: str | None) -> Visit:
        """Steps 2-5 of the module's docstring; return the visit or raise."""
        cookie = req.get_cookie_values(COOKIE)
        session_id = cookie[0] if cookie else None
        session = self.sessions.get(tenant, session_id)  # another tenant's: 404
        if session is None or session_id is None:
            raise LoginNeeded()
        try:
            staff = self.staff(tenant).get(session.username)
        except UnknownStaff:
            staff = None
        if staff is None or staff.disabled:
            self.sessions.close(tenant, session_id)
            raise LoginNeeded()
        visit = Visit(tenant, staff, session, session_id)
        if req.method == "POST":
            visit.form = form_of(req)
            if not session.csrf_ok(visit.form.get("csrf")):
                raise Forbidden("the form has expired: reload the page and try again")
        if action is not None and not visit.may(action):
            raise Forbidden(f"the {staff.role} role may not do {action}")
        return visit

    # -- rendering ---------------------------------------------------------------------
    def render(self, resp: falcon.Response, template: str, *, visit: Visit | None = None,
               tenant: str = "", lang: str = "en", status: str | int = 200, **values) -> None:
        if visit is not None:
            tenant, lang = visit.tenant, visit.session.lang
        t = translator(lang)
        nav = [] if visit is None else [
            (f"{OFFICE}/{tenant}{path}", t(label)) for path, label, action in NAV
            if action is None or visit.may(action)
        ]
        html = self.env.get_template(template).render(
            t=t, css=CSS, lang=lang, langs=LANG_NAMES, tenant=tenant, visit=visit, nav=nav,
            base=f"{OFFICE}/{tenant}", csrf=visit.session.csrf if visit else "",
            qs=_qs, **values)
        resp.status = status if isinstance(status, str) else falcon.code_to_http_status(status)
        resp.content_type = "text/html; charset=utf-8"
        resp.text = html
        resp.set_headers(SECURITY_HEADERS)

    def error(self, resp: falcon.Response, exc: ItemsealError, *, visit: Visit | None,
              tenant: str, lang: str) -> None:
        message = str(exc) if exc.public else exc.public_message
        titles = {403: "Forbidden", 404: "Not found"}
        self.render(resp, "error.html", visit=visit, tenant=tenant, lang=lang,
                    status=exc.status, title=titles.get(exc.status,
                                                          "Something is wrong with the request"),
                    message=message)

    def redirect(self, resp: falcon.Response, location: str) -> None:
        resp.status = falcon.HTTP_303
        resp.location = location
        resp.set_headers(SECURITY_HEADERS)


def _qs(**params: object) -> str:
    """A query string from the values given (empty ones left out), for links in templates."""
    return urlencode({k: v for k, v in params.items() if v not in (None, "")})


def accepted_lang(req: falcon.Request) -> str:
    """The language before log-in: ``?lang=``, else the browser's first choice we have."""
    asked = req.get_param("lang")
    if asked in LANGUAGES:
        return asked
    header = (req.get_header("Accept-Language") or "").lower()
    return "zh" if header.startswith("zh") else "en"


class OfficePage:
    """Base of the office resources.

    ``before_password_change``: whether a staff member whose password a manager
    reset may use this page before choosing their own (only the password page,
    the language and log-out may).
    """

    before_password_change = False

    def __init__(self, ctx: OfficeContext) -> None:
        self.ctx = ctx


def page(action: str | Callable[[dict], str] | None):
    """Decorate an ``on_get``/``on_post``: check, then call it with the ``Visit``.

    ``action`` is a ``roles.py`` action, or a function of the route's
    parameters that names one (one route, several buttons); None lets any
    logged-in staff member in (home, own password, language, log-out).
    """

    def wrap(responder):
        @functools.wraps(responder)
        def respond(self: OfficePage, req, resp, tenant: str, **params) -> None:
            visit = None
            if not tenant and req.method == "GET":  # ``/office/``: the entrance
                self.ctx.redirect(resp, OFFICE)
                return
            try:
                check_tenant_id(tenant)
                name = action(params) if callable(action) else action
                visit = self.ctx.begin(req, tenant, name)
                if visit.staff.must_change and not self.before_password_change:
                    self.ctx.redirect(resp, f"{OFFICE}/{tenant}/password")
                    return
                responder(self, req, resp, visit, **params)
            except LoginNeeded:
                target = f"{OFFICE}/{tenant}/login"
                if req.method == "GET":
                    target += "?" + urlencode({"next": req.relative_uri})
                self.ctx.redirect(resp, target)
            except ItemsealError as exc:
                lang = visit.session.lang if visit else accepted_lang(req)
                self.ctx.error(resp, exc, visit=visit, tenant=quote(tenant, safe=""),
                               lang=lang)

        return respond

    return wrap


def same_tenant_path(tenant: str, target: str | None) -> str:
    """Where to go after log-in: a path of this tenant's office, never another site."""
    home = f"{OFFICE}/{tenant}"
    if target and (target == home or target.startswith(home + "/") or
                   target.startswith(home + "?")) and "//" not in target and "\\" not in target:
        return target
    return home
