"""The office's rewards page: the catalogue with its stock; the manager adds items, stock, pauses.

Actions as in the admin API (``admin_rewards.py``): ``rewards.read`` (manager,
support) and ``rewards.write`` (manager); audited with the same action names
(``reward.add``, ``reward.set``). Times without an offset are UTC, as there.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from codegen.exc import ItemsealError
from codegen.times import iso
from points_bridge.rewards import KINDS, LIVE, PAUSED, Reward, RewardStore
from points_bridge.settings import SettingsStore
from verify_api.admin.listing import Sorting, list_page
from verify_api.exc import InvalidField
from verify_api.resources.admin_rewards import reward_json
from verify_api.resources.office import OfficePage, Visit, page

FIELDS = {"starts_at": "starts_at", "ends_at": "ends_at", "add_stock": "stock"}
REWARD_SORTING = Sorting({  # rows are reward_json records; the store lists by points, item
    "item": lambda r: r["item"], "kind": lambda r: r["kind"],
    "name": lambda r: r["name"].casefold(), "points": lambda r: r["points"],
    "stock": lambda r: r["stock"], "status": lambda r: r["status"],
}, default="points")


def _field_of(exc: ItemsealError, default: str) -> str:
    field = (getattr(exc, "field", None) or default).split(".")[-1]
    return FIELDS.get(field, field)


def _whole(form: dict, name: str, *, default: str = "", signed: bool = False) -> int:
    raw = form.get(name, "").strip() or default
    digits = raw[1:] if signed and raw[:1] in "+-" else raw
    if not digits.isdigit():
        raise InvalidField(name, "a whole number" + ("" if signed else " >= 0"))
    return int(raw)


def _moment(form: dict, name: str) -> int | None:
    text = form.get(name, "").strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidField(name, "a date or time, YYYY-MM-DD or ISO") from None
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp())


class RewardsPage(OfficePage):
    """``GET .../rewards``: the catalogue with stock; ``POST`` adds an item (``reward.add``)."""

    @page("rewards.read")
    def on_get(self, req, resp, visit: Visit) -> None:
        self.show(resp, visit, params=req.params)

    def store(self, visit: Visit) -> RewardStore:
        return RewardStore(self.ctx.client, visit.tenant, key_store=self.ctx.key_store,
                           clock=self.ctx.clock)

    def show(self, resp, visit: Visit, *, errors: dict | None = None,
             typed: dict | None = None, status: int = 200, note: str = "",
             params: Mapping | None = None) -> None:
        items = [reward_json(r, s) for r, s in self.store(visit).list()]
        listing = list_page(items, REWARD_SORTING, params or {})
        tiers = [t.name for t in SettingsStore(self.ctx.client).get(visit.tenant).ladder.tiers]
        self.ctx.render(resp, "rewards.html", visit=visit, status=status, listing=listing,
                        kinds=KINDS, tiers=tiers, paused=PAUSED, errors=errors or {},
                        typed=typed or {}, note=note, iso=iso)

    @page("rewards.write")
    def on_post(self, req, resp, visit: Visit) -> None:
        form = visit.form
        try:
            item = form.get("item", "").strip().lower()
            if not item:
                raise InvalidField("item", "give the reward an id")
            reward = Reward(
                item=item, kind=form.get("kind", "").strip() or "gift",
                name=form.get("name", "").strip(),
                points=_whole(form, "points"),
                tiers=tuple(t.strip() for t in form.get("tiers", "").split(",") if t.strip()),
                starts_at=_moment(form, "starts_at"), ends_at=_moment(form, "ends_at"),
                grants=form.get("grants", "").strip() or None,
                coupon_days=_whole(form, "coupon_days", default="30"),
                name_en=form.get("name_en", "").strip(),
            )
            stock = _whole(form, "stock")
            added, left = self.store(visit).add(reward, stock)
        except ItemsealError as exc:
            self.show(resp, visit, errors={_field_of(exc, "item"): str(exc)}, typed=form,
                      status=exc.status if exc.status < 500 else 422, params=req.params)
            return
        after = reward_json(added, left)
        self.ctx.audit(visit, "reward.add", f"reward/{added.item}", None, after)
        self.show(resp, visit, note=f"{added.item} added", params=req.params)


class RewardChange(OfficePage):
    """``POST .../rewards/{item}``: add (or remove) stock, pause or resume (``reward.set``)."""

    def __init__(self, ctx, rewards: RewardsPage) -> None:
        super().__init__(ctx)
        self.rewards = rewards

    @page("rewards.write")
    def on_post(self, req, resp, visit: Visit, item: str) -> None:
        store = self.rewards.store(visit)
        before = store.get(item)
        form = visit.form
        try:
            status = form.get("status", "").strip() or None
            if status not in (None, LIVE, PAUSED):
                raise InvalidField("status", f"a reward is {LIVE} or {PAUSED}")
            add_stock = _whole(form, "add_stock", default="0", signed=True)
            before_json = reward_json(before, store.stock(before.item))
            after, left = store.set(before.item, add_stock=add_stock or None, status=status)
        except ItemsealError as exc:
            self.rewards.show(resp, visit, errors={before.item: str(exc)},
                              status=exc.status if exc.status < 500 else 422,
                              params=req.params)
            return
        after_json = reward_json(after, left)
        if after_json != before_json:
            self.ctx.audit(visit, "reward.set", f"reward/{after.item}", before_json, after_json)
        self.rewards.show(resp, visit, note=f"{after.item}: {left} · {after.status}",
                          params=req.params)


def routes(ctx) -> list[tuple[str, object]]:
    rewards = RewardsPage(ctx)
    return [
        ("/{tenant}/rewards", rewards),
        ("/{tenant}/rewards/{item}", RewardChange(ctx, rewards)),
    ]
