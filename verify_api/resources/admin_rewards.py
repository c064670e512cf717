"""Admin routes for the rewards catalogue, members' redemptions and coupons at a till.

Synchronous like every admin route (``resources.Threaded``): they drive
``points_bridge/rewards.py``, the store the CLI, the SMS keyword and the
member page use.
"""

from __future__ import annotations

from datetime import UTC, datetime

from codegen.times import iso
from points_bridge.members import MemberStore
from points_bridge.rewards import Coupon, Redemption, Reward, RewardStore
from verify_api.exc import InvalidField
from verify_api.resources.admin import AdminContext, AdminResource, fields
from verify_api.resources.admin_bodies import Fields, query_int


def reward_json(reward: Reward, stock: int) -> dict:
    return {**reward.to_json(), "stock": stock, "starts_at": iso(reward.starts_at),
            "ends_at": iso(reward.ends_at)}


def redemption_json(r: Redemption) -> dict:
    return {**r.to_json(), "at": iso(r.at)}


def coupon_json(c: Coupon) -> dict:
    return {**c.to_json(), "issued_at": iso(c.issued_at), "expires_at": iso(c.expires_at or None),
            "used_at": iso(c.used_at)}


def _moment(body: Fields, name: str) -> int | None | str:
    """An ISO time (UTC when no offset); ``null`` clears it (``""``), absent is None."""
    present = body.has(name)
    text = body.str(name, limit=40)
    if text is None:
        return "" if present else None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidField(name, f"{name!r} is an ISO date or time, e.g. 2026-06-01") from None
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp())


class _Base(AdminResource):
    def store(self, tenant: str) -> RewardStore:
        return RewardStore(self.ctx.client, tenant, key_store=self.ctx.key_store,
                           clock=self.ctx.clock)


class Rewards(_Base):
    """``GET .../rewards`` the catalogue; ``POST`` adds an item."""

    actions = {"GET": "rewards.read", "POST": "rewards.write"}

    def on_get(self, req, resp, tenant: str) -> None:
        resp.media = {"rewards": [reward_json(r, s) for r, s in self.store(tenant).list()]}

    def on_post(self, req, resp, tenant: str) -> None:
        body = fields(req)
        reward = Reward(
            item=(body.str("item", required=True, limit=32) or "").strip().lower(),
            kind=body.str("kind", limit=16) or "gift",
            name=body.str("name", required=True, limit=80) or "",
            points=body.int("points", required=True, minimum=1) or 0,
            tiers=tuple(body.str_list("tiers") or ()),
            starts_at=_moment(body, "starts_at") or None,
            ends_at=_moment(body, "ends_at") or None,
            grants=body.str("grants", limit=32),
            coupon_days=body.int("coupon_days", minimum=1) or 30,
            name_en=body.str("name_en", limit=80) or "",
        )
        stock = body.int("stock", required=True, minimum=0) or 0
        body.done()
        added, left = self.store(tenant).add(reward, stock)
        after = reward_json(added, left)
        self.ctx.audit(req, tenant, "reward.add", f"reward/{added.item}", None, after)
        resp.status = 201
        resp.media = after


class RewardOne(_Base):
    """``GET|PATCH .../rewards/{item}``: one item; PATCH changes the fields given."""

    actions = {"GET": "rewards.read", "PATCH": "rewards.write"}

    def on_get(self, req, resp, tenant: str, item: str) -> None:
        store = self.store(tenant)
        reward = store.get(item)
        resp.media = reward_json(reward, store.stock(reward.item))

    def on_patch(self, req, resp, tenant: str, item: str) -> None:
        body = fields(req)
        store = self.store(tenant)
        before = store.get(item)
        changes = {
            "name": body.str("name", limit=80), "name_en": body.str("name_en", limit=80),
            "points": body.int("points", minimum=1), "status": body.str("status", limit=16),
            "grants": body.str("grants", limit=32), "coupon_days": body.int("coupon_days"),
            "starts_at": _moment(body, "starts_at"), "ends_at": _moment(body, "ends_at"),
        }
        tiers = body.str_list("tiers")
        if tiers is not None:
            changes["tiers"] = tuple(tiers)
        stock, add_stock = body.int("stock", minimum=0), body.int("add_stock")
        body.done()
        before_json = reward_json(before, store.stock(before.item))
        after, left = store.set(before.item, stock=stock, add_stock=add_stock, **changes)
        after_json = reward_json(after, left)
        self.ctx.audit(req, tenant, "reward.set", f"reward/{after.item}", before_json,
                       after_json)
        resp.media = after_json


class Redemptions(_Base):
    """``GET .../members/{card}/redemptions`` (newest first); ``POST`` ``{"item", "key"?}``
    redeems one item: points and stock taken once per key, never below zero."""

    actions = {"GET": "members.read", "POST": "members.write"}

    def on_get(self, req, resp, tenant: str, card: str) -> None:
        member = MemberStore(self.ctx.client, tenant).find(card=card)
        count = query_int(req.params, "count", 50, 1, 1000)
        resp.media = {"redemptions": [redemption_json(r) for r in
                                      self.store(tenant).redemptions(member.card, count)]}

    def on_post(self, req, resp, tenant: str, card: str) -> None:
        body = fields(req)
        item = body.str("item", required=True, limit=32) or ""
        key = body.str("key", limit=128)
        body.done()
        member = MemberStore(self.ctx.client, tenant).find(card=card)
        done = self.store(tenant).redeem(member.card, item, key=key, channel="admin")
        out = redemption_json(done)
        if not done.duplicate:
            self.ctx.audit(req, tenant, "member.redemption", f"member/{member.card}", None, out)
        resp.status = 200 if done.duplicate else 201
        resp.media = out


class RedemptionCancel(_Base):
    """``POST .../members/{card}/redemptions/{redemption_id}/cancel``: points and item back."""

    actions = {"POST": "members.write"}

    def on_post(self, req, resp, tenant: str, card: str, redemption_id: str) -> None:
        fields(req).done()
        done = self.store(tenant).cancel(card, redemption_id)
        out = redemption_json(done)
        if not done.duplicate:
            self.ctx.audit(req, tenant, "member.redemption.cancel", f"member/{done.card}", None,
                           out)
        resp.media = out


class CouponOne(_Base):
    """``GET .../coupons/{code}``: issued, used, expired or void; mistyped or forged is 404."""

    actions = {"GET": "coupons.read"}

    def on_get(self, req, resp, tenant: str, code: str) -> None:
        resp.media = coupon_json(self.store(tenant).coupon(code))


class CouponRedeem(_Base):
    """``POST .../coupons/{code}/redeem`` ``{"shop"?}``: use it once (the cashier's)."""

    actions = {"POST": "coupons.redeem"}

    def on_post(self, req, resp, tenant: str, code: str) -> None:
        body = fields(req)
        shop = body.str("shop", limit=64) or ""
        body.done()
        used = self.store(tenant).use_coupon(code, shop)
        out = coupon_json(used)
        self.ctx.audit(req, tenant, "coupon.redeem", f"coupon/{used.code}", None, out)
        resp.media = out


def routes(ctx: AdminContext) -> list[tuple[str, AdminResource]]:
    return [
        ("/rewards", Rewards(ctx)),
        ("/rewards/{item}", RewardOne(ctx)),
        ("/members/{card}/redemptions", Redemptions(ctx)),
        ("/members/{card}/redemptions/{redemption_id}/cancel", RedemptionCancel(ctx)),
        ("/coupons/{code}", CouponOne(ctx)),
        ("/coupons/{code}/redeem", CouponRedeem(ctx)),
    ]
