"""Shops (manager), and the till's routes (cashier): purchases, refunds, balance, top-ups.

The till's routes live under ``/v1/tenants/{tenant}`` (``TILL``) rather than
the admin prefix, as the POS calls them, but they are admin resources all the
same: a bearer token of the tenant, a role allowed the action
(``roles.py``: the ``cashier`` role), run in the thread pool like every
synchronous store call (``resources.Threaded``).
"""

from __future__ import annotations

from dataclasses import asdict

from codegen.times import iso
from points_bridge.purchase_rules import Line
from points_bridge.purchases import PurchaseDesk, PurchaseRequest, PurchaseResult
from points_bridge.shops import Shop, ShopStore
from verify_api.exc import InvalidField
from verify_api.resources.admin import AdminContext, AdminResource, fields
from verify_api.resources.admin_bodies import query_int

TILL = "/v1/tenants/{tenant}"


def shop_json(shop: Shop) -> dict:
    return {**asdict(shop), "created_at": iso(shop.created_at)}


def purchase_json(result: PurchaseResult) -> dict:
    document = result.to_json()
    document["at"] = iso(document["at"])
    return document


def answer_posted(resp, result: PurchaseResult) -> None:
    """201 with the posting; 200 with the same one when the idempotency key was seen."""
    resp.status = 200 if result.duplicate else 201
    resp.media = purchase_json(result)


class _Base(AdminResource):
    def desk(self, tenant: str) -> PurchaseDesk:
        return PurchaseDesk(self.ctx.client, tenant, clock=self.ctx.clock)


class Shops(_Base):
    """``GET .../shops`` lists, ``POST .../shops`` {shop_id, name, region?} adds."""

    actions = {"GET": "shops.read", "POST": "shops.write"}

    def on_get(self, req, resp, tenant: str) -> None:
        resp.media = {"shops": [shop_json(s) for s in ShopStore(self.ctx.client, tenant).list()]}

    def on_post(self, req, resp, tenant: str) -> None:
        body = fields(req)
        shop_id = body.str("shop_id", required=True, limit=32)
        name = body.str("name", required=True, limit=100)
        region = body.str("region", limit=32) or ""
        body.done()
        shop = ShopStore(self.ctx.client, tenant, clock=self.ctx.clock).add(
            shop_id, name=name, region=region)
        self.ctx.audit(req, tenant, "shop.add", f"shop/{shop_id}", None, shop_json(shop))
        resp.status = 201
        resp.media = shop_json(shop)


class ShopOne(_Base):
    actions = {"GET": "shops.read", "PATCH": "shops.write"}

    def on_get(self, req, resp, tenant: str, shop_id: str) -> None:
        resp.media = shop_json(ShopStore(self.ctx.client, tenant).get(shop_id))

    def on_patch(self, req, resp, tenant: str, shop_id: str) -> None:
        body = fields(req)
        name = body.str("name", limit=100)
        region = body.str("region", limit=32)
        body.done()
        store = ShopStore(self.ctx.client, tenant, clock=self.ctx.clock)
        before = store.get(shop_id)
        after = store.set(shop_id, name=name, region=region)
        self.ctx.audit(req, tenant, "shop.set", f"shop/{shop_id}", shop_json(before),
                       shop_json(after))
        resp.media = shop_json(after)


def _lines(raw: list) -> tuple[Line, ...]:
    lines = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or not {"sku", "amount"} <= set(item) <= {
                "sku", "qty", "amount"}:
            raise InvalidField("lines", f"lines[{i}] is {{sku, qty?, amount}}")
        for name in ("qty", "amount"):
            value = item.get(name, 1)
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidField("lines", f"lines[{i}].{name} must be a whole number")
        if not isinstance(item["sku"], str):
            raise InvalidField("lines", f"lines[{i}].sku must be a string")
        lines.append(Line(item["sku"], item.get("qty", 1), item["amount"]))
    return tuple(lines)


class Purchases(_Base):
    """``POST /v1/tenants/{t}/purchases``: record a purchase at the till, once per key."""

    actions = {"POST": "purchases.write"}

    def on_post(self, req, resp, tenant: str) -> None:
        body = fields(req)
        request = PurchaseRequest(
            member=body.str("member", required=True, limit=32),
            shop=body.str("shop", required=True, limit=32),
            lines=_lines(body.list("lines", required=True)),
            idempotency_key=body.str("idempotency_key", required=True, limit=128),
            paid_with_points=body.int("paid_with_points", minimum=0) or 0,
            paid_with_stored_value=body.int("paid_with_stored_value", minimum=0) or 0,
        )
        body.done()
        result = self.desk(tenant).record(request)
        answer_posted(resp, result)


class PurchaseRefund(_Base):
    """``POST .../purchases/{purchase_id}/refund`` {lines?, idempotency_key?}."""

    actions = {"POST": "purchases.refund"}

    def on_post(self, req, resp, tenant: str, purchase_id: str) -> None:
        body = fields(req)
        lines = body.list("lines") if body.has("lines") else None
        key = body.str("idempotency_key", limit=128)
        body.done()
        if lines is not None and not all(
                isinstance(n, int) and not isinstance(n, bool) for n in lines):
            raise InvalidField("lines", "'lines' is a list of line numbers (1 is the first)")
        result = self.desk(tenant).refund(purchase_id, lines, idempotency_key=key)
        answer_posted(resp, result)


class MemberBalance(_Base):
    """``GET /v1/tenants/{t}/members/{member}/balance``: what the till shows."""

    actions = {"GET": "members.balance"}

    def on_get(self, req, resp, tenant: str, member: str) -> None:
        resp.media = self.desk(tenant).balance(member)


class MemberTopup(_Base):
    """``POST /v1/tenants/{t}/members/{member}/topup`` {amount, payment_ref, idempotency_key}."""

    actions = {"POST": "stored.topup"}

    def on_post(self, req, resp, tenant: str, member: str) -> None:
        body = fields(req)
        amount = body.int("amount", required=True, minimum=1)
        payment_ref = body.str("payment_ref", required=True, limit=128)
        key = body.str("idempotency_key", required=True, limit=128)
        body.done()
        result = self.desk(tenant).topup(member, amount, payment_ref=payment_ref,
                                         idempotency_key=key)
        answer_posted(resp, result)


class MemberStoredAdjust(_Base):
    """``POST .../members/{card}/stored-value`` {amount, reason, idempotency_key} (support)."""

    actions = {"POST": "stored.adjust"}

    def on_post(self, req, resp, tenant: str, card: str) -> None:
        body = fields(req)
        amount = body.int("amount", required=True)
        reason = body.str("reason", required=True, limit=200)
        key = body.str("idempotency_key", required=True, limit=128)
        body.done()
        result = self.desk(tenant).adjust_stored(card, amount, reason=reason,
                                                 idempotency_key=key)
        if not result.duplicate:
            self.ctx.audit(req, tenant, "member.stored_adjust", f"member/{card}", None,
                           {"amount": amount, "reason": reason})
        resp.media = purchase_json(result)


class MemberPurchases(_Base):
    """``GET .../members/{card}/purchases?count=N``: purchases, refunds, stored value."""

    actions = {"GET": "purchases.read"}

    def on_get(self, req, resp, tenant: str, card: str) -> None:
        count = query_int(req.params, "count", 50, 1, 1000)
        found = self.desk(tenant).history(card, count)
        for document in found:
            document["at"] = iso(document["at"])
        resp.media = {"purchases": found}


def routes(ctx: AdminContext) -> list[tuple[str, AdminResource]]:
    """Routes under the admin prefix (``admin_routes.register`` adds it)."""
    return [
        ("/shops", Shops(ctx)),
        ("/shops/{shop_id}", ShopOne(ctx)),
        ("/members/{card}/purchases", MemberPurchases(ctx)),
        ("/members/{card}/stored-value", MemberStoredAdjust(ctx)),
    ]


def till_routes(ctx: AdminContext) -> list[tuple[str, AdminResource]]:
    """The till's routes, full paths under ``/v1/tenants/{tenant}``."""
    return [
        (f"{TILL}/purchases", Purchases(ctx)),
        (f"{TILL}/purchases/{{purchase_id}}/refund", PurchaseRefund(ctx)),
        (f"{TILL}/members/{{member}}/balance", MemberBalance(ctx)),
        (f"{TILL}/members/{{member}}/topup", MemberTopup(ctx)),
    ]
