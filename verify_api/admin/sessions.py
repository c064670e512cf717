"""Office sessions: server-side, so logging out or disabling an account ends them at once.

A session id reads ``ios.TENANT.SECRET`` (32 random bytes, base64url), like an
admin token: the tenant it belongs to comes first, so a session of another
tenant is answered 404 before the store is read, the same as a tenant that
does not exist. Redis keeps, under the SHA-256 of the id
(``TenantKeys.office_session``), who is logged in, the session's CSRF token,
its language and its deadlines; the id itself lives only in the browser's
HttpOnly cookie.

A session ends after ``IDLE_SECONDS`` without a request or ``MAX_SECONDS``
after the log-in, whichever is first (the key's TTL, and the stored
deadlines against the injected clock).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import redis

from codegen.store.keyspace import TenantKeys
from verify_api.exc import TenantNotFound

PREFIX = "ios"
IDLE_SECONDS = 60 * 60
MAX_SECONDS = 10 * 60 * 60
LANGUAGES = ("en", "zh")


@dataclass(frozen=True)
class Session:
    tenant: str
    username: str
    csrf: str
    lang: str
    created_at: float
    expires_at: float

    def csrf_ok(self, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf.encode(), token.encode())


def tenant_of(session_id: str) -> str | None:
    prefix, _, rest = (session_id or "").partition(".")
    tenant, _, secret = rest.partition(".")
    if prefix != PREFIX or not tenant or len(secret) < 32:
        return None
    return tenant


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class Sessions:
    """Open, read, touch and end office sessions."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        clock: Callable[[], float] = time.time,
        randbytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self._redis = client
        self._clock = clock
        self._randbytes = randbytes

    def _token(self) -> str:
        return base64.urlsafe_b64encode(self._randbytes(32)).rstrip(b"=").decode()

    def open(self, tenant: str, username: str, lang: str = "en") -> tuple[str, Session]:
        """Start a session for a staff member who has just logged in; return its id."""
        session_id = f"{PREFIX}.{tenant}.{self._token()}"
        now = self._clock()
        session = Session(tenant, username, self._token(),
                          lang if lang in LANGUAGES else "en", now, now + MAX_SECONDS)
        self._store(session_id, session)
        return session_id, session

    def get(self, tenant: str, session_id: str | None) -> Session | None:
        """The live session of ``tenant`` with this id, or None; another tenant's is 404."""
        if not session_id:
            return None
        owner = tenant_of(session_id)
        if owner is None:
            return None
        if owner != tenant:
            raise TenantNotFound()
        key = TenantKeys(tenant).office_session(_digest(session_id))
        raw = self._redis.get(key)
        if raw is None:
            return None
        session = Session(**json.loads(raw))
        if self._clock() >= session.expires_at:
            self._redis.delete(key)
            return None
        self._redis.expire(key, self._ttl(session))  # idle time starts again
        return session

    def set_lang(self, session_id: str, session: Session, lang: str) -> Session:
        session = replace(session, lang=lang if lang in LANGUAGES else session.lang)
        self._store(session_id, session)
        return session

    def close(self, tenant: str, session_id: str | None) -> None:
        """Log out: the session is gone from the store, whatever the browser keeps."""
        if session_id and tenant_of(session_id) == tenant:
            self._redis.delete(TenantKeys(tenant).office_session(_digest(session_id)))

    def _ttl(self, session: Session) -> int:
        return max(1, int(min(IDLE_SECONDS, session.expires_at - self._clock())))

    def _store(self, session_id: str, session: Session) -> None:
        key = TenantKeys(session.tenant).office_session(_digest(session_id))
        self._redis.set(key, json.dumps(asdict(session)), ex=self._ttl(session))
