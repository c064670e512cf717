"""The office's catalogue pages: products and their points, points campaigns, customer care.

Actions as in the admin API (``admin_catalog.py``, ``admin_care.py``):
``products.read``/``products.write``, ``campaigns.read``/``campaigns.write``,
``care.read``/``care.write``; audited with the same action names.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from codegen.exc import ItemsealError
from codegen.products import ProductStore
from points_bridge.campaigns import CampaignStore
from points_bridge.outreach.care import DEFAULTS, KINDS, Care
from points_bridge.rules import Campaign, multiplier_bp
from points_bridge.settings import SettingsStore
from verify_api.admin.listing import DESC, Sorting, list_page
from verify_api.exc import InvalidField
from verify_api.resources.admin_catalog import campaign_json, product_json
from verify_api.resources.office import OfficePage, Visit, page

PRODUCT_SORTING = Sorting({
    "sku": lambda p: p.sku, "name": lambda p: p.name.casefold(), "points": lambda p: p.points,
    "gtin": lambda p: p.gtin or None,
}, default="sku")
CAMPAIGN_SORTING = Sorting({  # rows are campaign_json records, as the admin API answers
    "campaign": lambda c: c["campaign_id"],
    "starts": lambda c: datetime.fromisoformat(c["starts_at"]),
    "ends": lambda c: datetime.fromisoformat(c["ends_at"]),
    "multiplier": lambda c: c["multiplier"], "bonus": lambda c: c["bonus"],
    "spent": lambda c: c["spent"],
}, default="starts", default_dir=DESC)


def _field_of(exc: ItemsealError, default: str) -> str:
    return (getattr(exc, "field", None) or default).split(".")[-1]


class ProductsPage(OfficePage):
    """``GET .../products``: every product with its points; ``POST`` adds one."""

    @page("products.read")
    def on_get(self, req, resp, visit: Visit) -> None:
        self.show(resp, visit, params=req.params)

    def show(self, resp, visit: Visit, *, errors: dict | None = None,
             typed: dict | None = None, status: int = 200, note: str = "",
             params: Mapping | None = None) -> None:
        found = ProductStore(self.ctx.client, clock=self.ctx.clock).list(visit.tenant)
        listing = list_page(found, PRODUCT_SORTING, params or {})
        self.ctx.render(resp, "products.html", visit=visit, status=status, listing=listing,
                        errors=errors or {}, typed=typed or {}, note=note)

    @page("products.write")
    def on_post(self, req, resp, visit: Visit) -> None:
        form = visit.form
        sku = form.get("sku", "").strip()
        try:
            points = form.get("points", "").strip()
            if not points.isdigit():
                raise InvalidField("points", "points are a whole number >= 0")
            product = ProductStore(self.ctx.client, clock=self.ctx.clock).add(
                visit.tenant, sku, name=form.get("name", "").strip(), points=int(points))
        except ItemsealError as exc:
            self.show(resp, visit, errors={_field_of(exc, "sku"): str(exc)}, typed=form,
                      status=exc.status if exc.status < 500 else 422, params=req.params)
            return
        self.ctx.audit(visit, "product.add", f"product/{sku}", None, product_json(product))
        self.show(resp, visit, note=f"{sku}: {product.points}", params=req.params)


class ProductChange(OfficePage):
    """``POST .../products/{sku}``: a product's name and points."""

    def __init__(self, ctx, products: ProductsPage) -> None:
        super().__init__(ctx)
        self.products = products

    @page("products.write")
    def on_post(self, req, resp, visit: Visit, sku: str) -> None:
        store = ProductStore(self.ctx.client, clock=self.ctx.clock)
        before = product_json(store.get(visit.tenant, sku))
        changes: dict[str, object] = {}
        if visit.form.get("name", "").strip():
            changes["name"] = visit.form["name"].strip()
        try:
            raw = visit.form.get("points", "").strip()
            if raw:
                if not raw.isdigit():
                    raise InvalidField("points", "points are a whole number >= 0")
                changes["points"] = int(raw)
            after = product_json(store.update(visit.tenant, sku, **changes))
        except ItemsealError as exc:
            self.products.show(resp, visit, errors={sku: str(exc)},
                               status=exc.status if exc.status < 500 else 422,
                               params=req.params)
            return
        self.ctx.audit(visit, "product.update", f"product/{sku}", before, after)
        self.products.show(resp, visit, note=f"{sku}: {after['points']}", params=req.params)


class CampaignsPage(OfficePage):
    """``GET .../campaigns``: the points campaigns; ``POST`` adds one."""

    @page("campaigns.read")
    def on_get(self, req, resp, visit: Visit) -> None:
        self.show(resp, visit, params=req.params)

    def show(self, resp, visit: Visit, *, errors: dict | None = None,
             typed: dict | None = None, status: int = 200, note: str = "",
             params: Mapping | None = None) -> None:
        SettingsStore(self.ctx.client).raw(visit.tenant)
        found = CampaignStore(self.ctx.client, visit.tenant, clock=self.ctx.clock).list()
        listing = list_page([campaign_json(c) for c in found.values()], CAMPAIGN_SORTING,
                            params or {})
        self.ctx.render(resp, "campaigns.html", visit=visit, status=status, listing=listing,
                        errors=errors or {}, typed=typed or {}, note=note)

    @page("campaigns.write")
    def on_post(self, req, resp, visit: Visit) -> None:
        form = visit.form
        zone = SettingsStore(self.ctx.client).get(visit.tenant).timezone
        try:
            campaign_id = form.get("campaign_id", "").strip()
            if not campaign_id:
                raise InvalidField("campaign_id", "give the campaign an id")
            moments = []
            for name in ("starts_at", "ends_at"):
                try:
                    value = datetime.fromisoformat(form.get(name, "").strip())
                except ValueError:
                    raise InvalidField(name, "a date, YYYY-MM-DD") from None
                moments.append(value if value.tzinfo else value.replace(tzinfo=zone))
            bonus = form.get("bonus", "").strip() or "0"
            if not bonus.isdigit():
                raise InvalidField("bonus", "a whole number >= 0")
            added = CampaignStore(self.ctx.client, visit.tenant, clock=self.ctx.clock).add(
                Campaign(campaign_id, moments[0], moments[1],
                         multiplier_bp(form.get("multiplier", "").strip() or "1"), int(bonus)))
        except ItemsealError as exc:
            self.show(resp, visit, errors={_field_of(exc, "campaign_id"): str(exc)},
                      typed=form, status=exc.status if exc.status < 500 else 422,
                      params=req.params)
            return
        after = campaign_json(added)
        self.ctx.audit(visit, "campaign.add", f"campaign/{campaign_id}", None, after)
        self.show(resp, visit, note=f"{campaign_id} added", params=req.params)


class CampaignEnd(OfficePage):
    def __init__(self, ctx, campaigns: CampaignsPage) -> None:
        super().__init__(ctx)
        self.campaigns = campaigns

    @page("campaigns.write")
    def on_post(self, req, resp, visit: Visit, campaign_id: str) -> None:
        store = CampaignStore(self.ctx.client, visit.tenant, clock=self.ctx.clock)
        before = campaign_json(store.get(campaign_id))
        after = campaign_json(store.end(campaign_id))
        self.ctx.audit(visit, "campaign.end", f"campaign/{campaign_id}", before, after)
        self.campaigns.show(resp, visit, note=f"{campaign_id} ended", params=req.params)


class CarePage(OfficePage):
    """``GET``/``POST .../care``: birthday, reminder, tier and expiry greetings."""

    @page("care.read")
    def on_get(self, req, resp, visit: Visit) -> None:
        self.show(resp, visit, Care(self.ctx.client, visit.tenant).config())

    def show(self, resp, visit: Visit, config: dict, *, errors: dict | None = None,
             status: int = 200, note: str = "") -> None:
        self.ctx.render(resp, "care.html", visit=visit, status=status, config=config,
                        kinds=KINDS, defaults=DEFAULTS, errors=errors or {}, note=note)

    @page("care.write")
    def on_post(self, req, resp, visit: Visit) -> None:
        form = visit.form
        changes: dict[str, dict] = {}
        typed: dict[str, dict] = {}
        errors: dict[str, str] = {}
        for kind in KINDS:
            item: dict[str, object] = {"on": form.get(f"{kind}.on") == "1",
                                       "text": form.get(f"{kind}.text", "")}
            if "days" in DEFAULTS[kind]:
                raw = form.get(f"{kind}.days", "").strip()
                item["days"] = int(raw) if raw.isdigit() else raw
                if not raw.isdigit():
                    errors[f"{kind}.days"] = "a whole number of days >= 1"
            changes[kind] = item
            typed[kind] = item
        store = Care(self.ctx.client, visit.tenant)
        if not errors:
            before = store.config()
            try:
                after = store.configure(changes)
            except ItemsealError as exc:
                field = (getattr(exc, "field", "") or "").removeprefix("care.")
                errors[field or "birthday.text"] = str(exc)
            else:
                self.ctx.audit(visit, "care.set", "care", before, after)
                self.show(resp, visit, after, note="Saved.")
                return
        self.show(resp, visit, typed, errors=errors, status=422)


def routes(ctx) -> list[tuple[str, object]]:
    products, campaigns = ProductsPage(ctx), CampaignsPage(ctx)
    return [
        ("/{tenant}/products", products),
        ("/{tenant}/products/{sku}", ProductChange(ctx, products)),
        ("/{tenant}/campaigns", campaigns),
        ("/{tenant}/campaigns/{campaign_id}/end", CampaignEnd(ctx, campaigns)),
        ("/{tenant}/care", CarePage(ctx)),
    ]
