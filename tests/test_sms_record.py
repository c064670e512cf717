"""Every SMS on record: the inbound log and its reports, the keypad menu, credit retries,
and a CRM import that carries cards and tiers."""

from __future__ import annotations

from datetime import date

from helpers.channels_world import make_world

from codegen.store.keyspace import TenantKeys
from points_bridge.cards import card_number
from points_bridge.ledger import Ledger
from points_bridge.members import MemberStore
from points_bridge.outreach.draws import Draws
from points_bridge.outreach.segments import Segment
from points_bridge.outreach.sms_campaigns import SmsCampaigns
from points_bridge.settings import SettingsStore
from points_bridge.sms.outbound import Dispatcher, Outbox
from points_bridge.sms.outbound_config import OutboundSettings
from points_bridge.sms.senders import FileSender
from points_bridge.transfer import import_members
from tests.helpers.master import TEST_MASTER
from verify_api.admin.reports import Reports

DAY = date(2026, 1, 1)
MEMBER = "+8613800138000"


def _rows(table):
    return dict((row[0], row[-1]) for row in table.rows)


def test_every_message_is_logged_with_its_outcome(batch_factory, redis_client, clock):
    world = make_world(batch_factory, redis_client, clock)
    Draws(redis_client, "ACME").open("cj", "blue")
    assert "欢迎" in world.sms("888", sid="a").text
    world.sms("888", sid="a")  # the gateway's retry: answered again, logged once
    world.sms("666", sid="b")
    world.sms(world.code(1), sid="c")
    world.sms("cj#blue", sid="d")
    world.sms("where can I buy it?", sid="e")
    world.sms("DH#nothing", sid="f")
    world.sms("666", sender="+8613900000009", sid="h")  # no member
    reports = Reports(redis_client, "ACME", clock=clock)
    by_kind = _rows(reports.sms(DAY, DAY, "kind"))
    assert by_kind == {"join": 1, "balance": 2, "code": 1, "draw": 1, "feedback": 1,
                       "redeem": 1}
    outcomes = _rows(reports.sms(DAY, DAY, "outcome"))
    assert outcomes["join"] == 1 and outcomes["not_member"] == 1 and outcomes["balance"] == 1
    assert outcomes["draw_entered"] == 1 and outcomes["redeem_unknown"] == 1
    assert _rows(reports.sms(DAY, DAY, "keyword"))["666"] == 2
    assert _rows(reports.sms(DAY, DAY, "day")) == {"2026-01-01": 7}


def test_replies_are_linked_to_the_campaign_that_asked(batch_factory, redis_client, clock):
    world = make_world(batch_factory, redis_client, clock)
    MemberStore(redis_client, "ACME", master=TEST_MASTER).join(MEMBER)
    campaigns = SmsCampaigns(redis_client, "ACME", clock=clock, master=TEST_MASTER)
    sent = campaigns.send(Segment(), "Like it? Reply!",
                                                                "k1")
    world.sms("yes, love it", sid="r1")
    world.sms("hello", sender="+8613900000009", sid="r2")  # never asked
    by_campaign = _rows(Reports(redis_client, "ACME", clock=clock).sms(DAY, DAY, "campaign"))
    assert by_campaign == {sent.campaign_id: 1, "-": 1}


def test_the_log_keeps_the_tenants_retention(batch_factory, redis_client, clock):
    world = make_world(batch_factory, redis_client, clock, sms_log_days=1)
    world.sms("hello", sid="old")
    clock.advance(3 * 86400)
    world.sms("hello again", sid="new")
    texts = [raw[b"text"] for _, raw in redis_client.xrange(TenantKeys("ACME").sms_inbound)]
    assert texts == [b"hello again"]


def test_the_keypad_menu_joins_and_tells_the_balance(batch_factory, redis_client, clock):
    world = make_world(batch_factory, redis_client, clock)
    form = {"From": "+8613900000007", "To": "106570216001", "Digits": "1#"}
    joined = world.twilio("/v1/ivr/inbound", **form)
    assert "会员卡号" in joined.text and "<Hangup/>" in joined.text
    member = MemberStore(redis_client, "ACME").find(phone="+8613900000007")
    Ledger(redis_client, "ACME").adjust(member.card, 42, reason="gift")
    told = world.twilio("/v1/ivr/inbound", **{**form, "Digits": "2#"})
    assert "42" in told.text
    prompt = world.twilio("/v1/ivr/inbound", **{k: v for k, v in form.items() if k != "Digits"})
    assert "按1" in prompt.text and "按2" in prompt.text


def test_messages_refused_for_credit_go_out_after_a_top_up(redis_client, points_tenant, clock,
                                                           tmp_path):
    tenant = points_tenant()
    settings = OutboundSettings(redis_client, tenant)
    settings.update({"cost": 10})
    settings.top_up(10)
    box = Outbox(redis_client, tenant, clock=clock)
    box.enqueue("a", "+8613800000001", "one", "campaign")
    box.enqueue("b", "+8613800000002", "two", "reply")

    def dispatch():
        return Dispatcher(redis_client, tenant, FileSender(tmp_path / "sms.jsonl"),
                          settings.get(), clock=clock, sleep=clock.advance).run()

    assert dispatch() == {"sent": 1, "no_credit": 1}
    refused = box.get("a")
    assert (refused.status, refused.error) == ("failed", "no_credit")
    settings.top_up(100)
    assert box.requeue_no_credit() == 1 and box.requeue_no_credit() == 0
    assert dispatch() == {"sent": 1}
    assert box.get("a").status == "sent"
    assert box.counters()["failed"] == 0 and box.counters()["sent"] == 2


def test_import_carries_cards_and_tiers(redis_client, points_tenant, tmp_path):
    tenant = points_tenant()
    SettingsStore(redis_client).update(tenant, tiers="silver:0,gold:1000")
    free = card_number(123456, b"k" * 32)
    taken_by = MemberStore(redis_client, tenant, master=TEST_MASTER).join("13800000001")[0]
    path = tmp_path / "crm.csv"
    path.write_text("phone,card,tier,points\n"
                    f"13800000002,{free},gold,10\n"
                    f"13800000003,{taken_by.card},,5\n"
                    f"13800000004,,platinum,0\n"
                    "13800000005,,,0\n")
    report = import_members(redis_client, tenant, path, master=TEST_MASTER)
    assert [where for where, _ in report.errors] == ["line 3", "line 4"]
    assert "already held" in report.errors[0][1]
    members = MemberStore(redis_client, tenant, master=TEST_MASTER)
    kept = members.find(phone="13800000002")
    assert kept.card == free and kept.pinned_tier == "gold" and kept.tier == "gold"
    assert kept.balance == 10
    assert members.find(card=free).phone == "+8613800000002"
    assert members.by_phone("+8613800000003") is None  # the refused row wrote nothing
    again = import_members(redis_client, tenant, path,
                           master=TEST_MASTER)  # a re-run changes nothing
    assert again.created == 0 and members.find(phone="13800000002").card == free
