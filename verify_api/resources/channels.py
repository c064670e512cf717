"""Consumer channels over HTTP: SMS gateway webhooks, the keypad, the verify page.

The verify page answers two kinds of URL: itemseal's own QR route
``/t/{tenant}/v/{code}``, and the GS1 Digital Link printed on GTIN products,
``/01/{gtin}/[10/{lot}/]21/{serial}``, which names no tenant: the tenant that
answers it is configured per deployment (``ITEMSEAL_GS1_TENANTS`` or ``itemseal
serve --gs1-tenant``: one tenant, or ``HOST=TENANT`` pairs by the host the
label's URL names). The link's GTIN must be the code's product's
(``VerifyEngine``), so a genuine serial under another product is ``counterfeit``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from urllib.parse import parse_qsl, quote

import falcon
import redis

from codegen.exc import CodegenError
from codegen.tenants import check_tenant_id
from points_bridge.exc import BadPhone
from verify_api.channels import csrf, gateways, ivr, signatures, web
from verify_api.channels.config import TWIML, ChannelConfig, ChannelStore
from verify_api.channels.sms import SmsService, check_code
from verify_api.check import answers
from verify_api.check.engine import CheckRequest, VerifyEngine
from verify_api.check.inputs import extract_code
from verify_api.exc import BadSignature, InvalidField, RateLimited, RequestError, SettingError
from verify_api.resources import body_of, form_codec, json_body, read_body
from verify_api.resources.bodies import load_object

MAX_FORM = 16 * 1024
MAX_JSON = 256 * 1024
TWIML_TYPE = "application/xml; charset=utf-8"
GS1_TENANTS_ENV = "ITEMSEAL_GS1_TENANTS"
ALIYUN_OK = {"code": 0, "msg": "接收成功"}  # Aliyun checks only that "code" is a number
TENCENT_OK = {"result": 0, "errmsg": "OK"}


def gs1_tenant_map(text: str) -> tuple[str | None, dict[str, str]]:
    """``"ACME"`` or ``"id.acme.example=ACME,id.beta.example=BETA"`` -> (default, by host)."""
    default, hosts = None, {}
    for item in text.replace(",", " ").split():
        host, sep, tenant = item.partition("=")
        if sep:
            hosts[host.strip().lower()] = check_tenant_id(tenant.strip())
        else:
            if default is not None and default != item:
                raise SettingError(f"GS1 tenants: one default tenant only ({default!r}, {item!r});"
                                   " give the others as HOST=TENANT")
            default = check_tenant_id(item)
    return default, hosts


async def _form(req: falcon.Request) -> list[tuple[str, str]]:
    """The form's fields, decoded in its charset (``charset=gbk`` from Chinese gateways)."""
    body = await read_body(req, MAX_FORM)
    codec = form_codec(req.content_type, body)
    escapes = "utf-8" if codec.startswith("utf-16") else codec
    try:
        return parse_qsl(body.decode(codec), keep_blank_values=True, encoding=escapes,
                         errors="strict")
    except UnicodeDecodeError:
        raise RequestError(f"the form is not valid {codec}") from None


def _secret(config: ChannelConfig) -> str:
    if not config.secret:
        raise BadSignature(f"tenant {config.tenant!r} has no gateway secret: set one first")
    return config.secret


def _check_twilio(req: falcon.Request, config: ChannelConfig, params) -> None:
    secret = _secret(config)
    given = req.get_header("X-Twilio-Signature")
    # req.url is the URL as the gateway used it: behind a trusted proxy, its scheme and host
    # (proxies.py); a Forwarded header from anyone else never reaches here.
    if not any(signatures.valid(signatures.twilio_signature(secret, u, params), given)
               for u in signatures.twilio_urls(req.url)):
        raise BadSignature("X-Twilio-Signature is missing or does not match")


def _check_itemseal(req: falcon.Request, config: ChannelConfig, body: bytes) -> None:
    expected = signatures.itemseal_signature(_secret(config), body)
    if not signatures.valid(expected, req.get_header("X-Itemseal-Signature")):
        raise BadSignature("X-Itemseal-Signature is missing or does not match")


class TwilioSmsResource:
    """``POST /v1/sms/twilio``: a Twilio-style form; the reply as text or TwiML."""

    def __init__(self, service: SmsService) -> None:
        self._service = service

    async def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        params = await _form(req)
        msg = gateways.parse_twilio(dict(params))
        config = await self._service.config_for(msg.to)
        _check_twilio(req, config, params)
        reply = await self._service.handle(config, msg)
        if config.reply_format == TWIML:
            resp.text = ivr.twiml(f"<Message>{ivr.escape(reply)}</Message>")
            resp.content_type = TWIML_TYPE
        else:
            resp.text = reply
            resp.content_type = falcon.MEDIA_TEXT


class JsonSmsResource:
    """``POST /v1/sms/aliyun`` and ``/v1/sms/tencent``: JSON signed with X-Itemseal-Signature.

    For a relay that forwards the gateways' posts and signs them; the gateways
    themselves call ``GatewayCallbackResource``.
    """

    def __init__(self, service: SmsService, gateway: str) -> None:
        self._service = service
        self._gateway = gateway
        aliyun = gateway == gateways.ALIYUN
        self._parse = gateways.parse_aliyun if aliyun else gateways.parse_tencent

    async def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = await read_body(req, MAX_JSON)
        messages = self._parse(json_body(req.content_type, body))
        tenants = {await self._service.channels.tenant_for(m.to) for m in messages}
        config = await self._service.config_for(messages[0].to)
        if len(tenants) > 1:
            raise InvalidField("dest_code", "one post must carry messages for one tenant only")
        _check_itemseal(req, config, body)
        answered = [(m, await self._service.handle(config, m)) for m in messages]
        for m, text in answered:  # these gateways cannot carry a reply: send it ourselves
            await self._service.queue_reply(config, m, text)
        if self._gateway == gateways.ALIYUN:
            resp.media = {"code": 0, "msg": "OK", "replies": [
                {"phone_number": m.sender, "content": text, "sequence_id": m.message_id}
                for m, text in answered
            ]}  # fmt: skip
        else:
            resp.media = {"result": 0, "errmsg": "OK", "replies": [
                {"mobile": m.sender, "text": text} for m, text in answered
            ]}  # fmt: skip


class GatewayCallbackResource:
    """``POST /v1/sms/aliyun/{token}`` and ``/v1/sms/tencent/{token}``: the gateways' own calls.

    Aliyun's uplink push (上行短信, HTTP batch push: a JSON array of
    ``phone_number``, ``send_time``, ``content``, ``sign_name``, ``dest_code``,
    ``sequence_id``) and Tencent Cloud's reply callback (回复短信: ``extend``,
    ``mobile``, ``nationcode``, ``sign``, ``text``, ``time``) sign nothing, and
    their ``dest_code``/``extend`` is an extension code, not the number. The
    tenant is the one whose secret callback token the URL carries; its
    optional allow-list of source addresses is checked too. Replies go out
    through the tenant's SMS sender; the answer is the one each gateway's
    documentation asks for.
    """

    def __init__(self, service: SmsService, gateway: str) -> None:
        self._service = service
        aliyun = gateway == gateways.ALIYUN
        self._parse = gateways.parse_aliyun if aliyun else gateways.parse_tencent
        self._ok = ALIYUN_OK if aliyun else TENCENT_OK

    async def on_post(self, req: falcon.Request, resp: falcon.Response, token: str) -> None:
        tenant = await self._service.channels.tenant_for_token(token)
        if tenant is None:
            raise BadSignature("unknown callback token: copy the URL from `itemseal tenant set"
                               " --sms-callback-token new`")
        config = await self._service.channels.get(tenant)
        if not config.allows(req.remote_addr):
            raise BadSignature(f"callbacks from {req.remote_addr} are not in the tenant's"
                               " allowed addresses")
        body = json_body(req.content_type, await read_body(req, MAX_JSON))
        for message in self._parse(body):
            text = await self._service.handle(config, message)
            await self._service.queue_reply(config, message, text)
        resp.media = self._ok


class IvrResource:
    """``POST /v1/ivr/inbound``: keypad digits in, speakable TwiML out."""

    def __init__(self, engine: VerifyEngine, service: SmsService) -> None:
        self._engine = engine
        self._service = service

    async def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        params = await _form(req)
        form = dict(params)
        caller = gateways.field(form, "From")
        config = await self._service.config_for(gateways.field(form, "To"))
        _check_twilio(req, config, params)
        digits = form.get("Digits", "").strip().rstrip("#")
        resp.content_type = TWIML_TYPE
        if not digits:
            resp.text = ivr.prompt(config)
            return
        if digits in (ivr.JOIN_KEY, config.join_keyword):
            resp.text = ivr.answer(config, await self._service.join_reply(config, caller),
                                   again=False)
            return
        if digits in (ivr.BALANCE_KEY, config.balance_keyword):
            resp.text = ivr.answer(config, await self._service.balance_reply(config, caller),
                                   again=False)
            return
        result, text = await check_code(self._engine, config, caller, digits, "ivr")
        again = result in (answers.MISTYPED, answers.MALFORMED)
        if again:  # a keypad's wording: key the digits in again (the SMS says "send it")
            text = config.reply("ivr_mistyped" if result == answers.MISTYPED else "ivr_malformed")
        resp.text = ivr.answer(config, text, again=again)


class WebPageResource:
    """``GET|POST /t/{tenant}/v/{code}``: the page behind the QR code (HTML, no JavaScript)."""

    def __init__(
        self,
        engine: VerifyEngine,
        service: SmsService,
        csrf_secret: bytes,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._engine = engine
        self._service = service
        self._secret = csrf_secret
        self._clock = clock

    async def on_get(
        self, req: falcon.Request, resp: falcon.Response, tenant: str, code: str
    ) -> None:
        await self.show(req, resp, tenant, code, code)

    async def show(
        self, req: falcon.Request, resp: falcon.Response, tenant: str, code: str, text: str
    ) -> None:
        """Check ``text`` (the code, or the GS1 link it came in) and show the page of ``code``.

        A link preview or prefetch (``web.is_preview``) records nothing: it
        gets the brand and a button that checks when a person presses it.
        """
        config = await self._config(resp, tenant, code)
        if config is None:
            return
        if web.is_preview(req.get_header("User-Agent"), req.get_header("Purpose"),
                          req.get_header("Sec-Purpose"), req.get_header("X-Moz")):
            await self._render(resp, config, code, preview_action=req.path)
            return
        try:
            answer = await self._engine.verify(
                tenant, CheckRequest(text, None, "web"), req.remote_addr or "-"
            )
        except RateLimited as exc:
            resp.set_headers(exc.headers())
            await self._render(resp, config, code, error="busy", status=429)
            return
        nonce = req.cookies.get(csrf.COOKIE) or secrets.token_urlsafe(18)
        resp.set_cookie(
            csrf.COOKIE, nonce, max_age=csrf.MAX_AGE, path="/t/", secure=req.scheme == "https",
            http_only=True, same_site="Strict",
        )  # fmt: skip
        token = csrf.make_token(self._secret, tenant, code, nonce, int(self._clock()))
        await self._render(resp, config, code, answer=answer, csrf=token)

    async def on_post(
        self, req: falcon.Request, resp: falcon.Response, tenant: str, code: str
    ) -> None:
        config = await self._config(resp, tenant, code)
        if config is None:
            return
        form = dict(await _form(req))
        nonce = req.cookies.get(csrf.COOKIE)
        now = int(self._clock())
        if not csrf.check_token(self._secret, tenant, code, nonce, form.get("csrf"), now):
            await self._render(resp, config, code, error="expired", status=403)
            return
        phone = form.get("phone", "").strip()
        try:
            answer = await self._engine.verify(
                tenant, CheckRequest(code, phone or "-", "web"), req.remote_addr or "-"
            )
        except BadPhone:
            token = csrf.make_token(self._secret, tenant, code, nonce or "", now)
            answer = await self._engine.lookup(tenant, code, req.remote_addr or "-")
            await self._render(resp, config, code, answer=answer, csrf=token,
                               error="bad_phone", status=422)
            return
        except RateLimited as exc:
            resp.set_headers(exc.headers())
            await self._render(resp, config, code, error="busy", status=429)
            return
        await self._render(resp, config, code, answer=answer, claim=answer)

    async def _config(
        self, resp: falcon.Response, tenant: str, code: str
    ) -> ChannelConfig | None:
        try:
            return await self._service.channels.get(tenant)
        except CodegenError:  # unknown tenant (or its keys do not open): a page, not JSON
            unknown = web.PageInput(tenant, tenant, web.ZH, code, error="unknown")
            _html(resp, web.page(unknown), 404)
            return None

    async def _render(self, resp: falcon.Response, config: ChannelConfig, code: str, *,
                      status: int = 200, **page) -> None:
        answer = page.get("answer")
        description = usage = ""
        if answer is not None and answer.sku:
            product = await self._engine.catalog.product(config.tenant, answer.sku)
            if product is not None:
                description, usage = product.description, product.usage
        p = web.PageInput(config.tenant, config.name, config.language, code,
                          description=description, usage=usage, **page)
        _html(resp, web.page(p), status)


class Gs1LinkResource:
    """``GET /01/{gtin}/21/{serial}`` and ``/01/{gtin}/10/{lot}/21/{serial}``: a GS1 label's URL.

    The same page as the QR route, for the tenant configured for GS1 links
    (``gs1_tenant_map``); the whole link is checked, so its GTIN must be the
    code's product's.
    """

    def __init__(self, page: WebPageResource, tenants: str = "") -> None:
        self._page = page
        self._default, self._hosts = gs1_tenant_map(tenants)

    def tenant_for(self, host: str) -> str | None:
        return self._hosts.get(host.lower(), self._default)

    async def on_get(self, req: falcon.Request, resp: falcon.Response, gtin: str, serial: str,
                     lot: str | None = None) -> None:
        tenant = self.tenant_for(req.host)
        qualifiers = ["10", quote(lot, safe="")] if lot is not None else []
        path = "/".join(["", "01", quote(gtin, safe=""), *qualifiers, "21", quote(serial, safe="")])
        link = f"{req.scheme}://{req.netloc}{path}"
        code = extract_code(link)
        if tenant is None:
            unknown = web.PageInput("-", "-", web.ZH, code, error="unknown")
            _html(resp, web.page(unknown), 404)
            return
        await self._page.show(req, resp, tenant, code, link)

    async def on_get_lot(self, req: falcon.Request, resp: falcon.Response, gtin: str, lot: str,
                         serial: str) -> None:
        await self.on_get(req, resp, gtin, serial, lot)


class WebEntryResource:
    """``GET /t/{tenant}/v?code=...``: the re-entry form's target; redirects to the page."""

    async def on_get(self, req: falcon.Request, resp: falcon.Response, tenant: str) -> None:
        code = "".join(ch for ch in req.get_param("code", default="") if not ch.isspace())[:64]
        raise falcon.HTTPSeeOther(f"/t/{quote(tenant, safe='')}/v/{quote(code, safe='')}")


def _html(resp: falcon.Response, text: str, status: int) -> None:
    resp.status = status
    resp.text = text
    resp.content_type = "text/html; charset=utf-8"
    resp.set_header("Cache-Control", "no-store")
    resp.set_header("X-Content-Type-Options", "nosniff")
    resp.set_header(
        "Content-Security-Policy",
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self';"
        " frame-ancestors 'none'; base-uri 'none'",
    )



class ReceiptResource:
    """``POST /v1/tenants/{tenant}/sms/receipts``: delivery receipts, signed like SMS posts.

    Body ``{"receipts": [{"id": <our message id or the gateway's>, "status":
    "delivered" | "failed", "error": ""}]}``; a receipt for a message we do
    not know answers ``unknown`` for it (gateways retry what we refuse).
    Not a consumer's route: it runs on the synchronous stores in the thread
    pool (``admin_routes.threaded``).
    """

    def __init__(self, client: redis.Redis, channels: ChannelStore) -> None:
        self._client = client
        self._channels = channels

    def on_post(self, req: falcon.Request, resp: falcon.Response, tenant: str) -> None:
        from points_bridge.sms.outbound import Outbox

        body = body_of(req, MAX_JSON)
        config = self._channels.get(tenant)
        _check_itemseal(req, config, body)
        data = load_object(body)
        receipts = data.get("receipts")
        if not isinstance(receipts, list) or not 1 <= len(receipts) <= 1000:
            raise InvalidField("receipts", "'receipts' is a list of 1-1000 receipts")
        outbox = Outbox(self._client, tenant)
        results = []
        for item in receipts:
            if not isinstance(item, dict) or not isinstance(item.get("id"), str) \
                    or item.get("status") not in ("delivered", "failed"):
                raise InvalidField("receipts", "each receipt has an 'id' and a 'status'"
                                   " of delivered or failed")
            error = item.get("error") if isinstance(item.get("error"), str) else ""
            status = outbox.receipt(item["id"], item["status"] == "delivered", error)
            results.append({"id": item["id"], "status": status})
        resp.media = {"results": results}
