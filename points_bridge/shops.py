"""A brand's shops (outlets): where purchases are made (seed 003, "purchases at specified stores").

A shop is an id, a name and a region, one JSON value per shop in the tenant
hash ``PointsKeys.shops``. The region is what purchase campaigns scoped by
region match, and reports group sales by shop. Called "shop" because
"store" already names the embedded Redis (``itemseal store``).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass

from codegen.tenants import TenantStore
from points_bridge.exc import BadInput, ShopExists, UnknownShop
from points_bridge.scoped import TenantScoped

SHOP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
MAX_NAME = 100
MAX_REGION = 32


@dataclass(frozen=True)
class Shop:
    shop_id: str
    name: str
    region: str
    created_at: int

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, raw: bytes | str) -> Shop:
        d = json.loads(raw)
        return cls(d["shop_id"], d["name"], d.get("region", ""), int(d.get("created_at", 0)))


def check_shop_id(shop_id: str) -> str:
    if not isinstance(shop_id, str) or not SHOP_ID.match(shop_id):
        raise BadInput("shop", shop_id, "shop ids are 1-32 letters, digits, '.', '_', '-'")
    return shop_id


def _check_text(name: str, value: str, limit: int, *, required: bool) -> str:
    if not isinstance(value, str) or len(value) > limit or (required and not value.strip()):
        raise BadInput(name, value, f"must be {'1' if required else '0'} to {limit} characters")
    return value.strip()


class ShopStore(TenantScoped):
    """Add, list, change and find a tenant's shops."""

    def add(self, shop_id: str, *, name: str, region: str = "") -> Shop:
        TenantStore(self._redis).get(self.tenant)  # an unknown tenant: say so
        shop = Shop(check_shop_id(shop_id), _check_text("name", name, MAX_NAME, required=True),
                    _check_text("region", region, MAX_REGION, required=False),
                    int(self._clock()))
        if not self._redis.hsetnx(self.keys.shops, shop_id, shop.to_json()):
            raise ShopExists(self.tenant, shop_id)
        return shop

    def get(self, shop_id: str) -> Shop:
        raw = self._redis.hget(self.keys.shops, shop_id) if SHOP_ID.match(shop_id or "") else None
        if raw is None:
            raise UnknownShop(self.tenant, shop_id)
        return Shop.from_json(raw)

    def list(self) -> list[Shop]:
        return sorted((Shop.from_json(v) for v in self._redis.hgetall(self.keys.shops).values()),
                      key=lambda shop: shop.shop_id)

    def set(self, shop_id: str, *, name: str | None = None, region: str | None = None) -> Shop:
        """Change a shop's name or region (purchases already made keep the region they had)."""
        shop = self.get(shop_id)
        changed = Shop(
            shop.shop_id,
            shop.name if name is None else _check_text("name", name, MAX_NAME, required=True),
            shop.region if region is None else _check_text("region", region, MAX_REGION,
                                                           required=False),
            shop.created_at,
        )
        self._redis.hset(self.keys.shops, shop_id, changed.to_json())
        return changed
