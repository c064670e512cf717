"""credit_claim against a real redis-server: rules, tiers, exactly once under concurrency."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from codegen.products import ProductStore
from codegen.store.keyspace import PointsKeys, shard_of
from points_bridge.campaigns import CampaignStore
from points_bridge.credit import BlockingCrediter
from points_bridge.ledger import Ledger
from points_bridge.members import MemberStore
from points_bridge.rules import Campaign
from points_bridge.settings import SettingsStore
from tests.helpers.master import TEST_MASTER

pytestmark = pytest.mark.cluster  # and on a 3-master Redis Cluster (conftest.py)

PHONE = "+8613812345678"
AT = int(datetime(2025, 6, 1, 4, tzinfo=UTC).timestamp())  # noon in Shanghai


@pytest.fixture
def tenant(redis_client, points_tenant) -> str:
    tenant = points_tenant()
    ProductStore(redis_client).add(tenant, "LIP-001", name="Lipstick", points=100)
    return tenant


@pytest.fixture
def crediter(redis_client) -> BlockingCrediter:
    return BlockingCrediter(redis_client, master=TEST_MASTER)


def campaign(cid: str, **kw) -> Campaign:
    start = datetime.fromtimestamp(AT, UTC) - timedelta(days=1)
    return Campaign(cid, start, start + timedelta(days=30), **kw)


def claim(crediter, tenant, serial, phone=PHONE, at=AT, **kw):
    return crediter.credit_claim(tenant, phone, serial, "LIP-001", "sms", "SD", at, **kw)


def test_a_claim_earns_the_product_points_and_creates_the_member(crediter, tenant):
    result = claim(crediter, tenant, 7)
    assert (result.points, result.balance, result.tier, result.duplicate) == (100, 100, "silver",
                                                                              False)
    assert (result.next_tier, result.points_to_next) == ("gold", 900)
    assert result.member_created
    assert result.applied_rules == ({"kind": "base", "name": "base", "delta": 100,
                                     "limited": False},)


def test_a_repeat_returns_the_first_result(crediter, tenant):
    first = claim(crediter, tenant, 7)
    again = claim(crediter, tenant, 7)
    assert again.duplicate and (again.points, again.balance, again.member_card) == (
        first.points, first.balance, first.member_card
    )


def test_the_verify_answer_says_which_rules_applied(redis_client, crediter, tenant):
    store = CampaignStore(redis_client, tenant)
    store.add(campaign("double", multiplier_bp=20_000))
    store.add(campaign("shandong", bonus=15, regions=frozenset({"SD"})))
    result = claim(crediter, tenant, 7)
    assert result.points == 215
    assert [(r["kind"], r["name"], r["delta"]) for r in result.applied_rules] == [
        ("base", "base", 100), ("campaign_multiplier", "double", 100),
        ("campaign_bonus", "shandong", 15),
    ]


def test_changes_apply_without_a_restart(redis_client, crediter, tenant):
    assert claim(crediter, tenant, 1).points == 100
    ProductStore(redis_client).update(tenant, "LIP-001", points=40)
    assert claim(crediter, tenant, 2).points == 40
    CampaignStore(redis_client, tenant).add(campaign("gift", bonus=5))
    assert claim(crediter, tenant, 3).points == 45
    CampaignStore(redis_client, tenant, clock=lambda: AT + 100).end("gift")
    assert claim(crediter, tenant, 4, at=AT + 10**6).points == 40


def test_an_unknown_product_earns_nothing_but_spends_the_code(crediter, tenant):
    result = crediter.credit_claim(tenant, PHONE, 9, "NOPE", "web", None, AT)
    assert result.points == 0 and claim(crediter, tenant, 9).duplicate


def test_birthday_and_daily_cap(redis_client, crediter, tenant):
    SettingsStore(redis_client).update(
        tenant, birthday_multiplier="2", birthday_bonus="10", daily_cap="250"
    )
    MemberStore(redis_client, tenant, master=TEST_MASTER).join(PHONE, birthday="1990-06-01")
    assert claim(crediter, tenant, 1).points == 210
    capped = claim(crediter, tenant, 2)
    assert capped.points == 40 and capped.applied_rules[-1]["kind"] == "daily_cap"
    assert claim(crediter, tenant, 3, at=AT + 86_400).points == 100, "a new day, not a birthday"


def test_tier_is_recomputed_on_every_credit_and_logged(redis_client, crediter, tenant):
    SettingsStore(redis_client).update(tenant, tiers="silver:0,gold:250,diamond:1000")
    results = [claim(crediter, tenant, serial) for serial in range(3)]
    assert [r.tier for r in results] == ["silver", "silver", "gold"]
    assert results[-1].points_to_next == 700
    history = Ledger(redis_client, tenant).history(results[0].member_card)
    assert [(e.kind, e.fields.get("to")) for e in history][-2:] == [("credit", None),
                                                                    ("tier", "gold")]


def test_a_pinned_tier_is_a_floor(redis_client, crediter, tenant):
    card = claim(crediter, tenant, 1).member_card
    members = MemberStore(redis_client, tenant, master=TEST_MASTER)
    assert members.pin_tier(card, "gold", reason="VIP").tier == "gold"
    result = claim(crediter, tenant, 2)
    assert (result.tier, result.next_tier, result.points_to_next) == ("gold", "diamond", 4800)
    assert members.pin_tier(card, None).tier == "silver"


def test_a_frozen_member_s_claim_waits_and_is_credited_on_unfreeze(
    redis_client, crediter, tenant
):
    """Issue 17: a code checked while the member is frozen lost its points for good."""
    card = claim(crediter, tenant, 1).member_card
    members = MemberStore(redis_client, tenant, master=TEST_MASTER)
    members.change_status(card, "freeze")
    frozen = claim(crediter, tenant, 2)
    assert frozen.points == 0 and frozen.pending and "frozen" in frozen.note
    assert frozen.balance == 100
    again = claim(crediter, tenant, 2)
    assert again.pending and not again.duplicate, "still waiting, not spent"
    assert [e.kind for e in Ledger(redis_client, tenant).history(card)] == ["credit", "status"]
    member, note = members.change_status(card, "unfreeze")
    assert member.balance == 200 and "1 waiting claims credited (100 points)" in note
    assert claim(crediter, tenant, 2).duplicate, "credited once, on unfreeze"
    assert members.get(card).balance == 200
    assert redis_client.hlen(PointsKeys(tenant).pending(shard_of(card))) == 0


def test_a_waiting_claim_left_by_a_cut_off_unfreeze_is_credited_by_reconcile(
    redis_client, crediter, tenant
):
    from points_bridge.reconcile import Reconciler

    card = claim(crediter, tenant, 1).member_card
    members = MemberStore(redis_client, tenant, master=TEST_MASTER)
    members.change_status(card, "freeze")
    assert claim(crediter, tenant, 2).pending
    members._settle_pending = lambda card: (0, 0)  # the process dies right after unfreezing
    members.change_status(card, "unfreeze")
    assert members.get(card).balance == 100
    report = Reconciler(redis_client, tenant, min_age=0, master=TEST_MASTER).run()
    assert (report.settled, report.points) == (1, 100)
    assert members.get(card).balance == 200


def test_a_cancelled_member_s_claim_earns_nothing(redis_client, crediter, tenant):
    card = claim(crediter, tenant, 1).member_card
    members = MemberStore(redis_client, tenant, master=TEST_MASTER)
    members.change_status(card, "cancel")
    cancelled = claim(crediter, tenant, 2)
    assert cancelled.points == 0 and not cancelled.pending and "cancelled" in cancelled.note
    members.change_status(card, "restore")
    assert claim(crediter, tenant, 2).duplicate and members.get(card).balance == 100


def test_rebind_keeps_points_and_a_replay_by_the_old_phone_credits_nothing(
    redis_client, crediter, tenant
):
    card = claim(crediter, tenant, 1).member_card
    members = MemberStore(redis_client, tenant, master=TEST_MASTER)
    members.rebind(card, "+8613912345678")
    assert claim(crediter, tenant, 2, phone="+8613912345678").balance == 200
    replay = claim(crediter, tenant, 1)  # the outbox still says the old phone
    assert replay.duplicate and replay.member_card == card
    assert members.get(card).balance == 200


def test_fifty_concurrent_credits_of_one_code_credit_once(redis_client, crediter, tenant):
    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(lambda _: claim(crediter, tenant, 42), range(50)))
    assert sum(not r.duplicate for r in results) == 1
    assert {(r.points, r.balance) for r in results} == {(100, 100)}
    card = results[0].member_card
    assert [e.kind for e in Ledger(redis_client, tenant).history(card)] == ["credit"]


def test_concurrent_credits_of_one_member_respect_the_daily_cap(redis_client, crediter, tenant):
    SettingsStore(redis_client).update(tenant, daily_cap="550")
    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(lambda s: claim(crediter, tenant, s), range(10)))
    assert sorted(r.points for r in results) == [0] * 4 + [50] + [100] * 5
    assert MemberStore(redis_client, tenant).find(phone=PHONE).balance == 550


def test_a_budget_is_never_overspent_under_concurrency(redis_client, crediter, tenant):
    store = CampaignStore(redis_client, tenant)
    store.add(campaign("launch", bonus=30, budget=500))
    phones = [f"+861381234{i:04d}" for i in range(25)]
    with ThreadPoolExecutor(25) as pool:
        results = list(pool.map(lambda i: claim(crediter, tenant, i, phone=phones[i]), range(25)))
    given = sum(r["delta"] for res in results for r in res.applied_rules
                if r["name"] == "launch")
    assert given == 500 and store.get("launch").spent == 500
