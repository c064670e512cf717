"""Tenants: the brands one deployment serves, each with its own keys and data."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import redis

from codegen.exc import BadTenantId, TenantExists, UnknownTenant
from codegen.store.keyspace import TENANT_ID, TENANT_INDEX, TenantKeys

DEFAULT_VERIFY_URL = "http://localhost:8080/t/{tenant}/v/{code}"
SETTABLE = ("name", "verify_url", "region", "language", "reply_format")


REPORT_COUNTERS = "report_counters"
"""Tenant field: "1" once the report counters hold every member (``points_bridge/counters.py``)."""


@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    name: str
    created_at: float
    verify_url: str
    settings: dict[str, str]

    def url_for(self, code_digits: str) -> str:
        return self.verify_url.format(tenant=self.tenant_id, code=code_digits)


def check_tenant_id(tenant: str) -> str:
    if not TENANT_ID.fullmatch(tenant):
        raise BadTenantId(
            f"bad tenant id {tenant!r}: use 1-32 letters, digits, '-' or '_', starting with"
            " a letter or digit"
        )
    return tenant


def tenant_from_record(tenant: str, record: Mapping[bytes, bytes]) -> Tenant:
    """The tenant of its record (``TenantKeys.meta``) as HGETALL returns it.

    The one reader of the record: ``TenantStore.get`` and the readers that
    fetch it in a pipeline with other keys (the points credit's one round
    trip) parse it here. Each concern then reads its own fields from
    ``Tenant.settings`` (``verify_*``: ``check/catalog.py``, ``points_*``:
    ``points_bridge/settings.py``, channel fields: ``channels/config.py``).
    A record without ``created_at`` is no tenant (``create`` writes it first).
    """
    fields = {k.decode(): v.decode() for k, v in record.items()}
    if "created_at" not in fields:
        raise UnknownTenant(tenant)
    return Tenant(
        tenant_id=tenant,
        name=fields.get("name", tenant),
        created_at=float(fields["created_at"]),
        verify_url=fields.get("verify_url", DEFAULT_VERIFY_URL),
        settings=fields,
    )


class TenantStore:
    def __init__(self, client: redis.Redis, *, clock: Callable[[], float] = time.time) -> None:
        self._redis = client
        self._clock = clock

    def create(self, tenant: str, name: str, verify_url: str | None = None) -> Tenant:
        check_tenant_id(tenant)
        keys = TenantKeys(tenant)
        fields = {
            "name": name,
            "created_at": repr(self._clock()),
            "verify_url": verify_url or DEFAULT_VERIFY_URL,
            REPORT_COUNTERS: "1",  # a new tenant's report counters start complete
        }
        if not self._redis.hsetnx(keys.meta, "created_at", fields["created_at"]):
            raise TenantExists(tenant)
        self._redis.hset(keys.meta, mapping=fields)
        self._redis.sadd(TENANT_INDEX, tenant)
        return self.get(tenant)

    def get(self, tenant: str) -> Tenant:
        check_tenant_id(tenant)
        return tenant_from_record(tenant, self._redis.hgetall(TenantKeys(tenant).meta))

    def update(self, tenant: str, **settings: str) -> Tenant:
        unknown = set(settings) - set(SETTABLE)
        if unknown:
            raise ValueError(f"unknown tenant settings: {', '.join(sorted(unknown))}")
        self.get(tenant)
        if settings:
            self._redis.hset(TenantKeys(tenant).meta, mapping=settings)
        return self.get(tenant)

    def list(self) -> list[Tenant]:
        return [self.get(t.decode()) for t in sorted(self._redis.smembers(TENANT_INDEX))]
