"""Every script's KEYS share one hash tag: checked on every call of the suite.

``keyguard.py`` wraps both ways a script is called for the whole session and
fails any call whose keys span two hash tags; this test runs one scenario
that calls every shipped script, so none can be left unchecked, on the single
server and on the cluster (where such a call would also be a CROSSSLOT error).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from helpers import keyguard
from helpers.aio import Blocking

from codegen.products import ProductStore
from codegen.store.keyspace import TenantKeys
from codegen.store.wire import link_for
from points_bridge.archiving import archive_ledger
from points_bridge.campaigns import CampaignStore
from points_bridge.members import MemberStore
from points_bridge.rewards import Reward, RewardStore
from points_bridge.rules import Campaign
from points_bridge.scoped import points_scripts
from points_bridge.sms.outbound import Dispatcher, Outbox
from points_bridge.sms.outbound_config import OutboundSettings
from points_bridge.sms.senders import FileSender
from points_bridge.transfer import import_members
from tests.helpers.master import TEST_MASTER
from verify_api.channels.config import ChannelStore
from verify_api.check.batch_scans import void_codes
from verify_api.check.engine import CheckRequest, VerifyEngine
from verify_api.exc import RateLimited

pytestmark = pytest.mark.cluster


@pytest.mark.parametrize(
    ("key", "tag"),
    [("is:{ACME/s3}:scan:12", "ACME/s3"), ("is:{ACME}:meta", "ACME"), ("is:tenants", None),
     ("a{}b{c}", None), (b"x{y}z{w}", "y")],
)
def test_hash_tag_is_what_redis_hashes(key, tag):
    assert keyguard.hash_tag(key) == tag


def test_keys_spanning_two_tags_are_refused():
    with pytest.raises(AssertionError, match="more than one hash tag"):
        keyguard.check_keys("x", ["is:{ACME}:meta", "is:{ACME/s0}:claims"])
    with pytest.raises(AssertionError, match="more than one hash tag"):
        keyguard.check_keys("x", ["is:{ACME}:meta", "is:tenants"])
    keyguard.check_keys("x", ["is:channels:numbers"])  # one key is one slot


def test_every_script_is_called_with_one_hash_tag(
    redis_client, batch_factory, master_key, clock, tmp_path
):
    keyguard.SEEN.clear()
    batch, key_store = batch_factory("ACME", count=1000, sku="LIP-001")  # reserve, transition
    ProductStore(redis_client).add("ACME", "LIP-001", name="Lipstick", points=10)
    start = datetime.fromtimestamp(clock(), UTC) - timedelta(days=1)
    CampaignStore(redis_client, "ACME").add(
        Campaign("launch", start, start + timedelta(days=30), bonus=5, budget=100)
    )
    signer = key_store.signer("ACME", batch.key_id, batch.profile)
    pipe = link_for(redis_client)
    try:
        engine = Blocking(VerifyEngine(pipe, key_store, clock=clock, catalog_seconds=0))
        request = CheckRequest(signer.code(batch.first_serial + 1), "13800138000", "sms")
        answer = engine.verify("ACME", request, "203.0.113.7")  # verify, rate limits, ledger,
        assert answer.points_awarded == 15  # reserve_spend (the budget), member_update (join)
        redis_client.hset(TenantKeys("ACME").meta, "verify_rate_phone", "1/60")
        crossing = CheckRequest(signer.code(batch.first_serial + 3), "13800138000", "sms")
        with pytest.raises(RateLimited):  # unclaim: the refused request's claim undone
            engine.verify("ACME", crossing, "203.0.113.7")
        redis_client.hdel(TenantKeys("ACME").meta, "verify_rate_phone")
    finally:
        pipe.close()
    members = MemberStore(redis_client, "ACME", clock=clock, master=TEST_MASTER)
    member = members.find(phone="13800138000")
    members.rebind(member.card, "13900139000")  # del_if: the old phone's index
    void_codes(redis_client, key_store, "ACME", batch.batch_id,
               [signer.code(batch.first_serial + 2)])
    ChannelStore(redis_client, master_key).update("ACME", sms_number="106570216001")
    outbound = OutboundSettings(redis_client, "ACME")
    outbound.top_up(10)
    box = Outbox(redis_client, "ACME", clock=clock)
    assert box.enqueue("m1", "+8613900139000", "Hello", "campaign") == "queued"  # out_enqueue
    sent = Dispatcher(redis_client, "ACME", FileSender(tmp_path / "sms.jsonl"), outbound.get(),
                      clock=clock, sleep=clock.advance).run()  # out_charge, out_result
    assert sent == {"sent": 1}
    assert box.receipt("m1", True) == "delivered"  # out_receipt
    rewards = RewardStore(redis_client, "ACME", key_store=key_store, clock=clock)
    rewards.add(Reward("c20", "coupon", "20 off", 1), 1)
    done = rewards.redeem(member.card, "c20", key="k")  # reward_reserve, reward_settle
    rewards.use_coupon(done.coupon)  # coupon_redeem
    assert points_scripts(redis_client).out_requeue(  # out_requeue (nothing parked)
        keys=[box.message_key("m1"), box.keys.outbound_no_credit, box.queue_key("campaign"),
              box.keys.outbound_counters("campaign"), box.keys.outbound_counters("all")],
        args=["m1"]) == 0
    crm = tmp_path / "crm.csv"
    crm.write_text("phone,points\n13700137000,10\n13600136000,20\n")
    imported = import_members(redis_client, "ACME", crm, master=TEST_MASTER)  # import_members
    assert imported.created == 2
    time.sleep(0.002)  # the cut-off is in ms: after the entries' own ms
    archived = archive_ledger(redis_client, "ACME", cutoff=time.time(),  # ledger_archive
                              directory=tmp_path / "archive", master=TEST_MASTER)
    assert archived.members_trimmed == 3
    assert set(keyguard.SEEN) == set(keyguard.script_names().values())
