"""One-time sign-in codes for the member's own page, sent through the outbound SMS queue.

A member signs in with their phone: ``send`` queues a 6-digit code
(``outbound.OTP``: transactional, sent even to an opted-out phone, since the
member asked for it) and keeps only its hash; ``check`` accepts it once.

* **Expiring**: a code lives ``CODE_SECONDS`` (the hash key's TTL).
* **Single use**: the first right answer deletes it.
* **Few tries**: ``MAX_TRIES`` wrong answers void it.
* **Rate-limited**: per phone one code a ``RESEND_SECONDS`` and ``PER_HOUR``
  an hour; per client address ``PER_HOUR_IP`` an hour.
* **No member list**: a phone that is no member gets the same answer as a
  member ("if this number is a member, a code is on its way") and no SMS.

The clock and the code's randomness are injected.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from points_bridge.exc import PointsError
from points_bridge.members import Member, MemberStore
from points_bridge.sms.outbound import OTP, Outbox

CODE_SECONDS = 300
RESEND_SECONDS = 60
PER_HOUR = 5
PER_HOUR_IP = 20
MAX_TRIES = 5
CODE_DIGITS = 6
TEXTS = {
    "zh": "您的会员登录验证码：{code}，{minutes}分钟内有效。请勿告诉他人。",
    "en": "Your member sign-in code: {code}. It is valid for {minutes} minutes; do not share"
          " it.",
}


class SigninLimited(PointsError):
    """Too many sign-in codes asked for (429): wait and try again."""

    status = 429
    code = "rate_limited"

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many sign-in codes: try again in {retry_after} s")
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class SigninRefused(PointsError):
    """A wrong, expired or used code (401): ask for a new one."""

    status = 401
    code = "signin_refused"


@dataclass(frozen=True)
class Sent:
    phone: str
    queued: bool  # False: not a member (the caller says the same either way)


def _digest(code: str, phone: str) -> str:
    return hashlib.sha256(f"{phone}\n{code}".encode()).hexdigest()


class Signin:
    """Send and check sign-in codes of one tenant (synchronous, like the admin routes)."""

    def __init__(self, client: redis.Redis, tenant: str, *,
                 clock: Callable[[], float] = time.time,
                 randbelow: Callable[[int], int] = secrets.randbelow) -> None:
        self._redis = client
        self.tenant = tenant
        self._clock = clock
        self._randbelow = randbelow
        self._members = MemberStore(client, tenant, clock=clock)
        self.keys = self._members.keys

    def send(self, phone: str, client: str, language: str = "zh") -> Sent:
        """Queue a code to ``phone`` if it is a member's; ``SigninLimited`` past the limits."""
        e164 = self._members.normalize(phone)
        self._count(f"ip/{client}", PER_HOUR_IP)
        key = self.keys.signin_code(e164)
        now = int(self._clock())
        sent_at = int(self._redis.hget(key, "sent_at") or 0)
        if now - sent_at < RESEND_SECONDS:
            raise SigninLimited(RESEND_SECONDS - (now - sent_at))
        self._count(f"phone/{e164}", PER_HOUR)
        try:
            self._members.find(phone=e164)
        except PointsError:
            return Sent(e164, False)
        code = f"{self._randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(key)
        pipe.hset(key, mapping={"digest": _digest(code, e164), "tries": MAX_TRIES,
                                "sent_at": now})
        pipe.expire(key, CODE_SECONDS)  # Redis drops it; ``check`` also reads the clock
        pipe.execute()
        text = TEXTS.get(language, TEXTS["zh"]).format(code=code, minutes=CODE_SECONDS // 60)
        Outbox(self._redis, self.tenant, clock=self._clock).enqueue(
            f"otp.{e164}.{now}", e164, text, OTP)
        return Sent(e164, True)

    def check(self, phone: str, code: str) -> Member:
        """The member whose code this is; the code is used up. ``SigninRefused`` otherwise."""
        e164 = self._members.normalize(phone)
        key = self.keys.signin_code(e164)
        digest, sent_at = self._redis.hmget(key, "digest", "sent_at")
        if digest is None or int(self._clock()) - int(sent_at or 0) >= CODE_SECONDS:
            raise SigninRefused("this code has expired or was used: ask for a new one")
        given = "".join(c for c in (code or "") if c.isdigit())
        if not hmac.compare_digest(digest.decode(), _digest(given, e164)):
            left = self._redis.hincrby(key, "tries", -1)
            if left <= 0:
                self._redis.delete(key)
                raise SigninRefused("wrong code, too many times: ask for a new one")
            raise SigninRefused(f"wrong code: {left} tries left")
        if not self._redis.delete(key):  # another request used it first: single use
            raise SigninRefused("this code has expired or was used: ask for a new one")
        return self._members.find(phone=e164)

    def _count(self, subject: str, limit: int) -> None:
        key = self.keys.signin_sends(subject)
        pipe = self._redis.pipeline(transaction=True)
        pipe.set(key, 0, ex=3600, nx=True)  # the hour starts with the first code
        pipe.incr(key)
        pipe.ttl(key)
        _, count, ttl = pipe.execute()
        if count > limit:
            raise SigninLimited(max(int(ttl), 1))
