"""Admin tokens: random bearer tokens, shown once, kept only as a SHA-256 hash.

A token reads ``ist.TENANT.SECRET``: the tenant it belongs to, then 32
random bytes (base64url). Redis keeps, in the tenant's own hash
``TenantKeys.admin_tokens``, the SHA-256 of the whole token mapped to its
record (id, role, label, created, revoked); the token itself is never
stored. A request is authenticated by hashing what it presents and reading
that one field: the lookup is by hash, so no comparison of secrets happens
in Python, and a guess learns nothing from timing but "not found".

Tenant isolation is decided before the store is read: a token whose tenant
is not the route's tenant is answered 404, the same as a tenant that does
not exist, so a token of one brand cannot even learn whether another exists.
A missing, malformed, unknown or revoked token is 401, whatever the tenant.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import redis

from codegen.store.keyspace import TenantKeys
from codegen.store.wire import Link, call, pack
from codegen.tenants import TenantStore
from verify_api.admin.roles import check_role
from verify_api.exc import TenantNotFound, Unauthorized, UnknownToken

PREFIX = "ist"


@dataclass(frozen=True)
class TokenInfo:
    """A token's record: what ``token list`` shows and the audit names as the actor."""

    token_id: str
    tenant: str
    role: str
    label: str
    created_at: float
    revoked_at: float | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def tenant_of(token: str) -> str | None:
    """Return the tenant a token names, or None if it is not shaped like one."""
    prefix, _, rest = token.partition(".")
    tenant, _, secret = rest.partition(".")
    if prefix != PREFIX or not tenant or len(secret) < 32:
        return None
    return tenant


class TokenStore:
    """Create, list, revoke and check admin tokens."""

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

    def create(self, tenant: str, role: str, label: str = "") -> tuple[str, TokenInfo]:
        """Make a token; return it (to show once) and its record."""
        TenantStore(self._redis).get(tenant)
        check_role(role)
        secret = base64.urlsafe_b64encode(self._randbytes(32)).rstrip(b"=").decode()
        token = f"{PREFIX}.{tenant}.{secret}"
        info = TokenInfo(
            token_id=f"tok_{self._randbytes(5).hex()}",
            tenant=tenant,
            role=role,
            label=label,
            created_at=self._clock(),
        )
        self._redis.hset(TenantKeys(tenant).admin_tokens, token_hash(token), _dump(info))
        return token, info

    def list(self, tenant: str) -> list[TokenInfo]:
        TenantStore(self._redis).get(tenant)
        raw = self._redis.hgetall(TenantKeys(tenant).admin_tokens)
        return sorted((_load(v) for v in raw.values()), key=lambda t: (t.created_at, t.token_id))

    def revoke(self, tenant: str, token_id: str) -> TokenInfo:
        """Revoke a token by its id; its next request is 401. Revoking twice is fine."""
        key = TenantKeys(tenant).admin_tokens
        TenantStore(self._redis).get(tenant)
        for digest, raw in self._redis.hgetall(key).items():
            info = _load(raw)
            if info.token_id == token_id:
                if info.active:
                    info = TokenInfo(**{**asdict(info), "revoked_at": self._clock()})
                    self._redis.hset(key, digest, _dump(info))
                return info
        raise UnknownToken(f"tenant {tenant!r} has no token {token_id!r}")

    def authenticate(self, tenant: str, token: str | None) -> TokenInfo:
        """Return the record of a live token of ``tenant``, or raise 401 / 404."""
        if not token:
            raise Unauthorized("log in: send Authorization: Bearer <token>")
        owner = tenant_of(token)
        if owner is None:
            raise Unauthorized("the token is malformed")
        if owner != tenant:
            raise TenantNotFound()
        return self.by_hash(tenant, token_hash(token))

    def by_hash(self, tenant: str, digest: str) -> TokenInfo:
        """The record of a live token of ``tenant`` by its hash (a dashboard session's)."""
        raw = self._redis.hget(TenantKeys(tenant).admin_tokens, digest)
        if raw is None:
            raise Unauthorized("the token is unknown")
        info = _load(raw)
        if not info.active:
            raise Unauthorized("the token was revoked")
        return info


async def authenticate_over(link: Link, tenant: str, token: str) -> TokenInfo:
    """``TokenStore.authenticate`` over the worker's async link (one HGET; a consumer route).

    The verify route uses it when a caller declares a region: a declared
    region counts only for a live token of the tenant (``points_bridge/regions.py``).
    """
    owner = tenant_of(token)
    if owner is None:
        raise Unauthorized("the token is malformed")
    if owner != tenant:
        raise TenantNotFound()
    (raw,) = await call(link, pack(b"HGET", TenantKeys(tenant).admin_tokens.encode(),
                                   token_hash(token).encode()))
    if raw is None:
        raise Unauthorized("the token is unknown")
    info = _load(raw)
    if not info.active:
        raise Unauthorized("the token was revoked")
    return info


def _dump(info: TokenInfo) -> str:
    return json.dumps(asdict(info), sort_keys=True)


def _load(raw: bytes | str) -> TokenInfo:
    return TokenInfo(**json.loads(raw))
