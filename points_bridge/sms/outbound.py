"""The outbound SMS queue: enqueue once, send at a rate, track every message.

Two Redis lists per tenant (tenant slot, ``PointsKeys.out``): ``q:tx`` for
transactional messages (replies to an inbound SMS, the opt-out
acknowledgement, answers to feedback, alerts) and ``q:bulk`` for campaigns,
care and draw notices. ``Dispatcher.run`` (``itemseal sender run``) always
empties ``tx`` first and leaves ``bulk`` alone during the tenant's quiet
hours; transactional messages go out at any hour, because the consumer has
just written to us (or, for alerts, the brand wants to know now).

A message's life, each step one script (``lua/out_*.lua``):
``queued`` -> (opt-out since, no credit) ``skipped``/``failed``, or
``sending`` (cost charged) -> ``sent`` (gateway took it) or ``failed``
(refunded) -> by receipt ``delivered`` or ``undelivered``.

Opt-outs win everywhere: the enqueue script and the charge script both look
at the opt-out hash, so a phone that replies TD while a campaign waits in
the queue gets nothing more, except the ``optout_ack`` that answers it.
(Transactional replies to an opted-out phone are not sent either: only the
acknowledgement; texting the join keyword opts back in.)

Sending several ``itemseal sender run`` at once is safe: a message moves
from its queue to ``inflight`` with ``LMOVE`` (exactly one runner gets it)
and the rate is one counter per tenant and second, shared by all runners.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import redis

from codegen.store.keyspace import PointsKeys
from points_bridge.scoped import TenantScoped, points_scripts
from points_bridge.sms.outbound_config import OutboundConfig, OutboundSettings
from points_bridge.sms.senders import OutMessage, Sender

REPLY, OPTOUT_ACK, ANSWER, ALERT = "reply", "optout_ack", "answer", "alert"
CAMPAIGN, CARE, DRAW = "campaign", "care", "draw"
OTP = "otp"  # a sign-in code the member asked for: sent even to an opted-out phone
TRANSACTIONAL = frozenset({REPLY, OPTOUT_ACK, ANSWER, ALERT, OTP})
KINDS = (REPLY, OPTOUT_ACK, ANSWER, ALERT, CAMPAIGN, CARE, DRAW, OTP)
KEEP_SECONDS = 30 * 86400
COUNTERS = ("queued", "sent", "delivered", "undelivered", "failed", "skipped", "spent")


@dataclass(frozen=True)
class Message:
    message_id: str
    phone: str
    text: str
    kind: str
    scope: str
    status: str
    error: str = ""
    cost: int = 0
    gateway_id: str = ""
    queued_at: int = 0
    sent_at: int = 0

    @classmethod
    def from_record(cls, raw: Mapping[str, str]) -> Message:
        return cls(
            message_id=raw["id"], phone=raw["phone"], text=raw["text"], kind=raw["kind"],
            scope=raw["scope"], status=raw["status"], error=raw.get("error", ""),
            cost=int(raw.get("cost") or 0), gateway_id=raw.get("gateway_id", ""),
            queued_at=int(raw.get("queued_at") or 0), sent_at=int(raw.get("sent_at") or 0),
        )

    def to_json(self) -> dict:
        return {"id": self.message_id, "phone": self.phone, "text": self.text,
                "kind": self.kind, "scope": self.scope, "status": self.status,
                "error": self.error, "cost": self.cost, "queued_at": self.queued_at,
                "sent_at": self.sent_at}


def counts(raw: Mapping[bytes, bytes]) -> dict[str, int]:
    found = {k.decode(): int(v) for k, v in raw.items()}
    return {name: found.get(name, 0) for name in COUNTERS}


def enqueue_call(
    keys: PointsKeys, message_id: str, phone: str, text: str, kind: str, at: int, *,
    scope: str | None = None, once: str | None = None, once_seconds: int = 400 * 86400,
) -> tuple[list[str], str]:
    """KEYS and ARGV of ``out_enqueue.lua`` for ``Outbox.enqueue`` (also sent by the SMS
    channel over the API's asyncio link)."""
    if kind not in KINDS:
        raise ValueError(f"unknown message kind {kind!r}")
    scope = scope or kind
    msg = keys.outbound_message(message_id)
    dedup = keys.outbound_once(once) if once else msg
    body = {"id": message_id, "phone": phone, "text": text, "kind": kind, "scope": scope,
            "at": str(at), "ttl": KEEP_SECONDS, "dedup_ttl": once_seconds,
            "ignore_optout": kind in (OPTOUT_ACK, OTP)}
    order = [msg, keys.outbound_queue(kind in TRANSACTIONAL), keys.optouts,
             keys.outbound_counters(scope), keys.outbound_counters("all"), dedup]
    return order, json.dumps(body)


class Outbox(TenantScoped):
    """Queue messages for one tenant and read their status."""

    def message_key(self, message_id: str) -> str:
        return self.keys.outbound_message(message_id)

    def queue_key(self, kind: str) -> str:
        return self.keys.outbound_queue(kind in TRANSACTIONAL)

    def enqueue(
        self,
        message_id: str,
        phone: str,
        text: str,
        kind: str,
        *,
        scope: str | None = None,
        once: str | None = None,
        once_seconds: int = 400 * 86400,
    ) -> str:
        """Queue one message; return ``queued``, ``dup`` or ``optout``.

        ``message_id`` is the idempotency key (a campaign's ids are
        ``<campaign>.<card>``); ``once`` is an extra dedup key kept
        ``once_seconds`` (care: one greeting per member and period, even after
        the message record expired).
        """
        keys, body = enqueue_call(self.keys, message_id, phone, text, kind, int(self._clock()),
                                  scope=scope, once=once, once_seconds=once_seconds)
        return self._scripts.out_enqueue(keys=keys, args=[body]).decode()


    def requeue_no_credit(self, limit: int = 100_000) -> int:
        """Queue again the messages refused for lack of credit; return how many.

        ``itemseal sender credit --add`` calls it after a top-up: a message
        that failed only because the credit ran out goes out after all, in
        the queue it was in (transactional first). Each is one script
        (``out_requeue.lua``), so two top-ups at once requeue nothing twice.
        """
        ids = [i.decode() for i in self._redis.zrange(self.keys.outbound_no_credit, 0,
                                                        limit - 1)]
        requeued = 0
        for message_id in ids:
            kind, scope = self._redis.hmget(self.message_key(message_id), "kind", "scope")
            kind_text = (kind or b"").decode()
            scope_text = (scope or kind or b"all").decode()
            requeued += int(self._scripts.out_requeue(
                keys=[self.message_key(message_id), self.keys.outbound_no_credit,
                      self.queue_key(kind_text), self.keys.outbound_counters(scope_text),
                      self.keys.outbound_counters("all")],
                args=[message_id]))
        return requeued

    def get(self, message_id: str) -> Message | None:
        raw = self._redis.hgetall(self.message_key(message_id))
        return Message.from_record({k.decode(): v.decode() for k, v in raw.items()}) if raw \
            else None

    def counters(self, scope: str = "all") -> dict[str, int]:
        return counts(self._redis.hgetall(self.keys.outbound_counters(scope)))

    def pending(self) -> dict[str, int]:
        pipe = self._redis.pipeline(transaction=False)
        for key in (self.keys.outbound_queue(True), self.keys.outbound_queue(False),
                    self.keys.outbound_inflight):
            pipe.llen(key)
        tx, bulk, inflight = pipe.execute()
        return {"tx": tx, "bulk": bulk, "inflight": inflight}

    def receipt(self, ref: str, delivered: bool, error: str = "") -> str:
        """Apply a delivery receipt by our message id or the gateway's; return the status."""
        message_id = ref
        if not self._redis.exists(self.message_key(ref)):
            found = self._redis.hget(self.keys.gateway_refs, ref)
            if found is None:
                return "unknown"
            message_id = found.decode()
        scope = self._redis.hget(self.message_key(message_id), "scope")
        if scope is None:
            return "unknown"
        keys = [self.message_key(message_id), self.keys.outbound_counters(scope.decode()),
                self.keys.outbound_counters("all")]
        args = ["delivered" if delivered else "undelivered", error[:200],
                str(int(self._clock()))]
        return self._scripts.out_receipt(keys=keys, args=args).decode()

    def report(self) -> dict:
        """Sent, failed and spent, overall and per scope (campaign ids, care, replies...)."""
        scopes = sorted(
            self.keys.outbound_counters_scope(k.decode())
            for k in self._redis.scan_iter(match=self.keys.outbound_counters_pattern, count=500)
        )
        return {
            "credit": OutboundSettings(self._redis, self.tenant).credit(),
            "total": self.counters("all"),
            "by_scope": {s: self.counters(s) for s in scopes if s != "all"},
            "pending": self.pending(),
        }


class Dispatcher:
    """Send one tenant's queued messages through a sender, at the tenant's rate."""

    def __init__(
        self,
        client: redis.Redis,
        tenant: str,
        sender: Sender,
        config: OutboundConfig,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._redis = client
        self.tenant = tenant
        self._sender = sender
        self._config = config
        self._clock = clock
        self._sleep = sleep
        self._outbox = Outbox(client, tenant, clock=clock)
        self.keys = self._outbox.keys
        self._scripts = points_scripts(client)

    def run(self, *, max_messages: int | None = None, idle_seconds: float | None = None) -> dict:
        """Send until the queues are empty (or ``max_messages``); return counts by outcome.

        With ``idle_seconds`` it keeps polling an empty queue (a daemon); a
        queue held by quiet hours counts as empty for this run. When the
        gateway refused some, ``failures`` counts them by its reason, so the
        operator sees why without reading the store.
        """
        done: dict[str, int] = {}
        failures: dict[str, int] = {}
        handled = 0
        while max_messages is None or handled < max_messages:
            message_id = self._pop()
            if message_id is None:
                if idle_seconds is None:
                    break
                self._sleep(idle_seconds)
                continue
            outcome, reason = self._process(message_id)
            done[outcome] = done.get(outcome, 0) + 1
            if reason:
                failures[reason] = failures.get(reason, 0) + 1
            handled += 1
        return {**done, "failures": failures} if failures else done

    def _pop(self) -> str | None:
        inflight = self.keys.outbound_inflight
        found = self._redis.lmove(self.keys.outbound_queue(True), inflight, "LEFT", "RIGHT")
        if found is None and not self._config.is_quiet(self._clock()):
            found = self._redis.lmove(self.keys.outbound_queue(False), inflight, "LEFT", "RIGHT")
        return found.decode() if found is not None else None

    def _slot(self) -> None:
        """Wait for a send slot: at most ``rate`` sends per clock second, over all runners."""
        while True:
            now = self._clock()
            second = int(now)
            key = self.keys.send_rate(second)
            pipe = self._redis.pipeline(transaction=False)
            pipe.incr(key)
            pipe.expire(key, 10)
            used = pipe.execute()[0]
            if used <= self._config.rate:
                return
            self._sleep(max(second + 1 - now, 0.001))

    def _process(self, message_id: str) -> tuple[str, str]:
        """Charge, send and record one message; return its outcome and, if failed, why."""
        msg_key = self._outbox.message_key(message_id)
        try:
            raw = {k.decode(): v.decode() for k, v in self._redis.hgetall(msg_key).items()}
            if not raw:
                return "gone", ""
            counters = [self.keys.outbound_counters(raw["scope"]),
                        self.keys.outbound_counters("all")]
            now = str(int(self._clock()))
            charged = self._scripts.out_charge(
                keys=[msg_key, self.keys.optouts, self.keys.sms_credit, *counters,
                      self.keys.outbound_no_credit],
                args=[self._config.cost, now],
            ).decode()
            if charged != "ok":
                return charged, ""  # optout, no_credit: the outcome is the reason
            self._slot()
            try:
                result = self._sender.send(OutMessage(message_id, self.tenant, raw["phone"],
                                                      raw["text"]))
                body = {"ok": result.ok, "gateway_id": result.gateway_id,
                        "error": result.error, "at": str(int(self._clock()))}
            except Exception as exc:  # noqa: BLE001 - a broken sender fails one message
                body = {"ok": False, "gateway_id": "", "error": f"sender error: {exc}"[:200],
                        "at": str(int(self._clock()))}
            outcome = self._scripts.out_result(
                keys=[msg_key, self.keys.sms_credit, *counters, self.keys.gateway_refs],
                args=[json.dumps(body)],
            ).decode()
            return outcome, (body["error"] or "refused") if outcome == "failed" else ""
        finally:
            self._redis.lrem(self.keys.outbound_inflight, 1, message_id)
