"""Products: what a tenant mints codes for, and the points a first genuine check earns.

Stored in the tenant hash ``TenantKeys(t).products``, one field per SKU, the
value a JSON object (``Product.to_json``) that the points rules read too:
``{"sku", "name", "points", "gtin", "description", "usage", "created_at",
"updated_at"}``; ``gtin`` is 14 digits or null.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace

import redis

from codegen.amounts import MAX_RULE_POINTS
from codegen.exc import ProductError, ProductExists, UnknownProduct
from codegen.store.keyspace import TenantKeys
from codegen.tenants import TenantStore

# A SKU travels inside space-separated values the verify scripts split: no spaces.
SKU = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,63}")
GTIN_LENGTHS = (8, 12, 13, 14)
SETTABLE = ("name", "points", "gtin", "description", "usage")


def check_sku(sku: str) -> str:
    if not SKU.fullmatch(sku):
        raise ProductError(
            f"bad SKU {sku!r}: use 1-64 letters, digits, '.', '_', '/' or '-',"
            " starting with a letter or digit"
        )
    return sku


def gs1_check_digit(body: str) -> int:
    """The GS1 mod-10 check digit of ``body`` (weights 3, 1, 3, ... from the right)."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return -total % 10


def normalize_gtin(text: str) -> str:
    """Check a GTIN-8, -12, -13 or -14 and return it as 14 digits (GTIN-14 form)."""
    digits = text.strip().replace(" ", "").replace("-", "")
    if not digits.isascii() or not digits.isdigit() or len(digits) not in GTIN_LENGTHS:
        raise ProductError(f"bad GTIN {text!r}: give 8, 12, 13 or 14 digits")
    if gs1_check_digit(digits[:-1]) != int(digits[-1]):
        raise ProductError(f"bad GTIN {text!r}: the check digit does not match (mistyped?)")
    return digits.zfill(14)


def check_points(points: int | str) -> int:
    """A product's points: a whole number from 0 to ``MAX_RULE_POINTS`` (``amounts.py``)."""
    try:
        value = int(points)
    except (TypeError, ValueError):
        value = -1
    if value < 0 or value > MAX_RULE_POINTS or str(points).strip() != str(value):
        raise ProductError(
            f"points must be a whole number from 0 to {MAX_RULE_POINTS}, got {points!r}"
        )
    return value


@dataclass(frozen=True)
class Product:
    sku: str
    name: str
    points: int
    gtin: str | None = None
    description: str = ""
    usage: str = ""
    created_at: float = 0.0
    updated_at: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, raw: bytes | str) -> Product:
        """Read a stored record; keys a later version added are ignored."""
        record = json.loads(raw)
        return cls(**{f.name: record[f.name] for f in fields(cls) if f.name in record})


def _clean(changes: dict[str, object]) -> dict[str, object]:
    """Validate settable fields; an empty GTIN clears it."""
    unknown = set(changes) - set(SETTABLE)
    if unknown:
        raise ProductError(f"unknown product fields: {', '.join(sorted(unknown))}")
    out = dict(changes)
    if "name" in out and not str(out["name"]).strip():
        raise ProductError("a product needs a name")
    if "points" in out:
        out["points"] = check_points(out["points"])  # type: ignore[arg-type]
    if "gtin" in out:
        out["gtin"] = normalize_gtin(str(out["gtin"])) if out["gtin"] else None
    return out


class ProductStore:
    """Add, read and change a tenant's products."""

    def __init__(self, client: redis.Redis, *, clock: Callable[[], float] = time.time) -> None:
        self._redis = client
        self._clock = clock

    def add(self, tenant: str, sku: str, *, name: str, points: int, **extra: object) -> Product:
        TenantStore(self._redis).get(tenant)
        now = self._clock()
        values = _clean({"name": name, "points": points, **extra})
        product = Product(sku=check_sku(sku), created_at=now, updated_at=now, **values)
        if not self._redis.hsetnx(TenantKeys(tenant).products, sku, product.to_json()):
            raise ProductExists(tenant, sku)
        return product

    def get(self, tenant: str, sku: str) -> Product:
        raw = self._redis.hget(TenantKeys(tenant).products, sku)
        if raw is None:
            TenantStore(self._redis).get(tenant)  # say "unknown tenant" when that is why
            raise UnknownProduct(tenant, sku)
        return Product.from_json(raw)

    def list(self, tenant: str) -> list[Product]:
        TenantStore(self._redis).get(tenant)
        raw = self._redis.hgetall(TenantKeys(tenant).products)
        return sorted((Product.from_json(v) for v in raw.values()), key=lambda p: p.sku)

    def update(self, tenant: str, sku: str, **changes: object) -> Product:
        """Change fields of a product; concurrent updates never lose one another."""
        values = _clean(changes)
        key = TenantKeys(tenant).products

        def apply(pipe: redis.client.Pipeline) -> Product:
            raw = pipe.hget(key, sku)
            if raw is None:
                raise UnknownProduct(tenant, sku)
            product = replace(Product.from_json(raw), updated_at=self._clock(), **values)
            pipe.multi()
            pipe.hset(key, sku, product.to_json())
            return product

        self.get(tenant, sku)
        return self._redis.transaction(apply, key, value_from_callable=True)
