"""The rewards catalogue, redemptions that take stock and points exactly once, and coupons.

A reward (``Reward``) is a gift, a coupon or a tier upgrade with a points
price, an optional tier restriction, a validity window and a stock. What a
member may redeem is pure (``why_not``); the rest is the store.

**Two slots, one redemption.** The stock lives in the tenant slot
(``PointsKeys.reward_stock``), the balance in the member's shard; no script
can touch both on a cluster. So a redemption is two steps, each atomic, tied
together by a redemption id derived from the member's card and the caller's
idempotency key:

1. ``lua/reward_reserve.lua`` takes one item of stock and records the
   redemption as ``held`` — or says the id was met before (then nothing is
   taken again), or that nothing is left (``OutOfStock``, nothing debited).
2. ``lua/ledger_apply.lua`` debits the price with the idempotency key
   ``reward:<id>`` (a retry finds the first entry, never a second debit).
3. ``lua/reward_settle.lua`` moves ``held`` to ``done`` (and issues the
   coupon of a coupon reward), or — when the debit was refused (balance,
   frozen member) — to ``released``, giving the item back.

A crash between 1 and 3 leaves a ``held`` redemption: the same request again
finishes it (steps 2 and 3 are idempotent), and ``settle_held`` finishes or
releases those older than ``HOLD_SECONDS`` (the ledger's idem hash says
whether the debit landed). Stock never goes below zero (the reserve script
checks and takes in one step), the balance never below zero (the ledger
script checks), and 50 concurrent redemptions of the last item give exactly
one success.

**Cancelling** (``cancel``) moves ``done`` to ``cancelled`` — giving the item
back and voiding the coupon, refused once the coupon is used — then credits
the points back with the idempotency key ``reward-cancel:<id>``: both come
back, once, whatever retries. A cancelled tier upgrade drops its pin (the
tier follows the points again from the next credit). Refunded points carry
no expiry lot: they do not expire.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import redis

from codegen.amounts import MAX_ENTRY_POINTS, is_points
from codegen.codes import DEFAULT_PROFILE
from codegen.coupons import coupon_signer, parse_coupon
from codegen.exc import UnknownKey
from codegen.keys import KeyStore
from points_bridge.exc import (
    BadInput,
    CouponRefused,
    InsufficientPoints,
    MemberInactive,
    OutOfStock,
    RedemptionRefused,
    RewardExists,
    RewardUnavailable,
    UnknownCoupon,
    UnknownMember,
    UnknownRedemption,
    UnknownReward,
)
from points_bridge.ledger import Ledger
from points_bridge.members import ACTIVE, Member, MemberStore, earned_for_tier
from points_bridge.scoped import TenantScoped
from points_bridge.settings import PointsSettings
from points_bridge.tiers import tier_for

GIFT, COUPON, TIER = "gift", "coupon", "tier"
KINDS = (GIFT, COUPON, TIER)
LIVE, PAUSED = "active", "paused"
HELD, DONE, RELEASED, CANCELLED = "held", "done", "released", "cancelled"
ITEM_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
MAX_STOCK = 10**9
MAX_NAME = 80
DEFAULT_COUPON_DAYS = 30
HOLD_SECONDS = 600
DAY = 86400


def check_item_id(item: str) -> str:
    """An item id as members text it (``DH#<item>``): lower-case letters, digits, ``-``/``_``."""
    text = item.strip().lower() if isinstance(item, str) else item
    if not isinstance(text, str) or not ITEM_ID.fullmatch(text):
        raise BadInput("item", item, "a reward id is 1-32 letters, digits, '-' or '_'")
    return text


@dataclass(frozen=True)
class Reward:
    """One catalogue item. ``tiers``: who may redeem (empty: everyone); ``grants``: the
    tier a tier upgrade pins (a floor, like a manager's pin); times are unix seconds."""

    item: str
    kind: str
    name: str
    points: int
    tiers: tuple[str, ...] = ()
    starts_at: int | None = None
    ends_at: int | None = None
    status: str = LIVE
    grants: str | None = None
    coupon_days: int = DEFAULT_COUPON_DAYS
    name_en: str = ""

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["tiers"] = list(self.tiers)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Reward:
        return cls(**{**data, "tiers": tuple(data.get("tiers") or ())})

    def label(self, language: str = "zh") -> str:
        return self.name_en if language == "en" and self.name_en else self.name


def check_reward(reward: Reward, tier_names: tuple[str, ...]) -> Reward:
    """Refuse a reward that could not be redeemed as written (pure)."""
    check_item_id(reward.item)
    if reward.kind not in KINDS:
        raise BadInput("kind", reward.kind, f"a reward is one of {', '.join(KINDS)}")
    if not reward.name.strip() or len(reward.name) > MAX_NAME or len(reward.name_en) > MAX_NAME:
        raise BadInput("name", reward.name, f"a name is 1-{MAX_NAME} characters")
    if not is_points(reward.points, 1, MAX_ENTRY_POINTS):
        raise BadInput("points", reward.points, f"a price is a whole number from 1 to "
                                                f"{MAX_ENTRY_POINTS}")
    for tier in reward.tiers:
        if tier not in tier_names:
            raise BadInput("tiers", tier, f"not a tier of the ladder ({', '.join(tier_names)})")
    if reward.kind == TIER:
        if reward.grants not in tier_names:
            raise BadInput("grants", reward.grants,
                           f"a tier upgrade names the tier it grants ({', '.join(tier_names)})")
    elif reward.grants is not None:
        raise BadInput("grants", reward.grants, "only a tier upgrade grants a tier")
    if reward.starts_at is not None and reward.ends_at is not None \
            and reward.ends_at <= reward.starts_at:
        raise BadInput("ends_at", reward.ends_at, "the window ends before it starts")
    if not is_points(reward.coupon_days, 1, 3660):
        raise BadInput("coupon_days", reward.coupon_days, "a coupon lasts 1 to 3660 days")
    if reward.status not in (LIVE, PAUSED):
        raise BadInput("status", reward.status, f"a reward is {LIVE} or {PAUSED}")
    return reward


def why_not(reward: Reward, tier: str, now: int) -> str | None:
    """Why a member of ``tier`` cannot redeem ``reward`` at ``now``; None when they can (pure).

    Stock and balance are not looked at: the scripts decide those atomically.
    """
    if reward.status != LIVE:
        return "it is paused"
    if reward.starts_at is not None and now < reward.starts_at:
        return "it is not available yet"
    if reward.ends_at is not None and now >= reward.ends_at:
        return "it is no longer available"
    if reward.tiers and tier not in reward.tiers:
        return f"it is for {', '.join(reward.tiers)} members"
    return None


def redemption_id(card: str, key: str) -> str:
    """The id of a member's redemption under an idempotency key (one per card and key)."""
    return "rd_" + hashlib.sha256(f"{card}\n{key}".encode()).hexdigest()[:20]


@dataclass(frozen=True)
class Redemption:
    """A redemption as the store holds it; ``duplicate``: this call found it done before."""

    redemption_id: str
    card: str
    item: str
    name: str
    kind: str
    points: int
    at: int
    state: str
    entry_id: str | None = None
    coupon: str | None = None
    duplicate: bool = False
    balance: int | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Coupon:
    code: str
    card: str
    item: str
    name: str
    redemption_id: str
    issued_at: int
    expires_at: int
    state: str  # issued | used | void | expired
    used_at: int | None = None
    shop: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Parsed:
    state: str
    entry: str | None
    coupon: str | None
    extra: dict = field(default_factory=dict)


def _state(raw: bytes | str) -> _Parsed:
    text = raw.decode() if isinstance(raw, bytes) else raw
    state, entry, coupon = text.split(" ")
    return _Parsed(state, None if entry == "-" else entry, None if coupon == "-" else coupon)


def _text(value: bytes | str | None) -> str:
    return value.decode() if isinstance(value, bytes) else (value or "")


class RewardStore(TenantScoped):
    """One tenant's catalogue, redemptions and coupons (CLI, admin routes, SMS, member page).

    ``key_store`` is needed only to issue and check coupons (the tenant key).
    """

    def __init__(self, client: redis.Redis, tenant: str, *, key_store: KeyStore | None = None,
                 **kwargs: Any) -> None:
        super().__init__(client, tenant, **kwargs)
        self._key_store = key_store

    # -- catalogue ----------------------------------------------------------------------
    def _settings(self) -> PointsSettings:
        return MemberStore(self._redis, self.tenant, clock=self._clock).settings()

    def add(self, reward: Reward, stock: int) -> tuple[Reward, int]:
        """Add an item with its stock; an id taken is ``RewardExists``."""
        check_reward(reward, self._settings().ladder.names)
        _check_stock(stock)
        if not self._redis.hsetnx(self.keys.rewards, reward.item, json.dumps(reward.to_json())):
            raise RewardExists(self.tenant, reward.item)
        self._redis.hset(self.keys.reward_stock, reward.item, stock)
        return reward, stock

    def get(self, item: str) -> Reward:
        raw = self._redis.hget(self.keys.rewards, check_item_id(item))
        if raw is None:
            raise UnknownReward(self.tenant, item)
        return Reward.from_json(json.loads(raw))

    def stock(self, item: str) -> int:
        return int(self._redis.hget(self.keys.reward_stock, item) or 0)

    def list(self) -> list[tuple[Reward, int]]:
        """Every item with its stock, by price then id."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.hgetall(self.keys.rewards)
        pipe.hgetall(self.keys.reward_stock)
        raw, stock = pipe.execute()
        items = [Reward.from_json(json.loads(v)) for v in raw.values()]
        return [(r, int(stock.get(r.item.encode(), 0))) for r in
                sorted(items, key=lambda r: (r.points, r.item))]

    def set(self, item: str, *, stock: int | None = None, add_stock: int | None = None,
            **changes: Any) -> tuple[Reward, int]:
        """Change an item's fields (``None`` leaves one as it is) or its stock.

        ``stock`` sets the count left; ``add_stock`` adds (or, negative,
        removes) items atomically beside concurrent redemptions.
        """
        before = self.get(item)
        clear = {k for k, v in changes.items() if v == ""}
        changes = {k: v for k, v in changes.items() if v is not None and k not in clear}
        after = replace(before, **changes, **{k: None for k in clear})
        check_reward(after, self._settings().ladder.names)
        if after != before:
            self._redis.hset(self.keys.rewards, after.item, json.dumps(after.to_json()))
        if stock is not None:
            _check_stock(stock)
            self._redis.hset(self.keys.reward_stock, after.item, stock)
        if add_stock:
            if not is_points(add_stock, -MAX_STOCK, MAX_STOCK):
                raise BadInput("add_stock", add_stock, f"at most {MAX_STOCK} either way")
            left = self._redis.hincrby(self.keys.reward_stock, after.item, add_stock)
            if left < 0:  # never below zero: take back what could not be removed
                self._redis.hincrby(self.keys.reward_stock, after.item, -left)
        return after, self.stock(after.item)

    def affordable(self, member: Member, settings: PointsSettings, now: int
                   ) -> list[tuple[Reward, int, str | None]]:
        """Every item with its stock and why the member cannot redeem it (None: they can)."""
        tier = self._tier(member, settings, now)
        out = []
        for reward, stock in self.list():
            reason = why_not(reward, tier, now)
            if reason is None and stock < 1:
                reason = "out of stock"
            if reason is None and member.balance < reward.points:
                reason = f"needs {reward.points} points"
            out.append((reward, stock, reason))
        return out

    @staticmethod
    def _tier(member: Member, settings: PointsSettings, now: int) -> str:
        pin = member.pinned_tier if member.pinned_tier in settings.ladder.names else None
        return tier_for(earned_for_tier(member, settings, now), settings.ladder, pin).name

    # -- redemptions --------------------------------------------------------------------
    def redeem(self, card: str, item: str, *, key: str | None = None,
               channel: str = "api") -> Redemption:
        """Redeem one ``item`` for the member of ``card``, exactly once per ``key``.

        Raises ``OutOfStock``, ``InsufficientPoints``, ``MemberInactive``,
        ``RewardUnavailable``; on every refusal neither stock nor points moved.
        """
        now = int(self._clock())
        key = key or uuid.uuid4().hex
        members = MemberStore(self._redis, self.tenant, clock=self._clock)
        member = members.find(card=card)
        rid = redemption_id(member.card, key)
        reward = self.get(item)
        facts = {"card": member.card, "item": reward.item, "name": reward.name,
                 "kind": reward.kind, "points": str(reward.points), "at": str(now),
                 "channel": channel, "key": key}
        existing = self._facts(rid)
        if existing is None:
            settings = members.settings()
            if member.status != ACTIVE:
                raise MemberInactive(member.card, member.status, "redeem rewards")
            reason = why_not(reward, self._tier(member, settings, now), now)
            if reason:
                raise RewardUnavailable(reward.item, reason)
            if member.balance < reward.points:
                raise InsufficientPoints(member.card, member.balance, reward.points)
        keys = self.keys
        reply = self._scripts.reward_reserve(
            keys=[keys.reward_stock, keys.redemptions, keys.redemption_states,
                  keys.member_redemptions(member.card)],
            args=[reward.item, rid, json.dumps(facts), now])
        outcome = _text(reply[0])
        if outcome == "out":
            raise OutOfStock(reward.item)
        if outcome == "seen":
            seen = _state(reply[1])
            facts = json.loads(reply[2])
            if facts["item"] != reward.item:
                raise RedemptionRefused(
                    f"key {key!r} was already used to redeem {facts['item']!r}: use a new key")
            if seen.state != HELD:
                if seen.state == RELEASED:
                    raise RedemptionRefused(
                        f"redemption {rid} was refused before (see the member's history): "
                        "use a new key to try again")
                return self._redemption(rid, facts, seen, duplicate=True)
        return self._finish(rid, facts, reward)

    def _finish(self, rid: str, facts: Mapping[str, str], reward: Reward) -> Redemption:
        """Debit a held redemption and settle it (steps 2 and 3 of the module's doc)."""
        card, points = facts["card"], int(facts["points"])
        ledger = Ledger(self._redis, self.tenant, clock=self._clock)
        extra: dict[str, Any] = {}
        if reward.kind == TIER and reward.grants:
            extra = {"tier": reward.grants, "member_set": {"pin": reward.grants}}
        try:
            posted = ledger.post(
                card, kind="redeem", idem=f"reward:{rid}",
                body={"item": reward.item, "points": points, "redemption": rid},
                delta=-points, need_active=True, at=int(facts["at"]),
                fields={"reason": f"reward {reward.item}", "item": reward.item,
                        "redemption": rid}, **extra)
        except (InsufficientPoints, MemberInactive, BadInput, UnknownMember):
            self._settle(rid, reward.item, HELD, RELEASED, give_back=True)
            raise
        coupon = expires = None
        if reward.kind == COUPON:
            coupon = self._new_coupon()
            expires = int(self._clock()) + reward.coupon_days * DAY
        state = self._settle(rid, reward.item, HELD, DONE, entry=posted.entry.entry_id,
                             coupon=coupon, coupon_facts={
                                 "card": card, "item": reward.item, "name": reward.name,
                                 "redemption": rid, "issued_at": str(int(self._clock())),
                                 "expires_at": str(expires or 0)}, expires=expires or 0)
        return self._redemption(rid, facts, state, duplicate=posted.duplicate,
                                balance=posted.entry.balance)

    def _settle(self, rid: str, item: str, from_state: str, to_state: str, *,
                give_back: bool = False, entry: str | None = None, coupon: str | None = None,
                coupon_facts: Mapping[str, str] | None = None, expires: int = 0) -> _Parsed:
        keys = self.keys
        facts = self._facts(rid) or {}
        card = facts.get("card", "0")
        why, raw = self._scripts.reward_settle(
            keys=[keys.reward_stock, keys.redemption_states, keys.coupons, keys.coupon_states,
                  keys.member_coupons(card)],
            args=[rid, item, from_state, to_state, "1" if give_back else "0", entry or "-",
                  int(self._clock()), coupon or "", json.dumps(coupon_facts or {}), expires])
        why = _text(why)
        if why == "missing":
            raise UnknownRedemption(self.tenant, rid)
        if why == "coupon_used":
            raise RedemptionRefused(f"redemption {rid}: its coupon was used, it cannot be "
                                    "cancelled")
        if why == "state":
            raise RedemptionRefused(f"redemption {rid} is {_state(raw).state}: cannot make it "
                                    f"{to_state}")
        return _state(raw)

    def _new_coupon(self) -> str:
        if self._key_store is None:
            raise RuntimeError("issuing a coupon needs the key store")
        serial = self._redis.incr(self.keys.coupon_serial)
        info = self._key_store.current(self.tenant)
        signer = coupon_signer(self._key_store.signer(self.tenant, info.key_id,
                                                      DEFAULT_PROFILE))
        return signer.code(serial)

    def cancel(self, card: str, rid: str) -> Redemption:
        """Give the item back and the points back, once; refused once its coupon is used."""
        facts = self._facts(rid)
        if facts is None or facts["card"] != MemberStore(self._redis, self.tenant).find(
                card=card).card:
            raise UnknownRedemption(self.tenant, rid)
        state = self._settle(rid, facts["item"], DONE, CANCELLED, give_back=True)
        points = int(facts["points"])
        unpin = {"member_set": {"pin": ""}} if facts.get("kind") == TIER else {}
        posted = Ledger(self._redis, self.tenant, clock=self._clock).post(
            facts["card"], kind="refund", idem=f"reward-cancel:{rid}",
            body={"redemption": rid, "points": points}, delta=points,
            fields={"reason": f"cancelled reward {facts['item']}", "item": facts["item"],
                    "redemption": rid}, **unpin)
        return self._redemption(rid, facts, state, duplicate=posted.duplicate,
                                balance=posted.entry.balance)

    def redemptions(self, card: str, count: int = 50) -> list[Redemption]:
        """A member's redemptions, newest first."""
        ids = [_text(i) for i in self._redis.zrevrange(self.keys.member_redemptions(card), 0,
                                                        count - 1)]
        if not ids:
            return []
        facts = self._redis.hmget(self.keys.redemptions, ids)
        states = self._redis.hmget(self.keys.redemption_states, ids)
        return [self._redemption(rid, json.loads(f), _state(s))
                for rid, f, s in zip(ids, facts, states, strict=True) if f and s]

    def redemption(self, rid: str) -> Redemption:
        facts = self._facts(rid)
        raw = self._redis.hget(self.keys.redemption_states, rid)
        if facts is None or raw is None:
            raise UnknownRedemption(self.tenant, rid)
        return self._redemption(rid, facts, _state(raw))

    def settle_held(self, older_than: int = HOLD_SECONDS) -> tuple[int, int]:
        """Finish or release redemptions left ``held`` by a crash; return (done, released).

        A held redemption whose debit landed (the ledger's idem hash has
        ``reward:<id>``) becomes done; one without is released and its item
        returns. Only those older than ``older_than`` seconds are touched, so
        a request still running is left alone.
        """
        now = int(self._clock())
        done = released = 0
        ledger = Ledger(self._redis, self.tenant, clock=self._clock)
        for rid, raw in self._redis.hscan_iter(self.keys.redemption_states):
            if not _text(raw).startswith(HELD + " "):
                continue
            rid = _text(rid)
            facts = self._facts(rid)
            if facts is None or now - int(facts["at"]) < older_than:
                continue
            entry = ledger.lookup(facts["card"], f"reward:{rid}")
            if entry is None:
                self._settle(rid, facts["item"], HELD, RELEASED, give_back=True)
                released += 1
            else:
                self._finish(rid, facts, self.get(facts["item"]))
                done += 1
        return done, released

    def _facts(self, rid: str) -> dict[str, str] | None:
        raw = self._redis.hget(self.keys.redemptions, rid)
        return json.loads(raw) if raw else None

    def _redemption(self, rid: str, facts: Mapping[str, str], state: _Parsed, *,
                    duplicate: bool = False, balance: int | None = None) -> Redemption:
        return Redemption(rid, facts["card"], facts["item"], facts.get("name", ""),
                          facts.get("kind", GIFT), int(facts["points"]), int(facts["at"]),
                          state.state, state.entry, state.coupon, duplicate, balance)

    # -- coupons --------------------------------------------------------------------------
    def coupons(self, card: str, count: int = 50) -> list[Coupon]:
        codes = [_text(c) for c in self._redis.zrevrange(self.keys.member_coupons(card), 0,
                                                          count - 1)]
        return [self._coupon(code) for code in codes]

    def coupon(self, text: str) -> Coupon:
        """The coupon a cashier typed; a mistyped, forged or unknown one says so."""
        code = self._authentic(text)
        return self._coupon(code)

    def use_coupon(self, text: str, shop: str = "") -> Coupon:
        """Use a coupon once; ``CouponRefused`` says used, expired or void."""
        code = self._authentic(text)
        now = int(self._clock())
        why, state = self._scripts.coupon_redeem(keys=[self.keys.coupon_states],
                                                 args=[code, now, shop.strip() or "-"])
        why = _text(why)
        if why == "unknown":
            raise UnknownCoupon("coupon_unknown", f"coupon {code} was never issued by "
                                                  f"{self.tenant!r}")
        coupon = self._coupon(code)
        if why == "already_used":
            raise CouponRefused("coupon_used", f"coupon {code} was already used "
                                               f"(at {coupon.used_at})")
        if why == "void":
            raise CouponRefused("coupon_void", f"coupon {code} was cancelled")
        if why == "expired":
            raise CouponRefused("coupon_expired", f"coupon {code} expired")
        return coupon

    def _authentic(self, text: str) -> str:
        parsed = parse_coupon(text or "")
        if not hasattr(parsed, "digits"):
            raise UnknownCoupon(f"coupon_{parsed.verdict.value}",
                                f"{text!r} is not a coupon code ({parsed.verdict.value}): "
                                "check the digits")
        if self._key_store is None:
            raise RuntimeError("checking a coupon needs the key store")
        try:
            product = self._key_store.signer(self.tenant, parsed.key_id, DEFAULT_PROFILE)
        except UnknownKey:  # a key id the tenant never had: made up
            product = None
        if product is None or coupon_signer(product).verify(parsed) is None:
            raise UnknownCoupon("coupon_forged", f"coupon {parsed.digits} is not genuine: "
                                                 "its signature does not hold")
        return parsed.digits

    def _coupon(self, code: str) -> Coupon:
        pipe = self._redis.pipeline(transaction=False)
        pipe.hget(self.keys.coupons, code)
        pipe.hget(self.keys.coupon_states, code)
        raw, state = pipe.execute()
        if raw is None or state is None:
            raise UnknownCoupon("coupon_unknown", f"coupon {code} was never issued by "
                                                  f"{self.tenant!r}")
        facts = json.loads(raw)
        kind, _, rest = _text(state).partition(" ")
        used_at = shop = None
        if kind == "used":
            at, _, where = rest.partition(" ")
            used_at, shop = int(at), (None if where == "-" else where)
        expires = int(facts["expires_at"])
        if kind == "issued" and expires and int(self._clock()) >= expires:
            kind = "expired"
        return Coupon(code, facts["card"], facts["item"], facts.get("name", ""),
                      facts["redemption"], int(facts["issued_at"]), expires, kind, used_at, shop)


def _check_stock(stock: int) -> None:
    if not is_points(stock, 0, MAX_STOCK):
        raise BadInput("stock", stock, f"stock is a whole number from 0 to {MAX_STOCK}")
