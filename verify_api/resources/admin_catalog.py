"""Admin routes for what a brand manager sets: products, points settings, tiers, campaigns."""

from __future__ import annotations

import json
from datetime import datetime

import falcon

from codegen.products import ProductStore
from codegen.times import iso
from points_bridge.campaigns import CampaignStore, StoredCampaign, to_json
from points_bridge.rules import Campaign, multiplier_bp
from points_bridge.settings import SettingsStore, load
from verify_api.admin.limits import FIELDS as LIMIT_FIELDS
from verify_api.admin.limits import VerifyLimits
from verify_api.exc import InvalidField
from verify_api.resources.admin import AdminContext, AdminResource, fields

SETTINGS = ("daily_cap", "birthday_multiplier", "birthday_bonus", "expiry_months", "timezone",
            "restore", "earn_rate")


def product_json(product) -> dict:
    record = json.loads(product.to_json())
    return {**record, "created_at": iso(product.created_at), "updated_at": iso(product.updated_at)}


class Products(AdminResource):
    actions = {"GET": "products.read", "POST": "products.write"}

    def on_get(self, req: falcon.Request, resp: falcon.Response, tenant: str) -> None:
        found = ProductStore(self.ctx.client, clock=self.ctx.clock).list(tenant)
        resp.media = {"products": [product_json(p) for p in found]}

    def on_post(self, req: falcon.Request, resp: falcon.Response, tenant: str) -> None:
        body = fields(req)
        sku = body.str("sku", required=True, limit=64)
        name = body.str("name", required=True)
        points = body.int("points", required=True, minimum=0)
        extra = {k: v for k in ("gtin", "description", "usage")
                 if (v := body.str(k, limit=2000)) is not None}
        body.done()
        product = ProductStore(self.ctx.client, clock=self.ctx.clock).add(
            tenant, sku, name=name, points=points, **extra
        )
        self.ctx.audit(req, tenant, "product.add", f"product/{sku}", None, product_json(product))
        resp.status = falcon.HTTP_201
        resp.media = product_json(product)


class Product(AdminResource):
    actions = {"GET": "products.read", "PATCH": "products.write"}

    def on_get(self, req, resp, tenant: str, sku: str) -> None:
        resp.media = product_json(ProductStore(self.ctx.client).get(tenant, sku))

    def on_patch(self, req, resp, tenant: str, sku: str) -> None:
        body = fields(req)
        changes: dict[str, object] = {}
        if (name := body.str("name")) is not None:
            changes["name"] = name
        if (points := body.int("points", minimum=0)) is not None:
            changes["points"] = points
        for name in ("gtin", "description", "usage"):
            if (value := body.str(name, limit=2000)) is not None:
                changes[name] = value
        body.done()
        if not changes:
            raise InvalidField("name", "nothing to change: give name, points, gtin, ...")
        store = ProductStore(self.ctx.client, clock=self.ctx.clock)
        before = product_json(store.get(tenant, sku))
        after = product_json(store.update(tenant, sku, **changes))
        self.ctx.audit(req, tenant, "product.update", f"product/{sku}", before, after)
        resp.media = after


def settings_json(raw: dict[str, str]) -> dict:
    """The points settings as a manager sets them, as the credits read them (``load``).

    A stored field that no longer parses shows as its default, as it applies.
    """
    settings = load(raw)
    policy = settings.policy
    return {
        "daily_cap": policy.daily_cap,
        "birthday_multiplier": policy.birthday_multiplier_bp / 10_000,
        "birthday_bonus": policy.birthday_bonus,
        "expiry_months": settings.expiry_months,
        "timezone": settings.timezone.key if raw.get("points_timezone") else None,
        "restore": settings.restore,
        "earn_rate": settings.earn_rate_bp / 10_000,
    }


class Points(AdminResource):
    """The tenant's points rules beside the products' base points (issue 5)."""

    actions = {"GET": "points.read", "PATCH": "points.write"}

    def on_get(self, req, resp, tenant: str) -> None:
        resp.media = settings_json(SettingsStore(self.ctx.client).raw(tenant))

    def on_patch(self, req, resp, tenant: str) -> None:
        body = fields(req)
        changes = {name: value for name in SETTINGS if (value := body.text(name)) is not None}
        body.done()
        store = SettingsStore(self.ctx.client)
        before = settings_json(store.raw(tenant))
        store.update(tenant, **changes)
        after = settings_json(store.raw(tenant))
        self.ctx.audit(req, tenant, "points.update", "points", before, after)
        resp.media = after


def tiers_json(store: SettingsStore, tenant: str) -> dict:
    ladder = store.get(tenant).ladder
    basis = ladder.basis if ladder.window_days is None else f"trailing:{ladder.window_days}"
    return {"basis": basis,
            "tiers": [{"name": t.name, "threshold": t.threshold, "discount_bp": t.discount_bp,
                       "earn_bp": t.earn_bp} for t in ladder.tiers]}


def _tier_step(i: int, tier: object) -> str:
    """One tier of a PUT as the ``points_tiers`` setting spells it (``name:threshold[:%[:x]]``)."""
    numbers = ("threshold", "discount_bp", "earn_bp")
    if (not isinstance(tier, dict) or not {"name", "threshold"} <= set(tier) <= {"name",
                                                                                 *numbers}
            or not isinstance(tier["name"], str) or not tier["name"]
            or any(c in tier["name"] for c in ",:")
            or any(isinstance(tier.get(n, 0), bool) or not isinstance(tier.get(n, 0), int)
                   for n in numbers)):
        raise InvalidField("tiers", f"tiers[{i}] is {{name, threshold, discount_bp?, earn_bp?}}")
    step = f"{tier['name']}:{tier['threshold']}"
    discount, earn = tier.get("discount_bp", 0), tier.get("earn_bp", 10_000)
    if discount or earn != 10_000:
        step += f":{discount // 100}.{discount % 100:02d}"
    if earn != 10_000:
        step += f":{earn // 10_000}.{earn % 10_000:04d}"
    return step


class Tiers(AdminResource):
    actions = {"GET": "tiers.read", "PUT": "tiers.write"}

    def on_get(self, req, resp, tenant: str) -> None:
        resp.media = tiers_json(SettingsStore(self.ctx.client), tenant)

    def on_put(self, req, resp, tenant: str) -> None:
        body = fields(req)
        tiers = body.list("tiers", required=True)
        basis = body.str("basis", limit=32)
        body.done()
        steps = [_tier_step(i, tier) for i, tier in enumerate(tiers)]
        if not steps:
            raise InvalidField("tiers", "'tiers' is empty")
        store = SettingsStore(self.ctx.client)
        before = tiers_json(store, tenant)
        changes = {"tiers": ",".join(steps)}
        if basis is not None:
            changes["tier_basis"] = basis
        store.update(tenant, **changes)
        after = tiers_json(store, tenant)
        self.ctx.audit(req, tenant, "tiers.update", "tiers", before, after)
        resp.media = after


class Limits(AdminResource):
    """``.../limits``: the rate limits and check cap every worker applies (issue 17).

    Checked by the parser the check path reads them with; in force in every
    worker within its catalog cache time.
    """

    actions = {"GET": "limits.read", "PATCH": "limits.write"}

    def on_get(self, req, resp, tenant: str) -> None:
        resp.media = VerifyLimits(self.ctx.client).get(tenant)

    def on_patch(self, req, resp, tenant: str) -> None:
        body = fields(req)
        changes = {name: value for name in LIMIT_FIELDS if (value := body.text(name)) is not None}
        body.done()
        if not changes:
            raise InvalidField("rate_ip", f"nothing to change: give {', '.join(LIMIT_FIELDS)}")
        store = VerifyLimits(self.ctx.client)
        before = store.get(tenant)
        after = store.update(tenant, **changes)
        self.ctx.audit(req, tenant, "limits.update", "limits", before, after)
        resp.media = after


def campaign_json(stored: StoredCampaign) -> dict:
    record = json.loads(to_json(stored.campaign, stored.ended_at))
    record["multiplier"] = record.pop("multiplier_bp") / 10_000
    record["spent"] = stored.spent
    return record


def _moment(body, name: str, zone) -> datetime:
    text = body.str(name, required=True, limit=40)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidField(name, f"{name!r} is an ISO date or date-time") from None
    return value if value.tzinfo else value.replace(tzinfo=zone)


class Campaigns(AdminResource):
    actions = {"GET": "campaigns.read", "POST": "campaigns.write"}

    def on_get(self, req, resp, tenant: str) -> None:
        SettingsStore(self.ctx.client).raw(tenant)
        found = CampaignStore(self.ctx.client, tenant, clock=self.ctx.clock).list()
        resp.media = {"campaigns": [campaign_json(c) for c in found.values()]}

    def on_post(self, req, resp, tenant: str) -> None:
        body = fields(req)
        zone = SettingsStore(self.ctx.client).get(tenant).timezone
        campaign_id = body.str("campaign_id", required=True, limit=64)
        start, end = _moment(body, "starts_at", zone), _moment(body, "ends_at", zone)
        multiplier = body.text("multiplier") or "1"
        bonus = body.int("bonus", minimum=0) or 0
        scope = {name: frozenset(v) if (v := body.str_list(name)) else None
                 for name in ("regions", "tiers", "skus")}
        budget = body.int("budget", minimum=0)
        body.done()
        added = CampaignStore(self.ctx.client, tenant, clock=self.ctx.clock).add(Campaign(
            campaign_id, start, end, multiplier_bp(multiplier), bonus, budget=budget, **scope
        ))
        after = campaign_json(added)
        self.ctx.audit(req, tenant, "campaign.add", f"campaign/{campaign_id}", None, after)
        resp.status = falcon.HTTP_201
        resp.media = after


class CampaignEnd(AdminResource):
    actions = {"POST": "campaigns.write"}

    def on_post(self, req, resp, tenant: str, campaign_id: str) -> None:
        store = CampaignStore(self.ctx.client, tenant, clock=self.ctx.clock)
        before = campaign_json(store.get(campaign_id))
        after = campaign_json(store.end(campaign_id))
        self.ctx.audit(req, tenant, "campaign.end", f"campaign/{campaign_id}", before, after)
        resp.media = after


def routes(ctx: AdminContext) -> list[tuple[str, AdminResource]]:
    return [
        ("/products", Products(ctx)),
        ("/products/{sku}", Product(ctx)),
        ("/points", Points(ctx)),
        ("/tiers", Tiers(ctx)),
        ("/limits", Limits(ctx)),
        ("/campaigns", Campaigns(ctx)),
        ("/campaigns/{campaign_id}/end", CampaignEnd(ctx)),
    ]
