"""Rewards, redemptions and coupons through the real interfaces, on a real redis-server."""

from __future__ import annotations

import asyncio
import json

import pytest
from falcon.testing import ASGIConductor
from helpers.aio import run
from helpers.channels_world import make_world
from helpers.cli_runner import run as cli
from hypothesis import given
from hypothesis import strategies as st

from codegen.codes import damm_check_digit
from codegen.coupons import COUPON_15, parse_coupon
from points_bridge.exc import BadInput
from points_bridge.ledger import Ledger
from points_bridge.members import MemberStore
from points_bridge.rewards import (
    KINDS,
    PAUSED,
    Reward,
    RewardStore,
    check_reward,
    why_not,
)
from tests.helpers.master import TEST_MASTER
from verify_api.admin.auth import TokenStore
from verify_api.app import create_app

ADMIN = "/v1/admin/tenants/ACME"
PHONE = "13812345678"


# -- pure ---------------------------------------------------------------------------------
@given(st.integers(0, 2000), st.one_of(st.none(), st.integers(0, 2000)),
       st.one_of(st.none(), st.integers(0, 2000)), st.sampled_from(["silver", "gold"]),
       st.lists(st.sampled_from(["silver", "gold"]), unique=True), st.booleans())
def test_why_not_is_the_window_the_tier_and_the_status(now, starts, ends, tier, tiers, paused):
    reward = Reward("mug", "gift", "Mug", 10, tuple(tiers), starts, ends,
                    PAUSED if paused else "active")
    reason = why_not(reward, tier, now)
    ok = (not paused and (starts is None or now >= starts) and (ends is None or now < ends)
          and (not tiers or tier in tiers))
    assert (reason is None) == ok


@given(st.sampled_from(KINDS), st.integers(-5, 2 * 10**9), st.one_of(st.none(),
                                                                      st.sampled_from(["gold",
                                                                                       "x"])))
def test_check_reward_refuses_what_could_not_be_redeemed(kind, points, grants):
    reward = Reward("mug", kind, "Mug", points, grants=grants)
    valid = (1 <= points <= 10**9 and (grants == "gold" if kind == "tier" else grants is None))
    try:
        check_reward(reward, ("silver", "gold"))
    except BadInput:
        assert not valid
    else:
        assert valid


# -- the store, the routes ----------------------------------------------------------------
@pytest.fixture
def shop(batch_factory, redis_client, clock):
    """ACME with a member of 100 points, a manager, a support and a cashier token, the app."""
    _, key_store = batch_factory("ACME", count=10)
    member, _ = MemberStore(redis_client, "ACME", master=TEST_MASTER).join(PHONE)
    Ledger(redis_client, "ACME", clock=clock).adjust(member.card, 100, reason="welcome")
    store = RewardStore(redis_client, "ACME", key_store=key_store, clock=clock)
    tokens = {role: TokenStore(redis_client).create("ACME", role)[0]
              for role in ("manager", "support", "cashier")}
    app = create_app(redis_client, key_store, clock=clock, key_cache_seconds=0,
                     catalog_seconds=0)
    yield app, store, member.card, tokens
    app.engine.link.close()


def _auth(token):
    return {"Authorization": f"Bearer {token}"}


def test_fifty_concurrent_redemptions_of_the_last_item_give_one(shop, redis_client):
    app, store, card, tokens = shop
    store.add(Reward("mug", "gift", "Mug", 10), 1)

    async def race():
        async with ASGIConductor(app) as conductor:
            posts = [conductor.simulate_post(f"{ADMIN}/members/{card}/redemptions",
                                             json={"item": "mug", "key": f"k{i}"},
                                             headers=_auth(tokens["support"]))
                     for i in range(50)]
            return await asyncio.gather(*posts)

    answers = run(race())
    assert sorted(r.status_code for r in answers) == [201] + [409] * 49
    assert {r.json["error"]["code"] for r in answers if r.status_code == 409} == {"out_of_stock"}
    assert store.stock("mug") == 0
    assert MemberStore(redis_client, "ACME").get(card).balance == 90


def test_balance_never_below_zero_under_concurrency(shop, redis_client):
    app, store, card, tokens = shop
    store.add(Reward("cap", "gift", "Cap", 30), 10)  # 100 points: three caps

    async def race():
        async with ASGIConductor(app) as conductor:
            posts = [conductor.simulate_post(f"{ADMIN}/members/{card}/redemptions",
                                             json={"item": "cap", "key": f"c{i}"},
                                             headers=_auth(tokens["support"]))
                     for i in range(20)]
            return await asyncio.gather(*posts)

    answers = run(race())
    assert sum(r.status_code == 201 for r in answers) == 3
    assert MemberStore(redis_client, "ACME").get(card).balance == 10
    assert store.stock("cap") == 7  # the refused ones gave their item back
    assert {r.json["state"] for r in answers if r.status_code == 201} == {"done"}


def test_one_key_one_redemption_and_cancel_returns_both_once(shop, redis_client):
    app, store, card, tokens = shop
    store.add(Reward("mug", "gift", "Mug", 10), 5)
    first = store.redeem(card, "mug", key="order-1")
    again = store.redeem(card, "mug", key="order-1")
    assert again.duplicate and again.redemption_id == first.redemption_id
    assert store.stock("mug") == 4 and MemberStore(redis_client, "ACME").get(card).balance == 90
    cancelled = store.cancel(card, first.redemption_id)
    store.cancel(card, first.redemption_id)
    assert cancelled.state == "cancelled"
    assert store.stock("mug") == 5 and MemberStore(redis_client, "ACME").get(card).balance == 100
    kinds = [e.kind for e in Ledger(redis_client, "ACME").history(card)]
    assert kinds.count("redeem") == 1 and kinds.count("refund") == 1


def test_a_redemption_left_held_by_a_crash_is_settled(shop, redis_client, clock):
    _, store, card, _ = shop
    store.add(Reward("mug", "gift", "Mug", 10), 2)
    real = store._finish
    store._finish = lambda *a: (_ for _ in ()).throw(ConnectionError("crash"))
    with pytest.raises(ConnectionError):
        store.redeem(card, "mug", key="lost")
    store._finish = real
    assert store.stock("mug") == 1
    assert store.settle_held() == (0, 0)  # too young: a request may still be running
    clock.advance(601)
    assert store.settle_held() == (0, 1)
    assert store.stock("mug") == 2 and MemberStore(redis_client, "ACME").get(card).balance == 100


def test_admin_catalogue_routes(shop, redis_client):
    app, _, _, tokens = shop
    from falcon import testing

    from points_bridge.settings import SettingsStore

    SettingsStore(redis_client).update("ACME", tiers="silver:0,gold:1000")
    client = testing.TestClient(app)
    made = client.simulate_post(f"{ADMIN}/rewards", json={
        "item": "Gold-Up", "kind": "tier", "grants": "gold", "name": "升级", "points": 50,
        "stock": 3, "ends_at": "2026-02-01"}, headers=_auth(tokens["manager"]))
    assert made.status_code == 201 and made.json["item"] == "gold-up"
    changed = client.simulate_patch(f"{ADMIN}/rewards/gold-up", json={"add_stock": 2},
                                    headers=_auth(tokens["manager"]))
    assert changed.json["stock"] == 5
    listed = client.simulate_get(f"{ADMIN}/rewards", headers=_auth(tokens["support"]))
    assert [r["item"] for r in listed.json["rewards"]] == ["gold-up"]
    refused = client.simulate_post(f"{ADMIN}/rewards", json={
        "item": "x", "name": "x", "points": 1, "stock": 1}, headers=_auth(tokens["support"]))
    assert refused.status_code == 403


def test_a_tier_upgrade_pins_the_tier(shop, redis_client):
    _, store, card, _ = shop
    from points_bridge.settings import SettingsStore

    SettingsStore(redis_client).update("ACME", tiers="silver:0,gold:1000")
    store.add(Reward("up", "tier", "Gold", 50, grants="gold"), 1)
    store.redeem(card, "up", key="u")
    member = MemberStore(redis_client, "ACME").get(card)
    assert member.pinned_tier == "gold" and member.tier == "gold"


def test_a_coupon_redeems_once_and_says_why_not(shop, clock):
    app, store, card, tokens = shop
    store.add(Reward("c20", "coupon", "20元券", 10, coupon_days=7), 5)
    done = store.redeem(card, "c20", key="c")
    code = done.coupon
    assert len(code) == COUPON_15.length and parse_coupon(code).key_id is not None
    from falcon import testing

    client = testing.TestClient(app)
    cashier = _auth(tokens["cashier"])
    spaced = "-".join(code[i:i + 4] for i in range(0, len(code), 4))
    assert client.simulate_get(f"{ADMIN}/coupons/{spaced}", headers=cashier).json["state"] \
        == "issued"
    used = client.simulate_post(f"{ADMIN}/coupons/{code}/redeem", json={"shop": "Nanjing 1"},
                                headers=cashier)
    assert used.status_code == 200 and used.json["state"] == "used"
    twice = client.simulate_post(f"{ADMIN}/coupons/{code}/redeem", headers=cashier)
    assert twice.status_code == 409 and twice.json["error"]["code"] == "coupon_used"
    # a coupon used cannot be cancelled away
    with pytest.raises(Exception, match="coupon was used"):
        store.cancel(card, done.redemption_id)
    # forged: a well-formed code (check digit right) with a tag that does not hold
    body = code[:8] + str((int(code[8]) + 1) % 10) + code[9:-1]
    forged = body + str(damm_check_digit(body))
    answer = client.simulate_post(f"{ADMIN}/coupons/{forged}/redeem", headers=cashier)
    assert answer.status_code == 404 and answer.json["error"]["code"] == "coupon_forged"
    typo = code[:-1] + str((int(code[-1]) + 1) % 10)
    answer = client.simulate_get(f"{ADMIN}/coupons/{typo}", headers=cashier)
    assert answer.json["error"]["code"] == "coupon_mistyped"
    # expired
    later = store.redeem(card, "c20", key="d").coupon
    clock.advance(8 * 86400)
    answer = client.simulate_post(f"{ADMIN}/coupons/{later}/redeem", headers=cashier)
    assert answer.status_code == 409 and answer.json["error"]["code"] == "coupon_expired"
    assert store.coupon(later).state == "expired"
    # the cashier may do nothing else
    assert client.simulate_get(f"{ADMIN}/rewards", headers=cashier).status_code == 403


def test_sms_redemption_once_per_message(batch_factory, redis_client, clock):
    world = make_world(batch_factory, redis_client, clock)
    store = RewardStore(redis_client, "ACME", key_store=world.key_store, clock=clock)
    member, _ = MemberStore(redis_client, "ACME", master=TEST_MASTER).join("+8613800138000")
    Ledger(redis_client, "ACME").adjust(member.card, 100, reason="welcome")
    store.add(Reward("mug", "gift", "马克杯", 30), 5)
    store.add(Reward("tv", "gift", "电视", 1000), 5)
    first = world.sms("DH#mug", sid="SM1")
    again = world.sms("DH#mug", sid="SM1")  # the gateway's retry
    assert "兑换成功" in first.text and first.text == again.text
    assert MemberStore(redis_client, "ACME").get(member.card).balance == 70
    assert store.stock("mug") == 4
    assert "积分不足" in world.sms("ｄｈ＃tv", sid="SM2").text
    assert "没有这个礼品" in world.sms("DH#nothing", sid="SM3").text
    assert "还不是会员" in world.sms("DH#mug", sender="+8613900000001", sid="SM4").text


def test_the_cli(itemseal_env):
    env = itemseal_env
    cli(env, "tenant", "create", "ACME", "--name", "Acme")
    cli(env, "member", "join", "--tenant", "ACME", "--phone", PHONE)
    cli(env, "member", "adjust", "--tenant", "ACME", "--phone", PHONE, "--points", "100",
        "--reason", "welcome")
    cli(env, "reward", "add", "--tenant", "ACME", "c20", "--kind", "coupon", "--name", "20元券",
        "--points", "40", "--stock", "1")
    cli(env, "reward", "set", "--tenant", "ACME", "c20", "--add-stock", "1")
    assert "c20\tcoupon\t20元券\t40\t2" in cli(env, "reward", "list", "--tenant", "ACME").stdout
    done = json.loads(cli(env, "reward", "redeem", "--tenant", "ACME", "--phone", PHONE, "c20",
                          "--key", "k", "--json").stdout)
    assert done["state"] == "done" and done["coupon"]
    used = cli(env, "coupon", "redeem", "--tenant", "ACME", done["coupon"], "--shop", "S1")
    assert "used" in used.stdout
    twice = cli(env, "coupon", "redeem", "--tenant", "ACME", done["coupon"], ok=False)
    assert twice.returncode == 1 and "already used" in twice.stderr
    assert len(twice.stderr.strip().splitlines()) == 1
    out = cli(env, "reward", "redeem", "--tenant", "ACME", "--phone", PHONE, "c20", "--key",
              "k2", "--json")
    assert json.loads(out.stdout)["state"] == "done"
    none_left = cli(env, "reward", "redeem", "--tenant", "ACME", "--phone", PHONE, "c20",
                    ok=False)
    assert "out of stock" in none_left.stderr or "cannot take" in none_left.stderr
