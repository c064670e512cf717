"""Consumer channels over HTTP: SMS gateway webhooks, the keypad, the verify page."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from urllib.parse import parse_qsl, quote

import falcon
import redis

from codegen.exc import CodegenError
from points_bridge.exc import BadPhone
from verify_api.channels import csrf, gateways, ivr, signatures, web
from verify_api.channels.config import TWIML, ChannelConfig, ChannelStore
from verify_api.channels.sms import SmsService, check_code
from verify_api.check import answers
from verify_api.check.engine import CheckRequest, VerifyEngine
from verify_api.exc import BadSignature, InvalidField, RateLimited, RequestError
from verify_api.resources import body_of, read_body
from verify_api.resources.bodies import load_object

MAX_FORM = 16 * 1024
MAX_JSON = 256 * 1024
TWIML_TYPE = "application/xml; charset=utf-8"


async def _form(req: falcon.Request) -> list[tuple[str, str]]:
    try:
        text = (await read_body(req, MAX_FORM)).decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError("the form is not UTF-8") from None
    return parse_qsl(text, keep_blank_values=True)


def _secret(config: ChannelConfig) -> str:
    if not config.secret:
        raise BadSignature(f"tenant {config.tenant!r} has no gateway secret: set one first")
    return config.secret


def _check_twilio(req: falcon.Request, config: ChannelConfig, params) -> None:
    secret = _secret(config)
    given = req.get_header("X-Twilio-Signature")
    urls = {req.url, req.forwarded_uri}
    if not any(signatures.valid(signatures.twilio_signature(secret, u, params), given)
               for u in urls):
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
    """``POST /v1/sms/aliyun`` and ``/v1/sms/tencent``: JSON signed with X-Itemseal-Signature."""

    def __init__(self, service: SmsService, gateway: str) -> None:
        self._service = service
        self._gateway = gateway
        aliyun = gateway == gateways.ALIYUN
        self._parse = gateways.parse_aliyun if aliyun else gateways.parse_tencent

    async def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = await read_body(req, MAX_JSON)
        messages = self._parse(body)
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
        resp.text = ivr.answer(config, text, again=result in (answers.MISTYPED, answers.MALFORMED))


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
        config = await self._config(resp, tenant, code)
        if config is None:
            return
        try:
            answer = await self._engine.verify(
                tenant, CheckRequest(code, None, "web"), req.remote_addr or "-"
            )
        except RateLimited:
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
        except RateLimited:
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
