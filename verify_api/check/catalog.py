"""Per-tenant verification policy and product names, cached for a few seconds.

Every check needs to know that the tenant exists, its limits, and the name of
the product it answers about; none of that changes often, so each worker keeps
it for ``ttl`` seconds instead of asking Redis on every request. A change made
with ``itemseal tenant set`` is seen within ``ttl``.

Policy settings are fields of the tenant record (``TenantKeys.meta``):

============================  =========  ============================================
field                         default    meaning
============================  =========  ============================================
``verify_check_cap``          5          checks after which answers say limit_reached
``verify_rate_ip``            300/60     checks per client IP per seconds (0 = off)
``verify_rate_phone``         20/60      checks per member phone per seconds
``verify_rate_batch``         20000/60   codes per client IP per seconds, batch route
``region``                    CN         region for phone numbers typed without +CC
``points_timezone``           (region's) the zone of the check counters' days
============================  =========  ============================================

The zone is read here, with the rest of the policy, so a check counts its day
in the tenant's zone without reading the points settings on every request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import tzinfo

from codegen.exc import CodegenError
from codegen.products import Product
from codegen.store.keyspace import TenantKeys
from codegen.store.wire import Link, call, hash_pairs, pack
from codegen.tenants import check_tenant_id, tenant_from_record
from points_bridge.phones import DEFAULT_REGION
from points_bridge.settings import timezone_of
from verify_api.check.ratelimit import Limit

DEFAULTS = {
    "verify_check_cap": "5",
    "verify_rate_ip": "300/60",
    "verify_rate_phone": "20/60",
    "verify_rate_batch": "20000/60",
}
MAX_CACHED = 10_000
MAX_CHECK_CAP = 1_000_000
log = logging.getLogger(__name__)


def parse_check_cap(text: str) -> int:
    """Read ``verify_check_cap``: checks from 1 to ``MAX_CHECK_CAP``."""
    cap = int(text)
    if not 1 <= cap <= MAX_CHECK_CAP:
        raise ValueError(f"a check cap is a whole number from 1 to {MAX_CHECK_CAP}: {text!r}")
    return cap


PARSERS: dict[str, Callable[[str], object]] = {
    "verify_check_cap": parse_check_cap,
    "verify_rate_ip": Limit.parse,
    "verify_rate_phone": Limit.parse,
    "verify_rate_batch": Limit.parse,
}
"""The one parser of each policy field: read here, and checked with it when written
(``itemseal tenant set --rate-ip ...``, ``PATCH .../limits``: ``verify_api/admin/limits.py``)."""


@dataclass(frozen=True)
class TenantPolicy:
    tenant: str
    check_cap: int
    ip_limit: Limit | None
    phone_limit: Limit | None
    batch_limit: Limit | None
    phone_region: str
    timezone: tzinfo

    @classmethod
    def from_settings(cls, tenant: str, settings: dict[str, str]) -> TenantPolicy:
        """Build the policy; a setting that does not parse falls back to its default."""

        def setting(name: str):
            parse = PARSERS[name]
            try:
                return parse(settings.get(name, DEFAULTS[name]))
            except ValueError as exc:
                log.warning("tenant %s: setting %s=%r does not parse (%s): using %s",
                            tenant, name, settings.get(name), exc, DEFAULTS[name])
                return parse(DEFAULTS[name])

        return cls(
            tenant=tenant,
            check_cap=setting("verify_check_cap"),
            ip_limit=setting("verify_rate_ip"),
            phone_limit=setting("verify_rate_phone"),
            batch_limit=setting("verify_rate_batch"),
            phone_region=(settings.get("region") or DEFAULT_REGION).upper()[:2],
            timezone=timezone_of(settings),
        )


class Catalog:
    """Tenant policies and product names, each cached for ``ttl`` seconds."""

    def __init__(
        self,
        link: Link,
        *,
        ttl: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._link = link
        self._ttl = ttl
        self._monotonic = monotonic
        self._policies: dict[str, tuple[float, TenantPolicy | Exception]] = {}
        self._products: dict[tuple[str, str], tuple[float, Product | None]] = {}
        self._gtins: dict[str, tuple[float, dict[str, tuple[str, ...]]]] = {}

    async def policy(self, tenant: str) -> TenantPolicy:
        """Return the tenant's policy; raise UnknownTenant or BadTenantId (cached too)."""
        now = self._monotonic()
        cached = self._policies.get(tenant)
        if cached is None or now - cached[0] > self._ttl:
            try:
                check_tenant_id(tenant)
                (raw,) = await call(self._link, pack(b"HGETALL", TenantKeys(tenant).meta.encode()))
                found = tenant_from_record(tenant, hash_pairs(raw))
                value: TenantPolicy | Exception = TenantPolicy.from_settings(tenant, found.settings)
            except CodegenError as exc:  # UnknownTenant, BadTenantId
                value = exc
            if len(self._policies) >= MAX_CACHED:
                self._policies.clear()  # random tenant ids must not grow memory
            cached = self._policies[tenant] = (now, value)
        if isinstance(cached[1], Exception):
            raise cached[1]
        return cached[1]

    async def product_name(self, tenant: str, sku: str) -> str | None:
        """Return the product's display name, or None if the SKU has no record."""
        product = await self.product(tenant, sku)
        return product.name if product else None

    async def product(self, tenant: str, sku: str) -> Product | None:
        """Return the product, or None if the SKU has no (readable) record."""
        now = self._monotonic()
        cached = self._products.get((tenant, sku))
        if cached is None or now - cached[0] > self._ttl:
            if len(self._products) >= MAX_CACHED:
                self._products.clear()
            (raw,) = await call(
                self._link, pack(b"HGET", TenantKeys(tenant).products.encode(), sku.encode()))
            cached = self._products[(tenant, sku)] = (now, _product(raw))
        return cached[1]


    async def skus_of_gtin(self, tenant: str, gtin: str) -> tuple[str, ...]:
        """The tenant's SKUs whose product has ``gtin`` (14 digits); () if none.

        One read of the tenant's products per ``ttl``, not per check: only
        checks of GS1 links ask, and a label's GTIN is one of a few.
        """
        now = self._monotonic()
        cached = self._gtins.get(tenant)
        if cached is None or now - cached[0] > self._ttl:
            (raw,) = await call(self._link, pack(b"HGETALL", TenantKeys(tenant).products.encode()))
            index: dict[str, list[str]] = {}
            for _, value in hash_pairs(raw).items():
                product = _product(value)
                if product is not None and product.gtin:
                    index.setdefault(product.gtin, []).append(product.sku)
            if len(self._gtins) >= MAX_CACHED:
                self._gtins.clear()
            cached = self._gtins[tenant] = (now, {g: tuple(sorted(s)) for g, s in index.items()})
        return cached[1].get(gtin, ())


def _product(raw: bytes | str | None) -> Product | None:
    if raw is None:
        return None
    try:
        return Product.from_json(raw)
    except (TypeError, ValueError):  # a damaged record
        return None


