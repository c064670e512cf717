"""The brand's inbox: what consumers wrote that was neither a code nor a keyword.

Each tenant has a Redis stream of messages (``is:{T}:feedback``, capped at
about ``MAX_MESSAGES``) and a hash of answers by message id
(``is:{T}:feedback:answers``); both share the tenant's hash tag. A stream
gives ids that sort by time, so the inbox lists newest first without an
index of its own, and an answer never rewrites the consumer's message.

API (the admin routes build on it):

* ``add(phone, text, channel, at) -> id``
* ``list(limit=50, status=None) -> [Feedback]``: newest first; ``status``
  ``"open"`` or ``"answered"`` filters
* ``get(id) -> Feedback`` (``UnknownFeedback`` if there is none)
* ``mark_answered(id, answer_text, at) -> Feedback``
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import redis

from codegen.store.keyspace import TenantKeys
from codegen.store.wire import pack
from codegen.times import iso
from verify_api.exc import NotFound

OPEN, ANSWERED = "open", "answered"
MAX_MESSAGES = 100_000
MAX_TEXT = 1600


class UnknownFeedback(NotFound):
    code = "unknown_feedback"


@dataclass(frozen=True)
class Feedback:
    feedback_id: str
    phone: str
    text: str
    channel: str
    at: int
    status: str = OPEN
    answer: str | None = None
    answered_at: int | None = None

    def to_json(self) -> dict:
        return {
            "id": self.feedback_id, "phone": self.phone, "text": self.text,
            "channel": self.channel, "at": iso(self.at), "status": self.status,
            "answer": self.answer, "answered_at": iso(self.answered_at),
        }  # fmt: skip


def feedback_entry(phone: str, text: str, channel: str, at: int) -> dict[str, str]:
    return {"phone": phone, "text": text[:MAX_TEXT], "channel": channel, "at": str(int(at))}


class FeedbackInbox:
    """One tenant's inbox of consumer messages."""

    def __init__(self, client: redis.Redis, tenant: str) -> None:
        self._redis = client
        self.tenant = tenant
        keys = TenantKeys(tenant)
        self.stream = keys.feedback
        self.answers = keys.feedback_answers

    def add(self, phone: str, text: str, channel: str, at: int) -> str:
        """Store a message; return its id (the stream id, e.g. ``1767225600000-0``)."""
        entry = feedback_entry(phone, text, channel, at)
        return self._redis.xadd(self.stream, entry, maxlen=MAX_MESSAGES, approximate=True).decode()

    def add_command(self, phone: str, text: str, channel: str, at: int) -> bytes:
        """``add`` packed, for the SMS channel's asyncio link."""
        flat = [x.encode() for kv in feedback_entry(phone, text, channel, at).items() for x in kv]
        return pack(b"XADD", self.stream.encode(), b"MAXLEN", b"~", b"%d" % MAX_MESSAGES, b"*",
                    *flat)

    def get(self, feedback_id: str) -> Feedback:
        try:
            found = self._redis.xrange(self.stream, feedback_id, feedback_id)
        except redis.ResponseError:  # not a stream id
            found = []
        if not found:
            raise UnknownFeedback(f"no feedback {feedback_id!r} for tenant {self.tenant!r}")
        return self._with_answers(found)[0]

    def list(self, limit: int = 50, status: str | None = None) -> list[Feedback]:
        """Newest first; with ``status`` only open or only answered messages."""
        if status not in (None, OPEN, ANSWERED):
            raise ValueError(f"status must be {OPEN!r} or {ANSWERED!r}")
        out: list[Feedback] = []
        upper = "+"
        while len(out) < limit:
            page = self._redis.xrevrange(self.stream, upper, "-", count=max(limit, 100))
            if upper != "+":
                page = page[1:]  # the bound itself was the last of the page before
            if not page:
                break
            out += [f for f in self._with_answers(page) if status in (None, f.status)]
            upper = page[-1][0]
        return out[:limit]

    def mark_answered(self, feedback_id: str, answer_text: str, at: int) -> Feedback:
        """Record the brand's answer (a second answer replaces the first)."""
        self.get(feedback_id)
        record = json.dumps({"answer": answer_text[:MAX_TEXT], "at": int(at)}, ensure_ascii=False)
        self._redis.hset(self.answers, feedback_id, record)
        return self.get(feedback_id)

    def _with_answers(self, entries: list) -> list[Feedback]:
        ids = [entry_id.decode() for entry_id, _ in entries]
        answers = self._redis.hmget(self.answers, ids) if ids else []
        out = []
        for (entry_id, raw), answer in zip(entries, answers, strict=True):
            fields = {k.decode(): v.decode() for k, v in raw.items()}
            done = json.loads(answer) if answer else None
            out.append(
                Feedback(
                    feedback_id=entry_id.decode(),
                    phone=fields.get("phone", ""),
                    text=fields.get("text", ""),
                    channel=fields.get("channel", ""),
                    at=int(fields.get("at", 0)),
                    status=ANSWERED if done else OPEN,
                    answer=done["answer"] if done else None,
                    answered_at=done["at"] if done else None,
                )
            )
        return out
