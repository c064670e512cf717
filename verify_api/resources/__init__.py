"""Thin falcon ASGI resources: parse, call the engine, set the response. No Redis here."""

from __future__ import annotations

import asyncio
import codecs
import inspect

import falcon.asgi

from verify_api.exc import BodyTooLarge, RequestError
from verify_api.resources.deadlines import BodyDeadlines

BODY_SECONDS = 10.0
"""How long a client may take to send its body: a slow trickle must not hold a worker."""
BODY_DEADLINES = BodyDeadlines()
"""The worker's late-body sweep (``deadlines.py``): one timer, not one per request."""


async def read_body(req: falcon.asgi.Request, limit: int, seconds: float | None = None) -> bytes:
    """Return the request body (chunked or not), refusing one over ``limit`` bytes (413)
    or one that has not arrived within ``seconds`` (``BODY_SECONDS``; 408, and the
    connection is closed)."""
    length = req.content_length
    if length is not None and length > limit:
        raise BodyTooLarge(f"the body is {length} bytes; the limit is {limit}")
    body = await BODY_DEADLINES.read(req.stream.read(limit + 1), seconds or BODY_SECONDS)
    if len(body) > limit:
        raise BodyTooLarge(f"the body is over the limit of {limit} bytes")
    return body


# GB2312 and GBK are subsets of GB 18030: decoding with the superset never refuses a
# character a gateway's GBK encoder wrote (Chinese gateways often say gb2312 and send GBK).
_SUPERSETS = {"gb2312": "gb18030", "gbk": "gb18030", "cp936": "gb18030", "x-gbk": "gb18030"}

_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_BOMS = (codecs.BOM_UTF8, *_UTF16_BOMS)


def charset_of(content_type: str | None) -> str | None:
    """The ``charset`` parameter of a Content-Type, lower case, or None."""
    for param in (content_type or "").split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"').lower() or None
    return None


def _codec(charset: str | None, body: bytes) -> str:
    if body.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if body.startswith(_UTF16_BOMS):
        return "utf-16"
    name = _SUPERSETS.get(charset or "", charset or "utf-8")
    try:
        return codecs.lookup(name).name
    except LookupError:
        raise RequestError(f"unknown charset {charset!r}") from None


def body_text(content_type: str | None, body: bytes) -> str:
    """The body as text in the charset its Content-Type names (UTF-8 if none; a BOM wins).

    Gateways in China post GBK (``charset=gbk``); some Windows clients UTF-16.
    """
    codec = _codec(charset_of(content_type), body)
    try:
        return body.decode(codec)
    except UnicodeDecodeError:
        raise RequestError(f"the body is not valid {charset_of(content_type) or codec}") from None


def json_body(content_type: str | None, body: bytes) -> bytes:
    """A JSON body as UTF-8 bytes for the parser: re-encoded when its charset is another."""
    plain = content_type is None or content_type == "application/json"
    if plain and not body.startswith(_BOMS):
        return body  # what nearly every check sends: no charset to look up
    codec = _codec(charset_of(content_type), body)
    if codec == "utf-8":
        return body
    return body_text(content_type, body).encode()


def form_codec(content_type: str | None, body: bytes) -> str:
    """The charset a form's percent-escapes are in (``application/x-www-form-urlencoded``)."""
    return _codec(charset_of(content_type), body)


def body_of(req: falcon.asgi.Request, limit: int) -> bytes:
    """The body ``Threaded`` has read for a synchronous responder."""
    body = getattr(req.context, "raw_body", b"")
    if len(body) > limit:
        raise BodyTooLarge(f"the body is over the limit of {limit} bytes")
    return body


MAX_THREADED_BODY = 1024 * 1024
"""The most a threaded responder is sent (each checks its own, smaller, limit: ``body_of``)."""


class Threaded:
    """A resource whose ``on_*`` responders are synchronous, served from the thread pool.

    For the routes that drive the synchronous stores the CLI uses (admin,
    dashboard, delivery receipts): never on the event loop.

    The body is read first, on the event loop (with its deadline), and left
    on ``req.context.raw_body`` for ``resources.body_of``.
    """

    def __init__(self, resource: object) -> None:
        self.resource = resource
        for name, responder in inspect.getmembers(resource, callable):
            if name.startswith("on_"):
                setattr(self, name, self._wrap(responder))

    def __getattr__(self, name: str):
        return getattr(self.resource, name)  # what the resource declares (``actions`` ...)

    @staticmethod
    def _wrap(responder):
        async def respond(req: falcon.asgi.Request, resp: falcon.asgi.Response, **params):
            if req.method in ("POST", "PUT", "PATCH", "DELETE"):
                req.context.raw_body = await read_body(req, MAX_THREADED_BODY)
            await asyncio.to_thread(responder, req, resp, **params)

        return respond
