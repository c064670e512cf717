"""``/m/{tenant}``: the member's own page (HTML forms, no JavaScript).

Synchronous, served from the thread pool (``resources.Threaded``) like the
delivery receipts: it drives the stores the CLI uses (members, ledger,
rewards, sign-in codes), and a member looking at their points is not the
hot path a product check is.

* ``GET /m/{t}`` — signed in (the ``itemseal_member`` cookie): the home
  page; else the sign-in form. ``?lang=en|zh`` picks the language
  (default: the tenant's channel language).
* ``POST /m/{t}/code`` — ``phone``: queue a sign-in code by SMS.
* ``POST /m/{t}/login`` — ``phone``, ``code``: sign in (303 to the page).
* ``POST /m/{t}/redeem`` — ``item``, ``key``: redeem (303 to the page,
  which says what was redeemed); the key is fixed when the page is drawn,
  so a second submit of the same form redeems nothing more.
* ``POST /m/{t}/logout``.

Every form carries a CSRF token bound to the tenant and a ``SameSite=Strict``
nonce cookie (``channels/csrf.py``).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from urllib.parse import parse_qsl, quote

import falcon
import redis

from codegen.exc import CodegenError, ItemsealError
from codegen.keys import KeyStore
from points_bridge.exc import BadPhone, InsufficientPoints, OutOfStock, PointsError
from points_bridge.ledger import Ledger
from points_bridge.members import LOTS, MemberStore, member_lots
from points_bridge.rewards import RewardStore
from points_bridge.sms.signin import CODE_SECONDS, Signin, SigninLimited, SigninRefused
from verify_api.channels import csrf
from verify_api.channels import member_page as mp
from verify_api.channels.config import ChannelConfig, ChannelStore
from verify_api.channels.templates import LANGUAGES
from verify_api.exc import RequestError
from verify_api.resources import body_of

MAX_FORM = 4096
CSRF_SUBJECT = "member-page"
HISTORY = 20


def _html(resp: falcon.Response, text: str, status: int = 200) -> None:
    resp.status = status
    resp.text = text
    resp.content_type = "text/html; charset=utf-8"
    resp.set_header("Cache-Control", "no-store")
    resp.set_header("X-Content-Type-Options", "nosniff")
    resp.set_header("Referrer-Policy", "no-referrer")
    resp.set_header(
        "Content-Security-Policy",
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self';"
        " frame-ancestors 'none'; base-uri 'none'",
    )


def _form(req: falcon.Request) -> dict[str, str]:
    try:
        text = body_of(req, MAX_FORM).decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError("the form is not UTF-8") from None
    return dict(parse_qsl(text, keep_blank_values=True))


class MemberPage:
    """All of ``/m/{tenant}``; ``action`` is the path's last part ('' for the page)."""

    def __init__(self, client: redis.Redis, key_store: KeyStore, channels: ChannelStore,
                 clock: Callable[[], float] = time.time) -> None:
        self._client = client
        self._key_store = key_store
        self._channels = channels
        self._clock = clock
        self._csrf = csrf.secret_from(key_store.master)
        self._session = mp.session_secret(key_store.master)

    # -- plumbing ---------------------------------------------------------------------------
    def _config(self, resp: falcon.Response, tenant: str) -> ChannelConfig | None:
        try:
            return self._channels.get(tenant)
        except CodegenError:
            _html(resp, mp.signin_page(tenant, tenant, "zh", "", error="unknown"), 404)
            return None

    def _language(self, req: falcon.Request, config: ChannelConfig,
                  form: dict[str, str] | None = None) -> str:
        asked = (form or {}).get("lang") or req.get_param("lang")
        return asked if asked in LANGUAGES else config.language

    def _nonce(self, req: falcon.Request, resp: falcon.Response) -> str:
        nonce = req.cookies.get(csrf.COOKIE) or secrets.token_urlsafe(18)
        resp.set_cookie(csrf.COOKIE, nonce, max_age=csrf.MAX_AGE, path="/m/",
                        secure=req.scheme == "https", http_only=True, same_site="Strict")
        return nonce

    def _token(self, tenant: str, nonce: str) -> str:
        return csrf.make_token(self._csrf, tenant, CSRF_SUBJECT, nonce, int(self._clock()))

    def _csrf_ok(self, req: falcon.Request, tenant: str, form: dict[str, str]) -> bool:
        return csrf.check_token(self._csrf, tenant, CSRF_SUBJECT, req.cookies.get(csrf.COOKIE),
                                form.get("csrf"), int(self._clock()))

    def _card(self, req: falcon.Request, tenant: str) -> str | None:
        return mp.session_card(self._session, tenant, req.cookies.get(mp.SESSION_COOKIE),
                               int(self._clock()))

    def _signin(self, req, resp, config: ChannelConfig, language: str, status: int = 200,
                **kw) -> None:
        token = self._token(config.tenant, self._nonce(req, resp))
        _html(resp, mp.signin_page(config.tenant, config.name, language, token,
                                   minutes=CODE_SECONDS // 60, **kw), status)

    @staticmethod
    def _redirect(resp: falcon.Response, tenant: str, language: str, extra: str = "") -> None:
        """303 to the page (set here, not raised, so the cookies set before stay)."""
        resp.status = falcon.HTTP_303
        resp.location = f"/m/{quote(tenant, safe='')}?lang={language}{extra}"

    # -- GET ------------------------------------------------------------------------------
    def on_get(self, req: falcon.Request, resp: falcon.Response, tenant: str) -> None:
        config = self._config(resp, tenant)
        if config is None:
            return
        language = self._language(req, config)
        card = self._card(req, tenant)
        if card is None:
            self._signin(req, resp, config, language)
            return
        self._home(req, resp, config, language, card, done=req.get_param("done"))

    def _home(self, req, resp, config: ChannelConfig, language: str, card: str, *,
              done: str | None = None, error: str = "", status: int = 200) -> None:
        tenant = config.tenant
        members = MemberStore(self._client, tenant, clock=self._clock)
        member = members.get(card)
        if member is None:
            resp.unset_cookie(mp.SESSION_COOKIE, path="/m/")
            self._signin(req, resp, config, language)
            return
        now = int(self._clock())
        settings = members.settings()
        rewards = RewardStore(self._client, tenant, key_store=self._key_store, clock=self._clock)
        rows = [mp.RewardRow(r.item, r.label(language), r.points, stock,
                             mp.why_not_text(language, reason, stock, r.points - member.balance))
                for r, stock, reason in rewards.affordable(member, settings, now)]
        labels = {r.item: r.label(language) for r, _, _ in rewards.affordable(member, settings,
                                                                               now)}
        coupons = [(c.code, labels.get(c.item, c.name), c.state, c.expires_at)
                   for c in rewards.coupons(card)]
        pipe = self._client.pipeline(transaction=False)
        pipe.hget(members.keys.member(card), LOTS)
        pipe.lrange(members.keys.lots(card), 0, -1)
        lots = member_lots(*pipe.execute())[:5]
        expiring = [(at, n) for at, n in lots if at > now and n > 0]
        history = [(e.at, e.kind, e.delta, e.balance, e.fields.get("item", ""))
                   for e in reversed(Ledger(self._client, tenant).history(card, HISTORY))]
        note = ""
        if done:
            try:
                found = rewards.redemption(done)
            except PointsError:
                found = None
            if found is not None and found.card == card:
                note = mp.Notice(labels.get(found.item, found.name), found.points,
                                 found.coupon).text(language)
        token = self._token(tenant, self._nonce(req, resp))
        page = mp.HomeInput(
            tenant, config.name, language, token, card, member.balance,
            RewardStore._tier(member, settings, now), expiring, rows, coupons, history,
            note=note, error=error, redeem_key=secrets.token_urlsafe(9))
        _html(resp, mp.home_page(page), status)

    # -- POST -----------------------------------------------------------------------------
    def _signin_form(self, req: falcon.Request, resp: falcon.Response, tenant: str):
        """The sign-in form's config, fields, language and phone; None once answered (an
        unknown tenant, or a form whose CSRF token has expired)."""
        config = self._config(resp, tenant)
        if config is None:
            return None
        form = _form(req)
        language = self._language(req, config, form)
        phone = form.get("phone", "").strip()
        if not self._csrf_ok(req, tenant, form):
            self._signin(req, resp, config, language, 403, phone=phone, error="expired")
            return None
        return config, form, language, phone

    def on_post_code(self, req: falcon.Request, resp: falcon.Response, tenant: str) -> None:
        posted = self._signin_form(req, resp, tenant)
        if posted is None:
            return
        config, _, language, phone = posted
        try:
            Signin(self._client, tenant, clock=self._clock).send(
                phone, req.remote_addr or "-", language)
        except BadPhone:
            self._signin(req, resp, config, language, 422, phone=phone, error="phone")
            return
        except SigninLimited as exc:
            resp.set_header("Retry-After", str(exc.retry_after))
            self._signin(req, resp, config, language, 429, phone=phone, sent=True, error="busy")
            return
        self._signin(req, resp, config, language, phone=phone, sent=True)

    def on_post_login(self, req: falcon.Request, resp: falcon.Response, tenant: str) -> None:
        posted = self._signin_form(req, resp, tenant)
        if posted is None:
            return
        config, form, language, phone = posted
        try:
            member = Signin(self._client, tenant, clock=self._clock).check(
                phone, form.get("code", ""))
        except BadPhone:
            self._signin(req, resp, config, language, 422, phone=phone, error="phone")
            return
        except (SigninRefused, PointsError):
            self._signin(req, resp, config, language, 401, phone=phone, sent=True,
                         error="code")
            return
        resp.set_cookie(mp.SESSION_COOKIE,
                        mp.session_cookie(self._session, tenant, member.card,
                                          int(self._clock())),
                        max_age=mp.SESSION_SECONDS, path="/m/", secure=req.scheme == "https",
                        http_only=True, same_site="Strict")
        self._redirect(resp, tenant, language)

    def on_post_redeem(self, req: falcon.Request, resp: falcon.Response, tenant: str) -> None:
        config = self._config(resp, tenant)
        if config is None:
            return
        form = _form(req)
        language = self._language(req, config, form)
        card = self._card(req, tenant)
        if card is None or not self._csrf_ok(req, tenant, form):
            self._signin(req, resp, config, language, 403, error="expired")
            return
        rewards = RewardStore(self._client, tenant, key_store=self._key_store, clock=self._clock)
        try:
            done = rewards.redeem(card, form.get("item", ""), key=form.get("key") or None,
                                  channel="web")
        except ItemsealError as exc:
            t = mp.TEXT[language]
            if isinstance(exc, OutOfStock):
                why = t["why_stock"]
            elif isinstance(exc, InsufficientPoints):
                why = t["why_points"].format(n=exc.asked - exc.balance)
            else:
                why = str(exc)
            reason = t["error_redeem"].format(reason=why)
            self._home(req, resp, config, language, card, error=reason, status=exc.status)
            return
        self._redirect(resp, tenant, language, f"&done={done.redemption_id}")

    def on_post_logout(self, req: falcon.Request, resp: falcon.Response, tenant: str) -> None:
        resp.unset_cookie(mp.SESSION_COOKIE, path="/m/")
        config = self._config(resp, tenant)
        if config is None:
            return
        self._redirect(resp, tenant, self._language(req, config, _form(req)))
