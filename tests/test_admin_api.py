"""The admin API on a real redis-server: tenant isolation, the role matrix, audit, the jobs.

Two tenants side by side (ACME and BETA), one token per role each; every
answer is validated against schemas/openapi.yaml.
"""

from __future__ import annotations

import re

import orjson
import pytest
from helpers.aio import run
from helpers.api import AdminApi

from codegen.products import ProductStore
from codegen.store.audit import AuditLog
from points_bridge.ledger import Ledger
from points_bridge.members import MemberStore
from points_bridge.rewards import Reward, RewardStore
from points_bridge.shops import ShopStore
from tests.helpers.master import TEST_MASTER
from verify_api.admin import roles
from verify_api.admin.auth import TokenStore
from verify_api.app import create_app, openapi_spec
from verify_api.check.engine import CheckRequest

ADMIN_ROUTES = sorted(
    (method.upper(), path)
    for path, ops in openapi_spec()["paths"].items()
    if path.startswith("/v1/admin/")
    for method in ops
)
BODIES = {
    ("POST", "/products"): {"sku": "NEW-1", "name": "New", "points": 3},
    ("PATCH", "/products/{sku}"): {"points": 25},
    ("PATCH", "/points"): {"daily_cap": 100},
    ("PATCH", "/limits"): {"rate_ip": "off"},
    ("PUT", "/tiers"): {"tiers": [{"name": "silver", "threshold": 0},
                                  {"name": "gold", "threshold": 500}]},
    ("POST", "/campaigns"): {"campaign_id": "double", "starts_at": "2026-01-01",
                             "ends_at": "2026-02-01", "multiplier": "2"},
    ("POST", "/members/{card}/status"): {"action": "freeze", "reason": "lost"},
    ("POST", "/members/{card}/rebind"): {"phone": "13912345678"},
    ("POST", "/members/{card}/adjust"): {"points": 5, "reason": "goodwill"},
    ("POST", "/members/{card}/redeem"): {"points": 1},
    ("POST", "/segments/preview"): {"segment": {"tiers": []}},
    ("POST", "/sms-campaigns"): {"segment": {}, "text": "hello", "key": "k1"},
    ("PUT", "/care"): {"birthday": {"on": True}},
    ("POST", "/draws"): {"keyword": "cj2", "answer": "blue"},
    ("POST", "/draws/{keyword}/close"): {"seed": "s"},
    ("PUT", "/alerts"): {"counterfeit_threshold": 5},
    ("POST", "/feedback/{feedback_id}/answer"): {"text": "thanks"},
    ("POST", "/rewards"): {"item": "cap", "name": "Cap", "points": 10, "stock": 5},
    ("PATCH", "/rewards/{item}"): {"add_stock": 3},
    ("POST", "/members/{card}/redemptions"): {"item": "mug", "key": "k1"},
    ("POST", "/coupons/{code}/redeem"): {"shop": "Shop 1"},
    ("POST", "/shops"): {"shop_id": "NEW-1", "name": "New shop"},
    ("PATCH", "/shops/{shop_id}"): {"region": "Shandong"},
    ("POST", "/members/{card}/stored-value"): {"amount": 100, "reason": "fix",
                                                "idempotency_key": "k1"},
}


class World:
    def __init__(self, api, tokens, cards, batches, care=None) -> None:
        self.api, self.tokens, self.cards, self.batches = api, tokens, cards, batches
        self.care = care or {}

    def values(self, tenant: str) -> dict[str, str]:
        return {"tenant": tenant, "sku": "LIP-001", "card": self.cards[tenant],
                "batch_id": self.batches[tenant], "campaign_id": "spring", "keyword": "cj",
                "item": "mug",
                "shop_id": "S1",
                **self.care.get(tenant, {"sms_campaign_id": "none", "feedback_id": "0-0"})}

    def call(self, method, suffix, tenant="ACME", role="manager", **kw):
        template = "/v1/admin/tenants/{tenant}" + suffix
        values = {**self.values(tenant), **kw.pop("values", {})}
        token = kw.pop("token", None) or self.tokens[(tenant, role)]
        return self.api.call(method, template, token, **kw, **values)


@pytest.fixture
def world(batch_factory, redis_client, clock):
    from datetime import UTC, datetime

    from points_bridge.campaigns import CampaignStore
    from points_bridge.outreach.draws import Draws
    from points_bridge.outreach.segments import Segment
    from points_bridge.outreach.sms_campaigns import SmsCampaigns
    from points_bridge.rules import Campaign
    from verify_api.channels.feedback import FeedbackInbox

    tokens, cards, batches, care = {}, {}, {}, {}
    store = TokenStore(redis_client, clock=clock)
    key_store = None
    for tenant in ("ACME", "BETA"):
        batch, key_store = batch_factory(tenant, count=300, sku="LIP-001", state="minted")
        batches[tenant] = batch.batch_id
        ProductStore(redis_client).add(tenant, "LIP-001", name=f"{tenant} lipstick", points=10)
        member, _ = MemberStore(redis_client, tenant, master=TEST_MASTER).join("13812345678")
        cards[tenant] = member.card
        Ledger(redis_client, tenant).adjust(member.card, 100, reason="opening")
        CampaignStore(redis_client, tenant).add(Campaign(
            "spring", datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC), 20000))
        for role in roles.ROLES:
            tokens[(tenant, role)], _ = store.create(tenant, role, f"{tenant} {role}")
        Draws(redis_client, tenant).open("cj", "blue")
        ShopStore(redis_client, tenant).add("S1", name=f"{tenant} shop")
        campaigns = SmsCampaigns(redis_client, tenant, master=TEST_MASTER)
        sent = campaigns.send(Segment(), "hi", f"{tenant}-key")
        note = FeedbackInbox(redis_client, tenant).add("13812345678", "where to buy?", "sms", 1)
        rewards = RewardStore(redis_client, tenant, key_store=key_store, clock=clock)
        rewards.add(Reward("mug", "gift", "Mug", 10), 5)
        rewards.add(Reward("c20", "coupon", "20 off", 10), 5)
        Ledger(redis_client, tenant).adjust(member.card, 10, reason="the coupon's price")
        given = rewards.redeem(member.card, "c20", key="setup")  # the balance is 100 again
        care[tenant] = {"sms_campaign_id": sent.campaign_id, "feedback_id": note,
                        "code": given.coupon, "redemption_id": given.redemption_id}
    app = create_app(redis_client, key_store, clock=clock, key_cache_seconds=0,
                     catalog_seconds=0)
    yield World(AdminApi(app), tokens, cards, batches, care)
    app.engine.link.close()


def _suffix(path: str) -> str:
    return path.removeprefix("/v1/admin/tenants/{tenant}")


def test_every_admin_route_names_a_known_action(world):
    for method, path in ADMIN_ROUTES:
        resource, *_ = world.api.app._router.find(path.replace("{tenant}", "ACME"))
        assert roles.allowed("manager", resource.actions[method]) in (True, False)


@pytest.mark.parametrize("method, path", ADMIN_ROUTES, ids=lambda x: x)
def test_a_token_of_another_tenant_gets_404_everywhere(world, method, path):
    suffix = _suffix(path)
    for role in roles.ROLES:
        beta_token = world.tokens[("BETA", role)]
        found = world.call(method, suffix, "ACME", token=beta_token, body=BODIES.get(
            (method, suffix)))
        assert found.status_code == 404, (role, found.text)
        ghost = world.call(method, suffix, "ACME", token=beta_token,
                           values={"tenant": "NO-SUCH"})
        assert ghost.status_code == 404 and ghost.json == found.json  # nothing leaks
    anonymous = world.api.call(method, path, None, **world.values("ACME"))
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")


def test_beta_data_never_shows_through_acme(world):
    acme = world.call("GET", "/products").json["products"]
    assert [p["name"] for p in acme] == ["ACME lipstick"]
    beta_card = world.cards["BETA"]
    if beta_card != world.cards["ACME"]:
        assert world.call("GET", "/members/{card}", role="support",
                          values={"card": beta_card}).status_code == 404
    assert world.call("GET", "/batches").json["batches"][0]["batch_id"] == world.batches["ACME"]


@pytest.mark.parametrize("role", roles.ROLES)
@pytest.mark.parametrize("method, path", ADMIN_ROUTES, ids=lambda x: x)
def test_role_matrix(world, method, path, role):
    suffix = _suffix(path)
    resource, *_ = world.api.app._router.find(path.replace("{tenant}", "ACME"))
    allowed = roles.allowed(role, resource.actions[method])
    params = {"phone": "13812345678"} if suffix == "/members" else None
    found = world.call(method, suffix, role=role, body=BODIES.get((method, suffix)),
                       params=params)
    if allowed:
        assert found.status_code < 300, found.text
    else:
        assert found.status_code == 403 and found.json["error"]["code"] == "forbidden"


def test_a_revoked_token_is_refused(world, redis_client):
    token = world.tokens[("ACME", "manager")]
    assert world.call("GET", "/products", token=token).status_code == 200
    info = next(t for t in TokenStore(redis_client).list("ACME") if t.role == "manager")
    TokenStore(redis_client).revoke("ACME", info.token_id)
    assert world.call("GET", "/products", token=token).status_code == 401
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert world.call("GET", "/products", token=forged).status_code == 401
    assert world.call("GET", "/products", token="not-a-token").status_code == 401


def test_tokens_are_stored_only_as_hashes(world, redis_client):
    dump = b"".join(
        b"".join(redis_client.hgetall(key).keys()) + b"".join(redis_client.hgetall(key).values())
        for key in redis_client.scan_iter(match="*admin-tokens*")
    )
    for token in world.tokens.values():
        assert token.encode() not in dump and token.split(".")[-1].encode() not in dump


def _audit(redis_client, tenant="ACME"):
    return list(reversed(AuditLog(redis_client, tenant).entries(1000)))


def test_manager_jobs_through_the_api_are_audited(world, redis_client, clock):
    """Products, points rules, tiers, campaigns, recall: each change one audit entry."""
    manager = {"role": "manager"}
    added = world.call("POST", "/products", body={"sku": "EYE-2", "name": "Liner", "points": 5,
                                                  "gtin": "4006381333931"}, **manager)
    assert added.status_code == 201 and added.json["gtin"] == "04006381333931"
    assert world.call("POST", "/products", body={"sku": "EYE-2", "name": "x", "points": 1},
                      **manager).status_code == 409
    assert world.call("POST", "/products", body={"sku": "BAD SKU", "name": "x", "points": 1},
                      **manager).status_code == 422
    assert world.call("POST", "/products", body={"sku": "A", "name": "x", "points": -1},
                      **manager).json["error"]["field"] == "points"
    changed = world.call("PATCH", "/products/{sku}", body={"points": 20}, **manager)
    assert changed.json["points"] == 20
    assert ProductStore(redis_client).get("ACME", "LIP-001").points == 20
    points = world.call("PATCH", "/points", body={"daily_cap": 300, "birthday_multiplier": "2",
                                                  "expiry_months": 12}, **manager)
    assert points.json["daily_cap"] == 300 and points.json["birthday_multiplier"] == 2.0
    assert world.call("PATCH", "/points", body={"restore": "maybe"}, **manager).status_code == 422
    tiers = world.call("PUT", "/tiers", body={"tiers": [{"name": "silver", "threshold": 0},
                                                        {"name": "gold", "threshold": 200}]},
                       **manager)
    assert tiers.json["tiers"][1] == {"name": "gold", "threshold": 200, "discount_bp": 0,
                                      "earn_bp": 10_000}
    bad = world.call("PUT", "/tiers", body={"tiers": [{"name": "gold", "threshold": 5}]},
                     **manager)
    assert bad.status_code == 422
    campaign = world.call("POST", "/campaigns", body={
        "campaign_id": "june", "starts_at": "2026-06-01", "ends_at": "2026-07-01",
        "multiplier": 1.5, "regions": ["CN-SH"], "budget": 1000}, **manager)
    assert campaign.status_code == 201 and campaign.json["multiplier"] == 1.5
    ended = world.call("POST", "/campaigns/{campaign_id}/end", values={"campaign_id": "june"},
                       **manager)
    assert ended.json["ended_at"] is not None
    listed = world.call("GET", "/campaigns", **manager).json["campaigns"]
    assert {c["campaign_id"] for c in listed} == {"spring", "june"}
    operator = world.call("POST", "/batches/{batch_id}/activate", role="operator")
    assert operator.json["state"] == "active" and operator.json["activated_at"] is not None
    recalled = world.call("POST", "/batches/{batch_id}/recall", **manager)
    assert recalled.json["state"] == "recalled"
    again = world.call("POST", "/batches/{batch_id}/activate", role="operator")
    assert again.status_code == 409
    missing = world.call("POST", "/batches/{batch_id}/recall", values={"batch_id": "B999"},
                         **manager)
    assert missing.status_code == 404

    entries = _audit(redis_client)
    assert [(e.action, e.target) for e in entries] == [
        ("product.add", "product/EYE-2"),
        ("product.update", "product/LIP-001"),
        ("points.update", "points"),
        ("tiers.update", "tiers"),
        ("campaign.add", "campaign/june"),
        ("campaign.end", "campaign/june"),
        ("batch.activate", f"batch/{world.batches['ACME']}"),
        ("batch.recall", f"batch/{world.batches['ACME']}"),
    ]
    by_action = {e.action: e for e in entries}
    assert by_action["product.update"].before["points"] == 10
    assert by_action["product.update"].after["points"] == 20
    assert by_action["batch.recall"].before["state"] == "active"
    assert by_action["batch.recall"].after["state"] == "recalled"
    token_ids = {t.role: t.token_id for t in TokenStore(redis_client).list("ACME")}
    assert by_action["batch.activate"].actor == token_ids["operator"]
    assert by_action["product.add"].actor == token_ids["manager"]
    assert all(e.at == clock.now for e in entries)
    assert _audit(redis_client, "BETA") == []
    read = world.call("GET", "/audit", **manager).json["entries"]
    assert [e["action"] for e in read][:2] == ["batch.recall", "batch.activate"]


def test_points_change_applies_to_the_next_claim_without_restart(world, redis_client):
    world.call("POST", "/batches/{batch_id}/activate", role="operator")
    world.call("PATCH", "/products/{sku}", body={"points": 40})
    engine = world.api.app.engine
    batch = __import__("codegen.batches", fromlist=["x"]).BatchRegistry(
        redis_client, "ACME").get(world.batches["ACME"])
    signer = engine._keys.signer("ACME", batch.key_id, batch.profile)
    request = CheckRequest(signer.code(batch.first_serial), "13700000000")
    answer = run(engine.verify("ACME", request, "10.0.0.1"))
    assert answer.result == "genuine" and answer.points_awarded == 40


def test_support_jobs_through_the_api_are_audited(world, redis_client):
    support = {"role": "support"}
    found = world.call("GET", "/members", params={"phone": "138 1234 5678"}, **support)
    assert found.json["card"] == world.cards["ACME"]
    by_card = world.call("GET", "/members", params={"card": world.cards["ACME"]}, **support)
    assert by_card.json["phone"] == "+8613812345678"
    assert world.call("GET", "/members", params={"phone": "13900000000"},
                      **support).status_code == 404
    assert world.call("GET", "/members", **support).status_code == 422
    Ledger(redis_client, "ACME").adjust(world.cards["ACME"], -100, reason="test baseline")
    adjusted = world.call("POST", "/members/{card}/adjust",
                          body={"points": 50, "reason": "complaint #1", "key": "c1"}, **support)
    assert adjusted.json["member"]["balance"] == 50
    repeat = world.call("POST", "/members/{card}/adjust",
                        body={"points": 50, "reason": "complaint #1", "key": "c1"}, **support)
    assert repeat.json["entry"]["duplicate"] is True and repeat.json["member"]["balance"] == 50
    redeemed = world.call("POST", "/members/{card}/redeem", body={"points": 20}, **support)
    assert redeemed.json["member"]["balance"] == 30
    too_much = world.call("POST", "/members/{card}/redeem", body={"points": 999}, **support)
    assert too_much.status_code == 409
    frozen = world.call("POST", "/members/{card}/status", body={"action": "freeze"}, **support)
    assert frozen.json["status"] == "frozen"
    assert world.call("POST", "/members/{card}/redeem", body={"points": 1},
                      **support).status_code == 409
    world.call("POST", "/members/{card}/status", body={"action": "cancel"}, **support)
    restored = world.call("POST", "/members/{card}/status", body={"action": "restore"},
                          **support)
    assert restored.json["status"] == "active" and "kept" in restored.json["note"]
    assert world.call("POST", "/members/{card}/status", body={"action": "explode"},
                      **support).status_code == 422
    rebound = world.call("POST", "/members/{card}/rebind", body={"phone": "13912345678"},
                         **support)
    assert rebound.json["phone"] == "+8613912345678" and rebound.json["balance"] == 30
    shown = world.call("GET", "/members/{card}", params={"history": "3"}, **support)
    assert len(shown.json["history"]) == 3

    entries = _audit(redis_client)
    assert [e.action for e in entries] == [
        "member.adjust", "member.redeem", "member.freeze", "member.cancel", "member.restore",
        "member.rebind",
    ]
    rebind = entries[-1]
    assert rebind.before["phone"] == "+8613812345678" and rebind.after["phone"] == "+8613912345678"
    assert entries[0].before["balance"] == 0 and entries[0].after["balance"] == 50


@pytest.mark.parametrize("body, field", [
    (b"[1]", None), (b"{", None), ({"points": "5"}, "points"),
    ({"points": 5, "reason": "r", "x": 1}, "x"),
])
def test_bad_bodies_are_4xx_never_500(world, body, field):
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    found = world.api.client.simulate_post(
        f"/v1/admin/tenants/ACME/members/{world.cards['ACME']}/adjust", body=raw,
        headers={"Authorization": f"Bearer {world.tokens[('ACME', 'support')]}"})
    assert 400 <= found.status_code < 500
    if field:
        assert found.json["error"]["field"] == field


def test_token_shape(world):
    for (tenant, _), token in world.tokens.items():
        assert re.fullmatch(rf"ist\.{tenant}\.[A-Za-z0-9_-]{{43}}", token)


def test_support_answers_feedback_by_sms_once_and_it_is_audited(world, redis_client):
    from points_bridge.sms.outbound import Outbox

    note = world.care["ACME"]["feedback_id"]
    listed = world.call("GET", "/feedback", role="support", params={"status": "open"})
    assert [f["id"] for f in listed.json["feedback"]] == [note]
    body = {"text": "Try our flagship store"}
    first = world.call("POST", "/feedback/{feedback_id}/answer", role="support", body=body)
    again = world.call("POST", "/feedback/{feedback_id}/answer", role="support", body=body)
    assert first.json["sms"] == "queued" and again.json["sms"] == "dup"
    assert first.json["feedback"]["status"] == "answered"
    assert Outbox(redis_client, "ACME").counters("answer")["queued"] == 1
    assert Outbox(redis_client, "BETA").counters("answer")["queued"] == 0
    entry = AuditLog(redis_client, "ACME").entries(1)[0]
    assert entry.action == "feedback.answer" and entry.after["answer"] == body["text"]
    beta = world.call("POST", "/feedback/{feedback_id}/answer", "BETA", role="support",
                      body=body, values={"feedback_id": note})
    assert beta.status_code == 404 or beta.json["feedback"]["id"] != note


def test_manager_previews_sends_and_follows_a_campaign(world):
    seg = {"segment": {"points_min": 100}}
    preview = world.call("POST", "/segments/preview", body=seg)
    assert preview.json["count"] == 1
    sent = world.call("POST", "/sms-campaigns", body={**seg, "text": "hi", "key": "x"})
    dup = world.call("POST", "/sms-campaigns", body={**seg, "text": "hi", "key": "x"})
    assert sent.status_code == 201 and dup.status_code == 200 and dup.json["duplicate"]
    status = world.call("GET", "/sms-campaigns/{sms_campaign_id}", role="support",
                        values={"sms_campaign_id": sent.json["id"]})
    assert status.json["counters"]["queued"] == 1
    assert world.call("GET", "/sms-report").json["total"]["queued"] >= 1
