"""Parse what SMS gateways post into one shape, ``InboundSms``.

Pure: bytes or a form in, messages out, ``InvalidField``/``InvalidJson``
(4xx) for anything else. Three formats real gateways send:

* **Twilio** (form post): ``From``, ``To``, ``Body``, ``MessageSid``; the
  many other fields Twilio adds (``AccountSid``, ``NumMedia``, ...) are ignored.
* **Aliyun** SMS uplink (JSON array): ``phone_number``, ``content``,
  ``dest_code`` (the sub-port the message was sent to), ``sequence_id``,
  ``send_time`` (``2025-01-31 08:00:00``).
* **Tencent Cloud** SMS reply callback (JSON object, or an array of them):
  ``mobile``, ``text``, ``extend`` (the sub-port), ``time`` (unix seconds),
  optionally ``nationcode`` and ``sign``. No message id: a retry is known by
  sender, time and text (``InboundSms.dedup_id``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import orjson

from verify_api.exc import InvalidField, InvalidJson

TWILIO, ALIYUN, TENCENT = "twilio", "aliyun", "tencent"
MAX_TEXT = 1600  # ten segments: more is not an SMS
MAX_MESSAGES = 100


@dataclass(frozen=True)
class InboundSms:
    """One consumer message; ``to`` is the number or sub-port it was sent to."""

    gateway: str
    sender: str
    to: str
    text: str
    message_id: str | None = None
    sent_at: str = ""

    @property
    def dedup_id(self) -> str:
        """The gateway's message id, or a hash of sender, time and text when it has none."""
        if self.message_id:
            return f"{self.gateway}:{self.message_id}"
        digest = hashlib.sha256(
            "\x00".join((self.sender, self.to, self.sent_at, self.text)).encode()
        ).hexdigest()[:32]
        return f"{self.gateway}:h:{digest}"


def field(data: dict, name: str, *, required: bool = True, limit: int = 64) -> str:
    """One string field of a message (numbers given as JSON numbers become strings)."""
    value = data.get(name)
    if value is None or value == "":
        if required:
            raise InvalidField(name, f"{name!r} is required")
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise InvalidField(name, f"{name!r} must be a string, not {type(value).__name__}")
    if len(value) > limit:
        raise InvalidField(name, f"{name!r} is longer than {limit} characters")
    return value


def parse_twilio(form: dict[str, str]) -> InboundSms:
    """A Twilio form post (already decoded by the web framework)."""
    return InboundSms(
        TWILIO,
        sender=field(form, "From"),
        to=field(form, "To"),
        text=field(form, "Body", required=False, limit=MAX_TEXT),
        message_id=field(form, "MessageSid", required=False) or None,
    )


def _load(body: bytes) -> object:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidJson(f"the body is not valid JSON: {exc}") from None


def _objects(data: object, what: str) -> list[dict]:
    items = data if isinstance(data, list) else [data]
    if not items or not all(isinstance(i, dict) for i in items):
        raise InvalidJson(f"the body must be {what}")
    if len(items) > MAX_MESSAGES:
        raise InvalidField("body", f"at most {MAX_MESSAGES} messages per post")
    return items


def parse_aliyun(body: bytes) -> list[InboundSms]:
    """An Aliyun uplink post: a JSON array of messages (one object is accepted too)."""
    out = []
    for item in _objects(_load(body), "a JSON array of uplink messages"):
        seq = field(item, "sequence_id", required=False)
        out.append(
            InboundSms(
                ALIYUN,
                sender=field(item, "phone_number"),
                to=field(item, "dest_code", required=False),
                text=field(item, "content", required=False, limit=MAX_TEXT),
                message_id=seq or None,
                sent_at=field(item, "send_time", required=False),
            )
        )
    return out


def parse_tencent(body: bytes) -> list[InboundSms]:
    """A Tencent reply callback: one JSON object (an array of them is accepted too)."""
    out = []
    for item in _objects(_load(body), "a JSON object"):
        nation = field(item, "nationcode", required=False, limit=4)
        mobile = field(item, "mobile")
        sender = f"+{nation}{mobile}" if nation and not mobile.startswith("+") else mobile
        out.append(
            InboundSms(
                TENCENT,
                sender=sender,
                to=field(item, "extend", required=False),
                text=field(item, "text", required=False, limit=MAX_TEXT),
                sent_at=field(item, "time", required=False),
            )
        )
    return out
