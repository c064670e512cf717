"""Dashboard logins kept on the server: the browser holds a random session id, not a token.

The token login of the read-only dashboard (``/admin/{tenant}``); the office's staff
logins are ``sessions.py``.

A bearer token in a cookie would be the token itself, valid until revoked,
wherever the cookie ends up. A session is a random id whose SHA-256 names a
record with a TTL (``TenantKeys.dashboard_session``): it holds the hash of
the token that logged in (so revoking the token ends its sessions) and the
session's CSRF secret; logout deletes it. Forms carry CSRF tokens: the login
form a double-submit token (cookie and field), the logout form the session's.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable

import redis

from codegen.store.keyspace import TenantKeys
from verify_api.admin.auth import TokenInfo, TokenStore, token_hash
from verify_api.exc import Unauthorized

SESSION_SECONDS = 8 * 3600


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def same(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a submitted CSRF token."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


class DashboardSessions:
    """Open, check and close dashboard sessions of every tenant."""

    def __init__(
        self, client: redis.Redis, tokens: TokenStore, *,
        clock: Callable[[], float] = time.time,
        token_urlsafe: Callable[[int], str] = secrets.token_urlsafe,
    ) -> None:
        self._redis = client
        self._tokens = tokens
        self._clock = clock
        self._random = token_urlsafe

    def open(self, tenant: str, token: str) -> str:
        """Start a session for a token ``authorize`` accepted; return the session id."""
        session_id = self._random(32)
        record = {"token": token_hash(token), "csrf": self._random(24), "at": int(self._clock())}
        self._redis.set(TenantKeys(tenant).dashboard_session(_hash(session_id)),
                        json.dumps(record), ex=SESSION_SECONDS)
        return session_id

    def check(self, tenant: str, session_id: str | None) -> tuple[TokenInfo, str]:
        """The live token behind a session and the session's CSRF token, or Unauthorized."""
        raw = self._redis.get(TenantKeys(tenant).dashboard_session(_hash(session_id))) \
            if session_id else None
        if raw is None:
            raise Unauthorized("log in")
        record = json.loads(raw)
        return self._tokens.by_hash(tenant, record["token"]), record["csrf"]

    def close(self, tenant: str, session_id: str | None) -> None:
        if session_id:
            self._redis.delete(TenantKeys(tenant).dashboard_session(_hash(session_id)))
