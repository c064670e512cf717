"""Purchases, refunds and stored value through HTTP and the CLI, on a real redis-server.

The till's routes take a cashier token; every JSON answer is checked against
schemas/openapi.yaml (``AdminApi``).
"""

from __future__ import annotations

import asyncio

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from falcon.testing import ASGIConductor
from helpers.aio import run
from helpers.api import AdminApi
from helpers.cli_runner import run as cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codegen.store.keyspace import PointsKeys
from points_bridge.campaigns import CampaignStore
from points_bridge.ledger import Ledger
from points_bridge.members import MemberStore
from points_bridge.purchases import PurchaseDesk
from points_bridge.rules import Campaign
from points_bridge.settings import SettingsStore
from points_bridge.shops import ShopStore
from tests.helpers.master import TEST_MASTER, with_test_master
from verify_api.admin.auth import TokenStore
from verify_api.app import create_app

PHONE = "13812345678"
PURCHASES = "/v1/tenants/{tenant}/purchases"
REFUND = "/v1/tenants/{tenant}/purchases/{purchase_id}/refund"
BALANCE = "/v1/tenants/{tenant}/members/{member}/balance"
TOPUP = "/v1/tenants/{tenant}/members/{member}/topup"


class Till:
    def __init__(self, api: AdminApi, tokens: dict[str, str], card: str) -> None:
        self.api, self.tokens, self.card = api, tokens, card

    def post(self, template, body=None, role="cashier", **values):
        return self.api.call("POST", template, self.tokens[role], body=body,
                             **{"tenant": "ACME", **values})

    def buy(self, key, lines, **extra):
        return self.post(PURCHASES, {"member": PHONE, "shop": "JN-01", "lines": lines,
                                     "idempotency_key": key, **extra})

    def balance(self, role="cashier"):
        return self.api.call("GET", BALANCE, self.tokens[role], tenant="ACME",
                             member=self.card).json


@pytest.fixture
def till(batch_factory, redis_client, clock):
    _, key_store = batch_factory("ACME", count=10, sku="LIP-001", state="minted")
    SettingsStore(redis_client).update("ACME", tiers="silver:0,gold:1000:5,diamond:5000:12:1.5")
    ShopStore(redis_client, "ACME").add("JN-01", name="Jinan", region="Shandong")
    member, _ = MemberStore(redis_client, "ACME", master=TEST_MASTER).join(PHONE)
    tokens = {role: TokenStore(redis_client, clock=clock).create("ACME", role, role)[0]
              for role in ("cashier", "manager", "support")}
    app = create_app(redis_client, key_store, clock=clock, key_cache_seconds=0,
                     catalog_seconds=0)
    yield Till(AdminApi(app), tokens, member.card)
    app.engine.link.close()


def test_a_purchase_earns_per_line_and_reports_discount_and_balances(till):
    answer = till.buy("r1", [{"sku": "LIP-001", "qty": 2, "amount": 15_800},
                             {"sku": "CRM-002", "amount": 9_950}])
    assert answer.status_code == 201, answer.text
    body = answer.json
    assert [ln["points"] for ln in body["lines"]] == [158, 99]
    assert body["points"] == 257 and body["balances"] == {"points": 257, "stored_value": 0}
    assert body["discount"] == {"tier": "silver", "rate_bp": 0, "amount": 0}
    assert body["rules"][0] == {"kind": "base", "name": "LIP-001", "delta": 158,
                                "limited": False}
    again = till.buy("r1", [{"sku": "LIP-001", "qty": 2, "amount": 15_800},
                            {"sku": "CRM-002", "amount": 9_950}])
    assert again.status_code == 200 and again.json["duplicate"] is True
    assert again.json["purchase_id"] == body["purchase_id"]
    assert till.balance()["points"] == 257
    clash = till.buy("r1", [{"sku": "LIP-001", "amount": 1}])
    assert clash.status_code == 409 and clash.json["error"]["code"] == "conflict"


def test_tier_discount_earn_rate_and_spend_basis(till, redis_client):
    SettingsStore(redis_client).update("ACME", tier_basis="spend")
    first = till.buy("r1", [{"sku": "A", "amount": 100_000}]).json  # 1000 yuan
    assert first["tier"] == "gold" and first["discount"]["rate_bp"] == 0
    second = till.buy("r2", [{"sku": "A", "amount": 10_000}]).json
    assert second["discount"] == {"tier": "gold", "rate_bp": 500, "amount": 500}
    assert till.balance()["discount_bp"] == 500 and till.balance()["spend"] == 1100
    refund = till.post(REFUND, {}, purchase_id=first["purchase_id"]).json
    assert refund["tier"] == "silver"  # the spend that made gold was taken back


def test_a_refund_restores_balances_exactly_and_each_line_once(till, redis_client, clock):
    CampaignStore(redis_client, "ACME").add(Campaign(
        "gift", *_window(clock), bonus=30))
    till.post(TOPUP, {"amount": 50_000, "payment_ref": "WX-1", "idempotency_key": "t1"},
              member=PHONE)
    till.buy("seed", [{"sku": "A", "amount": 20_000}])  # 200 points + 30 gift
    before = till.balance()
    bought = till.buy("r1", [{"sku": "A", "amount": 10_000}, {"sku": "B", "amount": 30_000}],
                      paid_with_points=100, paid_with_stored_value=20_000).json
    assert bought["balances"]["points"] == before["points"] - 100 + 100 + 300 + 30
    assert bought["balances"]["stored_value"] == before["stored_value"] - 20_000
    assert [ln["paid_stored_value"] for ln in bought["lines"]] == [5_000, 15_000]
    pid = bought["purchase_id"]
    one = till.post(REFUND, {"lines": [2]}, purchase_id=pid)
    assert one.status_code == 201, one.text
    assert one.json["points"] == -300 and one.json["paid_with_stored_value"] == -15_000
    again = till.post(REFUND, {"lines": [2]}, purchase_id=pid)
    assert again.status_code == 200 and again.json["duplicate"] is True
    overlap = till.post(REFUND, {"lines": [1, 2]}, purchase_id=pid)
    assert overlap.status_code == 409 and overlap.json["error"]["code"] == "already_refunded"
    rest = till.post(REFUND, {}, role="support", purchase_id=pid)
    assert rest.status_code == 201 and rest.json["points"] == -130  # line 1 and the gift
    after = till.balance()
    assert (after["points"], after["stored_value"], after["spend"]) == (
        before["points"], before["stored_value"], before["spend"])
    member = MemberStore(redis_client, "ACME").get(till.card)
    assert member.earned == 230  # the refunded purchase earned nothing in the end
    assert till.post(REFUND, {}, purchase_id=pid).status_code == 200  # the same whole refund
    assert till.post(REFUND, {"lines": [1]}, purchase_id=pid).status_code == 409
    running = 0
    for entry in Ledger(redis_client, "ACME").history(till.card):
        running += entry.delta
        assert entry.balance == running


def _window(clock):
    from datetime import UTC, datetime, timedelta

    now = datetime.fromtimestamp(clock(), UTC)
    return now - timedelta(days=1), now + timedelta(days=1)


def test_fifty_concurrent_posts_of_one_key_credit_once(till, redis_client):
    body = {"member": PHONE, "shop": "JN-01", "idempotency_key": "same",
            "lines": [{"sku": "A", "amount": 12_300}] * 8}
    headers = {"Authorization": f"Bearer {till.tokens['cashier']}"}

    async def race() -> list:
        async with ASGIConductor(till.api.app) as conductor:
            posts = [conductor.simulate_post("/v1/tenants/ACME/purchases", json=body,
                                             headers=headers) for _ in range(50)]
            return await asyncio.gather(*posts)

    answers = run(race())
    assert sorted(a.status_code for a in answers) == [200] * 49 + [201]
    assert {a.json["purchase_id"] for a in answers} == {answers[0].json["purchase_id"]}
    assert till.balance()["points"] == 8 * 123
    entries = Ledger(redis_client, "ACME").history(till.card)
    assert [e.kind for e in entries].count("purchase") == 1


def test_stored_value_never_goes_negative_under_concurrent_pays(till):
    till.post(TOPUP, {"amount": 10_000, "payment_ref": "WX-2", "idempotency_key": "t2"},
              member=PHONE)
    headers = {"Authorization": f"Bearer {till.tokens['cashier']}"}

    async def race() -> list:
        async with ASGIConductor(till.api.app) as conductor:
            posts = [conductor.simulate_post("/v1/tenants/ACME/purchases", headers=headers, json={
                "member": PHONE, "shop": "JN-01", "idempotency_key": f"pay-{i}",
                "lines": [{"sku": "A", "amount": 3_000}], "paid_with_stored_value": 3_000})
                for i in range(12)]
            return await asyncio.gather(*posts)

    answers = run(race())
    assert sorted(a.status_code for a in answers) == [201] * 3 + [409] * 9
    refused = [a.json["error"]["code"] for a in answers if a.status_code == 409]
    assert set(refused) == {"insufficient_stored_value"}
    assert till.balance()["stored_value"] == 1_000


def test_the_cashier_may_only_do_the_till(till):
    assert till.api.call("GET", "/v1/admin/tenants/{tenant}/members/{card}",
                         till.tokens["cashier"], tenant="ACME", card=till.card).status_code == 403
    assert till.buy("m", [{"sku": "A", "amount": 1}]).status_code == 201
    refused = till.post(PURCHASES, {"member": PHONE, "shop": "JN-01", "idempotency_key": "x",
                                    "lines": [{"sku": "A", "amount": 1}]}, role="manager")
    assert refused.status_code == 403
    anonymous = till.api.call("POST", PURCHASES, None, tenant="ACME", body={})
    assert anonymous.status_code == 401


@pytest.mark.parametrize("body, field", [
    ({"lines": []}, "lines"),
    ({"lines": [{"sku": "A", "amount": -5}]}, "amount"),
    ({"lines": [{"sku": "A", "amount": 1.5}]}, "lines"),
    ({"lines": [{"sku": "A", "amount": 10**10 + 1}]}, "amount"),
    ({"shop": "NOPE"}, None),
    ({"member": "13900000000"}, None),
    ({"paid_with_points": 5}, None),
])
def test_bad_purchases_are_clear_errors(till, body, field):
    request = {"member": PHONE, "shop": "JN-01", "idempotency_key": "k",
               "lines": [{"sku": "A", "amount": 100}], **body}
    answer = till.post(PURCHASES, request)
    assert 400 <= answer.status_code < 500, answer.text
    assert answer.json["error"]["message"]
    if field:
        assert field in answer.json["error"]["message"]


def test_shops_admin_routes(till):
    call = till.api.call
    token = till.tokens["manager"]
    added = call("POST", "/v1/admin/tenants/{tenant}/shops", token, tenant="ACME",
                 body={"shop_id": "QD-02", "name": "Qingdao", "region": "Shandong"})
    assert added.status_code == 201
    changed = call("PATCH", "/v1/admin/tenants/{tenant}/shops/{shop_id}", token,
                   tenant="ACME", shop_id="QD-02", body={"name": "Qingdao 2"})
    assert changed.json["name"] == "Qingdao 2" and changed.json["region"] == "Shandong"
    listed = call("GET", "/v1/admin/tenants/{tenant}/shops", till.tokens["support"],
                  tenant="ACME").json["shops"]
    assert [s["shop_id"] for s in listed] == ["JN-01", "QD-02"]
    assert call("POST", "/v1/admin/tenants/{tenant}/shops", token, tenant="ACME",
                body={"shop_id": "QD-02", "name": "x"}).status_code == 409


def test_history_and_the_cli(till, redis_client, itemseal_env, tmp_path):
    cli(itemseal_env, "shop", "add", "-t", "ACME", "QD-02", "--name", "Qingdao")
    assert "QD-02" in cli(itemseal_env, "shop", "list", "-t", "ACME").stdout
    cli(itemseal_env, "points", "rate", "set", "-t", "ACME", "--sku", "LIP-001", "2")
    out = cli(itemseal_env, "purchase", "add", "-t", "ACME", "--member", PHONE, "--shop",
              "QD-02", "--line", "LIP-001:2:15800", "--line", "X:500", "--key", "c1").stdout
    assert "+316 points" in out and "+5 points" in out
    again = cli(itemseal_env, "purchase", "add", "-t", "ACME", "--member", PHONE, "--shop",
                "QD-02", "--line", "LIP-001:2:15800", "--line", "X:500", "--key", "c1").stdout
    assert "already recorded" in again
    cli(itemseal_env, "member", "topup", "-t", "ACME", "--member", PHONE, "--amount", "5000",
        "--payment-ref", "WX-9", "--key", "t9")
    shown = cli(itemseal_env, "member", "show", "-t", "ACME", "--phone", PHONE,
                "--purchases").stdout
    assert "stored value\t50.00" in shown and "purchase" in shown and "topup" in shown
    history = till.api.call("GET", "/v1/admin/tenants/{tenant}/members/{card}/purchases",
                            till.tokens["support"], tenant="ACME", card=till.card).json
    assert [p["kind"] for p in history["purchases"]] == ["topup", "purchase"]
    broke = cli(itemseal_env, "member", "stored-adjust", "-t", "ACME", "--member", PHONE,
                "--amount", "-9000", "--reason", "x", "--key", "a1", ok=False)
    assert broke.returncode == 1 and "cannot take 9000" in broke.stderr
    bad = cli(itemseal_env, "purchase", "add", "-t", "ACME", "--member", PHONE, "--shop",
              "NOPE", "--line", "A:1", "--key", "c2", ok=False)
    assert bad.returncode == 1 and "no shop 'NOPE'" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_import_purchases_reports_bad_rows_and_is_a_no_op_again(till, redis_client,
                                                                itemseal_env, tmp_path):
    path = tmp_path / "till.csv"
    path.write_text(
        "receipt,member,shop,sku,qty,amount,at\n"
        f"R1,{PHONE},JN-01,LIP-001,1,10000,2026-01-01T10:00:00+08:00\n"
        f"R1,{PHONE},JN-01,CRM-002,2,5000,\n"
        f"R2,{PHONE},JN-01,LIP-001,1,abc,\n"
        f"R3,{PHONE},NOPE,LIP-001,1,100,\n"
        f"R4,{till.card},JN-01,LIP-001,1,20000,\n"
    )
    first = cli(itemseal_env, "import", "purchases", "-t", "ACME", str(path), ok=False)
    assert first.returncode == 1
    assert "line 4: receipt R2" in first.stderr and "line 5: receipt R3" in first.stderr
    assert "posted 2 purchases (350 points)" in first.stdout
    again = cli(itemseal_env, "import", "purchases", "-t", "ACME", str(path), ok=False)
    assert "posted 0 purchases (0 points), already in 2" in again.stdout
    assert till.balance()["points"] == 350
    table = pa.table({"receipt": ["P1"], "member": [PHONE], "shop": ["JN-01"],
                      "sku": ["A"], "amount": [100]})
    pq.write_table(table, tmp_path / "till.parquet")
    cli(itemseal_env, "import", "purchases", "-t", "ACME", str(tmp_path / "till.parquet"))
    assert till.balance()["points"] == 351


def test_purchases_reach_the_crm_events_stream(till, redis_client):
    till.buy("r1", [{"sku": "A", "amount": 100}])
    keys = PointsKeys("ACME")
    kinds = [fields[b"data"] for stream in keys.all_events()
             for _, fields in redis_client.xrange(stream) if fields.get(b"type") == b"ledger"]
    assert any(b'"purchase"' in data for data in kinds)


def test_desk_refuses_paying_more_points_than_before_the_purchase(till, redis_client):
    desk = PurchaseDesk(redis_client, "ACME")
    assert desk.balance(PHONE)["points"] == 0
    answer = till.buy("p", [{"sku": "A", "amount": 100_000}], paid_with_points=50)
    assert answer.status_code == 409  # the 1000 points it earns cannot pay for it


def test_the_sms_balance_reply_shows_points_and_stored_value(batch_factory, redis_client, clock):
    from helpers.channels_world import make_world

    world = make_world(batch_factory, redis_client, clock, language="en")
    try:
        assert world.sms("888", sid="j1").status_code == 200
        PurchaseDesk(redis_client, "ACME").topup("+8613800138000", 1_234, payment_ref="WX-7",
                                                idempotency_key="t7")
        text = world.sms("666", sid="b1").text
        assert "stored value 12.34" in text and "Points balance: 0" in text
    finally:
        world.app.engine.link.close()


def test_the_sales_report_by_day_shop_product_and_tier(till, redis_client, itemseal_env):
    itemseal_env = with_test_master(itemseal_env)  # the report walks members: the card key
    first = till.buy("r1", [{"sku": "LIP-001", "qty": 2, "amount": 20_000},
                            {"sku": "CRM-002", "amount": 5_000}]).json
    till.buy("r2", [{"sku": "LIP-001", "amount": 10_000}])
    till.post(REFUND, {"lines": [2]}, purchase_id=first["purchase_id"])
    out = cli(itemseal_env, "report", "sales", "-t", "ACME", "--from", "2025-12-31", "--to",
              "2026-01-02", "--by", "product,shop,tier", "--format", "csv").stdout
    rows = out.strip().splitlines()
    assert rows[0] == "product,shop,tier,purchases,refunds,qty,amount_fen,points"
    assert "CRM-002,JN-01,silver,1,1,0,0,0" in rows
    assert "LIP-001,JN-01,silver,2,0,3,30000,300" in rows
    by_day = cli(itemseal_env, "report", "sales", "-t", "ACME", "--from", "2026-01-01",
                 "--to", "2026-01-01", "--format", "csv").stdout
    assert by_day.strip().splitlines()[1] == "2026-01-01,2,1,3,30000,300"
    bad = cli(itemseal_env, "report", "sales", "-t", "ACME", "--by", "colour", ok=False)
    assert bad.returncode == 1 and "group by any of" in bad.stderr


def test_tiers_with_discounts_through_the_admin_api(till):
    token = till.tokens["manager"]
    put = till.api.call("PUT", "/v1/admin/tenants/{tenant}/tiers", token, tenant="ACME", body={
        "tiers": [{"name": "silver", "threshold": 0, "discount_bp": 250},
                  {"name": "gold", "threshold": 100, "discount_bp": 1250, "earn_bp": 15_000}],
        "basis": "spend"})
    assert put.status_code == 200, put.text
    assert put.json["tiers"][1] == {"name": "gold", "threshold": 100, "discount_bp": 1250,
                                    "earn_bp": 15_000}
    assert put.json["basis"] == "spend"
    first = till.buy("r1", [{"sku": "A", "amount": 10_000}]).json
    assert first["discount"] == {"tier": "silver", "rate_bp": 250, "amount": 250}
    second = till.buy("r2", [{"sku": "A", "amount": 10_000}]).json
    assert second["discount"]["rate_bp"] == 1250 and second["points"] == 150  # gold earns 1.5x
    bad = till.api.call("PUT", "/v1/admin/tenants/{tenant}/tiers", token, tenant="ACME", body={
        "tiers": [{"name": "silver", "threshold": 0, "discount_bp": 20_000}]})
    assert bad.status_code in (400, 422)


def test_refund_rates_and_lists_by_the_cli(till, itemseal_env):
    import json

    cli(itemseal_env, "points", "rate", "category", "-t", "ACME", "LIP-001", "lipstick")
    cli(itemseal_env, "points", "rate", "set", "-t", "ACME", "--category", "lipstick", "0.5")
    rates = json.loads(cli(itemseal_env, "points", "rate", "list", "-t", "ACME",
                           "--json").stdout)
    assert rates["by_category"] == {"lipstick": 5_000}
    assert rates["category_of"] == {"LIP-001": "lipstick"}
    bought = json.loads(cli(itemseal_env, "purchase", "add", "-t", "ACME", "--member",
                            till.card, "--shop", "JN-01", "--line", "LIP-001:1:10000",
                            "--line", "B:1:10000", "--key", "k1", "--json").stdout)
    assert [ln["points"] for ln in bought["lines"]] == [50, 100]
    refunded = json.loads(cli(itemseal_env, "purchase", "refund", "-t", "ACME",
                              bought["purchase_id"], "--line", "1", "--json").stdout)
    assert refunded["points"] == -50 and refunded["balances"]["points"] == 100
    listed = json.loads(cli(itemseal_env, "purchase", "list", "-t", "ACME", "--member", PHONE,
                            "--json").stdout)
    assert [d["kind"] for d in listed] == ["refund", "purchase"]
    again = cli(itemseal_env, "purchase", "refund", "-t", "ACME", bought["purchase_id"],
                "--line", "1", "--key", "other", ok=False)
    assert again.returncode == 1 and "already refunded" in again.stderr
    assert cli(itemseal_env, "points", "config", "-t", "ACME", "--tiers", "silver:0,gold:x",
               ok=False).returncode == 1


@st.composite
def _http_case(draw):
    lines = draw(st.lists(st.fixed_dictionaries({
        "sku": st.sampled_from(["A", "B", "C"]), "qty": st.integers(1, 3),
        "amount": st.integers(0, 500_000)}), min_size=1, max_size=5))
    campaigns = []
    for n in range(draw(st.integers(0, 3))):
        multiplier = draw(st.sampled_from([10_000, 15_000, 20_000]))
        bonus = draw(st.sampled_from([0, 25]))
        campaigns.append(dict(
            campaign_id=f"c{n}", multiplier_bp=multiplier, bonus=bonus or (
                5 if multiplier == 10_000 else 0),
            skus=draw(st.sampled_from([None, frozenset({"A"}), frozenset({"B", "C"})])),
            regions=draw(st.sampled_from([None, frozenset({"Shandong"}),
                                          frozenset({"Beijing"})])),
            budget=draw(st.sampled_from([None, 40, 1_000]))))
    return {
        "lines": lines, "campaigns": campaigns,
        "default": draw(st.sampled_from(["1", "0.5", "2"])),
        "sku_rate": draw(st.sampled_from([None, "3"])),
        "category_rate": draw(st.sampled_from([None, "1.5"])),
        "birthday": draw(st.booleans()),
        "policy": (draw(st.sampled_from(["1", "2"])), draw(st.sampled_from([0, 100])),
                   draw(st.sampled_from(["", "300", "5000"]))),
    }


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=_http_case())
def test_a_purchase_over_http_earns_what_the_model_says(till, redis_client, clock, case):
    """Every rule combination through the API on the real store, against the pure model."""
    from datetime import UTC, datetime, timedelta

    from test_purchase_rules import model

    keys = PointsKeys("ACME")
    redis_client.delete(keys.campaigns, keys.campaign_spend, keys.earn_rates)
    multiplier, bonus, cap = case["policy"]
    SettingsStore(redis_client).update("ACME", earn_rate=case["default"],
                                       birthday_multiplier=multiplier,
                                       birthday_bonus=str(bonus), daily_cap=cap)
    rates = PurchaseDesk(redis_client, "ACME").rates
    if case["sku_rate"]:
        rates.set_rate(sku="A", rate=case["sku_rate"])
    if case["category_rate"]:
        rates.set_category("B", "cat")
        rates.set_rate(category="cat", rate=case["category_rate"])
    now = datetime.fromtimestamp(clock(), UTC)
    stored = []
    for c in case["campaigns"]:
        campaign = Campaign(starts_at=now - timedelta(days=1), ends_at=now + timedelta(days=1),
                            **c)
        CampaignStore(redis_client, "ACME").add(campaign)
        stored.append(campaign)
    phone = f"1390013{redis_client.incr('test:phones') % 10_000:04d}"
    birthday = "01-01" if case["birthday"] else "06-15"  # the clock is 2026-01-01 08:00 local
    MemberStore(redis_client, "ACME", master=TEST_MASTER).join(phone, birthday=birthday)
    answer = till.post(PURCHASES, {"member": phone, "shop": "JN-01", "lines": case["lines"],
                                   "idempotency_key": "k"})
    assert answer.status_code == 201, answer.text
    settings_now = SettingsStore(redis_client).get("ACME")
    expected_rates = rates.rates(settings_now.earn_rate_bp)
    from points_bridge.purchase_rules import Line

    lines = [Line(ln["sku"], ln["qty"], ln["amount"]) for ln in case["lines"]]
    per_line, bonus_points, total, _ = model(
        lines, expected_rates, 10_000, "Shandong", "silver", case["birthday"], 0, {}, stored,
        settings_now.policy, at=now)
    assert [ln["points"] for ln in answer.json["lines"]] == per_line
    assert answer.json["bonus_points"] == bonus_points and answer.json["points"] == total
    assert answer.json["balances"]["points"] == total
