"""Where outbound SMS go: an HTTP gateway, or a JSONL file for development.

A ``Sender`` takes one ``OutMessage`` and says whether the gateway took it
(and under which id, for delivery receipts). It never retries: the outbound
queue decides (``outbound.py``), and a sender that raises counts as a failed
send, not a crash of the sender loop.

The HTTP adapter fits the many gateways that take "a JSON post with the
phone and the text" by a payload template: a JSON document whose string
values may contain ``{phone}``, ``{text}``, ``{id}`` and ``{tenant}``. Values
are substituted after parsing, so a text with quotes or braces can never
break the JSON or inject a field. The auth header (``Authorization: ...`` or
any ``Name: value``) is sealed at rest like the gateway secret.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx

from codegen.webhooks import http_client, post
from points_bridge.exc import SenderError

DEFAULT_TEMPLATE = '{"to": "{phone}", "text": "{text}", "ref": "{id}"}'
PLACEHOLDERS = ("phone", "text", "id", "tenant")


@dataclass(frozen=True)
class OutMessage:
    message_id: str
    tenant: str
    phone: str
    text: str


@dataclass(frozen=True)
class SendResult:
    ok: bool
    gateway_id: str = ""
    error: str = ""


class Sender(Protocol):
    def send(self, msg: OutMessage) -> SendResult: ...


def check_template(template: str) -> str:
    """Validate a payload template: a JSON object whose strings use known placeholders."""
    try:
        doc = json.loads(template)
    except ValueError as exc:
        raise SenderError(f"the payload template is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise SenderError("the payload template must be a JSON object")
    render_payload(doc, OutMessage("x", "T", "+1", "t"))
    return template


def render_payload(doc: object, msg: OutMessage) -> object:
    """Fill placeholders in every string of a parsed template."""
    if isinstance(doc, str):
        out = doc
        for name in PLACEHOLDERS:
            out = out.replace("{" + name + "}", _value(msg, name))
        return out
    if isinstance(doc, list):
        return [render_payload(v, msg) for v in doc]
    if isinstance(doc, dict):
        return {k: render_payload(v, msg) for k, v in doc.items()}
    return doc


def _value(msg: OutMessage, name: str) -> str:
    return {"phone": msg.phone, "text": msg.text, "id": msg.message_id,
            "tenant": msg.tenant}[name]


class HttpGatewaySender:
    """POST a rendered JSON payload; 2xx is taken, anything else failed."""

    def __init__(
        self,
        url: str,
        *,
        auth_header: str = "",
        template: str = DEFAULT_TEMPLATE,
        id_field: str = "id",
        timeout: float = 10.0,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise SenderError(f"bad gateway URL {url!r}: give an http(s) URL")
        self.url = url
        self._template = json.loads(check_template(template))
        self._headers = {"Content-Type": "application/json"}
        if auth_header:
            name, sep, value = auth_header.partition(":")
            if not sep or not name.strip():
                raise SenderError("the auth header must read 'Name: value'")
            self._headers[name.strip()] = value.strip()
        self._id_field = id_field
        self._timeout = timeout
        self._client: httpx.Client | None = None

    def send(self, msg: OutMessage) -> SendResult:
        """One POST (httpx, no redirects: a 3xx is a failure naming where it pointed)."""
        body = json.dumps(render_payload(self._template, msg), ensure_ascii=False).encode()
        if self._client is None:
            self._client = http_client(self._timeout)
        sent = post(self._client, self.url, body, self._headers)
        if sent.status == 0:
            return SendResult(False, error=f"gateway unreachable: {sent.reason}")
        if 300 <= sent.status < 400:
            return SendResult(False, error=f"gateway answered {sent.reason}")
        if not sent.ok:
            return SendResult(False, error=f"gateway answered {sent.status}")
        return SendResult(True, gateway_id=_gateway_id(sent.body, self._id_field))


def _gateway_id(raw: bytes, id_field: str) -> str:
    try:
        doc = json.loads(raw) if raw.strip() else {}
    except ValueError:
        return ""
    value = doc.get(id_field) if isinstance(doc, dict) else None
    return "" if value is None else str(value)


class FileSender:
    """Append each message as one JSON line: development and demos, no gateway needed."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def send(self, msg: OutMessage) -> SendResult:
        line = json.dumps({"id": msg.message_id, "tenant": msg.tenant, "phone": msg.phone,
                           "text": msg.text}, ensure_ascii=False)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as out:
            out.write(line + "\n")
        return SendResult(True, gateway_id=msg.message_id)
