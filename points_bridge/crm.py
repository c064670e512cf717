"""Deliver every ledger entry and member change to the brand's CRM over a webhook.

The events are in the tenant's ``MEMBER_SHARDS`` shard streams
(``PointsKeys.events``), written by the same scripts as the ledger, so none
is ever missing. The bridge reads each stream in a consumer group (``crm``):

* **Signed, keyed POSTs.** The body is compact JSON, signed the Standard
  Webhooks way (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``:
  ``v1,`` + base64 HMAC-SHA256 of ``id.timestamp.body``, so a captured post
  cannot be replayed later; the receiver's key is ``whsec_`` + base64 of the
  secret, ``standard_secret``). ``X-Itemseal-Signature`` (hex HMAC-SHA256 of the
  body) is sent too, for receivers written before. ``Idempotency-Key`` and
  ``webhook-id`` (``TENANT/SHARD/STREAM-ID``) are the same on every
  redelivery, so the CRM keeps exactly one copy of each event.
* **Nothing is lost to a redirect.** Posts go through httpx with redirects
  never followed (``codegen/webhooks.py``): a 3xx is a failure naming the new
  location, never "delivered".
* **Retries with jittered exponential backoff** for 5xx, 408, 425, 429 and
  network errors, waiting what ``Retry-After`` asks when the CRM says; an event
  still failing after ``max_attempts``, or refused with any other 4xx or a 3xx
  (poison: retrying cannot help), is parked in the tenant's dead-letter stream with the
  reason, and the bridge moves on.
* **Resumes where it stopped.** An event is acknowledged only once delivered
  or parked. After a restart the bridge first re-reads its own pending events,
  then takes over those of a dead consumer idle longer than ``claim_idle``
  (XAUTOCLAIM), then reads new ones. Within a shard, events go out in order.

Delivered events are trimmed from a stream (XTRIM MINID) after each pass up to
the oldest event still pending in any group, so a stream holds only what the
bridge has not sent yet.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import redis

from codegen.keys import MasterKey, check_secret
from codegen.store.keyspace import MEMBER_SHARDS, PointsKeys
from codegen.webhooks import Delivery, backoff_seconds, check_public_url, http_client, post
from points_bridge.exc import PointsError, UnknownDeadLetter

GROUP = "crm"
SIGNATURE_HEADER = "X-Itemseal-Signature"
RETRYABLE = (408, 425, 429)
CHUNK = 100
NUMBERS = ("delta", "balance", "earned", "at", "serial", "created_at")
"""Fields sent as JSON numbers (the streams hold text)."""


def sign(secret: bytes, body: bytes) -> str:
    """Return the hex HMAC-SHA256 of ``body``, the value of ``X-Itemseal-Signature``."""
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def standard_signature(secret: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """``webhook-signature`` of the Standard Webhooks spec: ``v1,`` base64 HMAC-SHA256."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(secret, signed, hashlib.sha256).digest()).decode()


def standard_secret(secret: bytes) -> str:
    """The secret as Standard Webhooks libraries take it: ``whsec_`` + base64."""
    return "whsec_" + base64.b64encode(secret).decode()


class CrmSecret:
    """The tenant's webhook signing secret, sealed under the master key like every key at rest.

    The bridge and `itemseal bridge secret` open it with the master key; the
    store (and its append-only file) never holds it in the clear.
    """

    def __init__(self, client: redis.Redis, tenant: str, master: MasterKey) -> None:
        self._redis = client
        self._key = PointsKeys(tenant).crm_secret
        self._master = master
        self._context = f"itemseal/crm-secret/{tenant}".encode()
        self._what = f"the CRM secret of tenant {tenant!r}"

    def get(self) -> bytes | None:
        raw = self._redis.get(self._key)
        if raw is None:
            return None
        return self._master.open_record(json.loads(raw), self._context, self._what)

    def ensure(self) -> bytes:
        """Return the secret, making a random one on first use (SET NX: one wins)."""
        self._redis.set(self._key, self._sealed(os.urandom(24).hex().encode()), nx=True)
        found = self.get()
        assert found is not None, "set just above"
        return found

    def set(self, secret: bytes | None = None) -> bytes:
        """Store ``secret`` (or a new random one) and return it."""
        if secret is not None:
            check_secret(secret, "the CRM webhook secret")
        secret = secret or os.urandom(24).hex().encode()
        self._redis.set(self._key, self._sealed(secret))
        return secret

    def _sealed(self, secret: bytes) -> str:
        return json.dumps(self._master.seal_record(secret, self._context, os.urandom(12)))


class Webhook:
    """POST signed JSON bodies to one URL (httpx, no redirects); say what came of each."""

    def __init__(self, url: str, secret: bytes, *, timeout: float = 10.0,
                 clock: Callable[[], float] = time.time) -> None:
        if not url.startswith(("http://", "https://")):
            raise PointsError(f"webhook {url!r}: give an http:// or https:// URL")
        check_public_url(url, "the CRM webhook")
        self.url = url
        self._secret = secret
        self._clock = clock
        self._client = http_client(timeout)

    def post(self, body: bytes, idempotency_key: str) -> Delivery:
        now = int(self._clock())
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self._secret, body),
            "Idempotency-Key": idempotency_key,
            "webhook-id": idempotency_key,
            "webhook-timestamp": str(now),
            "webhook-signature": standard_signature(self._secret, idempotency_key, now, body),
            "User-Agent": "itemseal-bridge",
        }
        return post(self._client, self.url, body, headers, now)

    def close(self) -> None:
        self._client.close()


@dataclass
class BridgeStats:
    delivered: int = 0
    parked: int = 0
    retries: int = 0


def _numbers(data: dict) -> dict:
    for name in NUMBERS:
        value = data.get(name)
        if isinstance(value, str) and value.lstrip("-").isdigit():
            data[name] = int(value)
    return data


class Bridge:
    """Drain one tenant's event streams to a webhook."""

    def __init__(
        self,
        client: redis.Redis,
        tenant: str,
        webhook: Webhook,
        *,
        consumer: str | None = None,
        max_attempts: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        claim_idle: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._redis = client
        self._rand = rand
        self._clock = clock
        self.tenant = tenant
        self.keys = PointsKeys(tenant)
        self._webhook = webhook
        self.consumer = consumer or f"bridge-{os.uname().nodename}"
        self._max_attempts = max_attempts
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._claim_idle_ms = int(claim_idle * 1000)
        self._sleep = sleep
        self._ready: set[str] = set()

    def drain(self) -> BridgeStats:
        """Deliver everything pending or new in every shard, then return."""
        stats = BridgeStats()
        for shard in range(MEMBER_SHARDS):
            while self._pass(shard, stats):
                pass
            self._trim(self.keys.events(shard))
        return stats

    def run(self, should_stop: Callable[[], bool], idle_poll: float = 1.0) -> BridgeStats:
        """Deliver until ``should_stop()``; sleep ``idle_poll`` when nothing came."""
        total = BridgeStats()
        while not should_stop():
            stats = self.drain()
            for name in ("delivered", "parked", "retries"):
                setattr(total, name, getattr(total, name) + getattr(stats, name))
            if not (stats.delivered or stats.parked):
                self._sleep(idle_poll)
        return total

    def _pass(self, shard: int, stats: BridgeStats) -> bool:
        """Deliver one chunk of the shard (own pending, abandoned, then new); False if none."""
        stream = self.keys.events(shard)
        self._ensure_group(stream)
        entries = self._read(stream, "0")
        if not entries:
            claimed = self._redis.xautoclaim(
                stream, GROUP, self.consumer, self._claim_idle_ms, "0-0", count=CHUNK
            )
            entries = [(i, f) for i, f in claimed[1] if f]
        if not entries:
            entries = self._read(stream, ">")
        for entry_id, fields in entries:
            self._deliver(shard, stream, entry_id.decode(), fields, stats)
        return bool(entries)

    def _read(self, stream: str, start: str) -> list:
        reply = self._redis.xreadgroup(GROUP, self.consumer, {stream: start}, count=CHUNK)
        entries = reply[0][1] if reply else []
        stale = [i for i, f in entries if not f]  # trimmed while pending: nothing to send
        if stale:
            self._redis.xack(stream, GROUP, *stale)
        return [(i, f) for i, f in entries if f]

    def _ensure_group(self, stream: str) -> None:
        if stream in self._ready:
            return
        try:
            self._redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._ready.add(stream)

    def payload(self, shard: int, entry_id: str, fields: dict[bytes, bytes]) -> tuple[bytes, str]:
        """Return the JSON body of one event and its idempotency key."""
        f = {k.decode(): v.decode() for k, v in fields.items()}
        key = f"{self.tenant}/{shard}/{entry_id}"
        event = {
            "tenant": self.tenant,
            "event_id": key,
            "type": f.get("type", ""),
            "card": f.get("card", ""),
            "entry_id": f.get("entry") or None,
            "data": _numbers(json.loads(f.get("data") or "{}")),
        }
        return json.dumps(event, sort_keys=True, separators=(",", ":")).encode(), key

    def _deliver(
        self, shard: int, stream: str, entry_id: str, fields: dict, stats: BridgeStats
    ) -> None:
        body, key = self.payload(shard, entry_id, fields)
        reason = ""
        for attempt in range(1, self._max_attempts + 1):
            sent = self._webhook.post(body, key)
            if sent.ok:
                self._redis.xack(stream, GROUP, entry_id)
                stats.delivered += 1
                return
            reason = sent.reason or f"HTTP {sent.status}"
            if 300 <= sent.status < 500 and sent.status not in RETRYABLE:
                break  # poison: the CRM refuses this event as it is, or sends it elsewhere
            if attempt < self._max_attempts:
                stats.retries += 1
                self._sleep(backoff_seconds(attempt, self._backoff, self._max_backoff,
                                            sent.retry_after, self._rand))
        else:
            reason = f"{reason}; gave up after {self._max_attempts} attempts"
        self._redis.xadd(
            self.keys.dead_letter,
            {"idempotency_key": key, "stream": stream, "entry": entry_id, "reason": reason,
             "body": body, "at": str(int(self._clock()))},
        )
        self._redis.xack(stream, GROUP, entry_id)
        stats.parked += 1

    def replay_dead(self, entry_ids: Iterable[str] = ()) -> BridgeStats:
        """Send parked events again (all, or ``entry_ids``); each delivered one leaves the stream.

        The CRM has fixed what made it refuse them. An event goes with its
        first idempotency key and body, so one that did arrive after all is
        not applied twice; one refused again stays parked with the new reason.
        """
        stats = BridgeStats()
        wanted = set(entry_ids)
        missing = set(wanted)
        for raw_id, fields in self._redis.xrange(self.keys.dead_letter):
            entry_id = raw_id.decode()
            if wanted and entry_id not in wanted:
                continue
            missing.discard(entry_id)
            sent = self._webhook.post(fields[b"body"], fields[b"idempotency_key"].decode())
            if sent.ok:
                self._redis.xdel(self.keys.dead_letter, entry_id)
                stats.delivered += 1
            else:
                reason = f"replay: {sent.reason or f'HTTP {sent.status}'}"
                self._redis.xadd(self.keys.dead_letter, {**fields, b"reason": reason.encode()})
                self._redis.xdel(self.keys.dead_letter, entry_id)
                stats.parked += 1
        if missing:
            raise UnknownDeadLetter(self.tenant, sorted(missing))
        return stats

    def _trim(self, stream: str) -> None:
        """Drop the events every group has acknowledged, up to the oldest still pending.

        A stream then holds only what the bridge has not sent yet (or is
        sending): without a group nothing is dropped, as no bridge has read it.
        """
        try:
            groups = self._redis.xinfo_groups(stream)
        except redis.ResponseError:
            return
        if not groups:
            return
        floors = []
        for group in groups:
            if group["pending"]:
                floors.append(_stream_id(
                    self._redis.xpending(stream, group["name"])["min"]))
            else:
                ms, seq = _stream_id(group["last-delivered-id"])
                floors.append((ms, seq + 1))
        ms, seq = min(floors)
        self._redis.xtrim(stream, minid=f"{ms}-{seq}", approximate=False)


def _stream_id(raw: bytes | str) -> tuple[int, int]:
    text = raw.decode() if isinstance(raw, bytes) else raw
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)
