"""Customer care on a real redis-server, with a real local HTTP receiver as the SMS gateway."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from helpers.channels_world import SECRET, make_world
from helpers.httpkit import serve_posts
from hypothesis import given
from hypothesis import strategies as st

from points_bridge.ledger import Ledger
from points_bridge.members import MemberStore
from points_bridge.outreach.care import Care
from points_bridge.outreach.draws import Draws, entrants_digest, pick
from points_bridge.outreach.segments import DAY, Segment, matches, preview
from points_bridge.outreach.sms_campaigns import SmsCampaigns
from points_bridge.settings import SettingsStore
from points_bridge.sms.optout import OptOuts
from points_bridge.sms.outbound import Dispatcher, Outbox
from points_bridge.sms.outbound_config import OutboundSettings
from points_bridge.sms.senders import FileSender, HttpGatewaySender
from tests.helpers.master import TEST_MASTER
from verify_api.admin.alerts import Alerts, breaches, window_counts


class Gateway:
    """What the local gateway received; answers 200 with its own id, or 500 for 'fail'."""

    def __init__(self) -> None:
        self.posts: list[dict] = []
        self.headers: list[dict] = []
        self.lock = threading.Lock()

    def answer(self, headers: dict, body: bytes) -> tuple[int, bytes]:
        doc = json.loads(body)
        with self.lock:
            self.posts.append(doc)
            self.headers.append(headers)
            n = len(self.posts)
        if "fail" in json.dumps(doc):
            return 500, b""
        return 200, json.dumps({"msgid": f"gw{n}"}).encode()


@contextmanager
def serve_gateway() -> Iterator[tuple[Gateway, str]]:
    gw = Gateway()
    with serve_posts(gw.answer, "/send") as url:
        yield gw, url


@pytest.fixture
def gateway() -> Iterator[tuple[Gateway, str]]:
    with serve_gateway() as served:
        yield served


def http_sender(url: str) -> HttpGatewaySender:
    return HttpGatewaySender(url, auth_header="Authorization: Bearer t0k",
                             template='{"mobile": "{phone}", "msg": "{text}", "ref": "{id}"}',
                             id_field="msgid")


def seed_members(redis_client, tenant: str, clock) -> dict[str, str]:
    """Twelve members: gold/silver, Zhejiang/Jiangsu, some inactive for 100 days."""
    store = MemberStore(redis_client, tenant, clock=clock, master=TEST_MASTER)
    cards = {}
    for i in range(12):
        phone = f"+86138000{i:05d}"
        member, _ = store.join(phone, birthday=f"1990-{i % 12 + 1:02d}-15")
        key = store.keys.member(member.card)
        region = "Zhejiang" if i % 2 == 0 else "Jiangsu"
        tier = "gold" if i % 3 == 0 else "silver"
        last = int(clock()) - (100 * DAY if i < 6 else 10 * DAY)
        redis_client.hset(key, mapping={"tier": tier, "last_region": region,
                                        "last_check_at": last, f"sku:SKU-{i % 2}": last})
        cards[phone] = member.card
    return cards


# -- segments ----------------------------------------------------------------------------

def test_segment_counts_against_a_seeded_member_set(redis_client, points_tenant, clock):
    tenant = points_tenant()
    seed_members(redis_client, tenant, clock)
    now = int(clock())
    gold_zj_idle = Segment(tiers=("gold",), regions=("zhejiang",), no_check_days=90)
    # gold: i in 0,3,6,9; Zhejiang: even -> 0, 6; idle (i < 6) -> 0 only
    count, sample = preview(redis_client, tenant, gold_zj_idle, now, master=TEST_MASTER)
    assert count == 1 and sample[0].phone == "+8613800000000"
    assert preview(redis_client, tenant, Segment(), now, master=TEST_MASTER)[0] == 12
    assert preview(redis_client, tenant, Segment(skus=("SKU-1",)), now, master=TEST_MASTER)[0] == 6
    assert preview(redis_client, tenant, Segment(birthday_month=3), now, master=TEST_MASTER)[0] == 1
    seg = Segment(checked_within_days=30)
    assert preview(redis_client, tenant, seg, now, master=TEST_MASTER)[0] == 6


records = st.fixed_dictionaries({
    "status": st.sampled_from(["active", "frozen"]),
    "tier": st.sampled_from(["silver", "gold"]),
    "balance": st.integers(0, 1000).map(str),
    "last_check_at": st.integers(0, 10**9).map(str),
    "created_at": st.just("0"),
})


@given(records, st.integers(0, 10**9), st.integers(0, 1000))
def test_a_narrower_segment_never_matches_more(record, now, points):
    wide = Segment(tiers=("silver", "gold"))
    narrow = Segment(tiers=("gold",), points_min=points)
    assert not matches(narrow, record, now) or matches(wide, record, now)
    assert matches(Segment(status="any"), record, now)


@given(records, st.integers(0, 10**9), st.integers(0, 3650))
def test_no_check_days_and_checked_within_are_complements(record, now, days):
    idle = matches(Segment(status="any", no_check_days=days), record, now)
    recent = matches(Segment(status="any", checked_within_days=days), record, now)
    last = int(record["last_check_at"])
    if last and now - last != days * DAY:
        assert idle != recent


# -- campaigns, gateway, opt-out, idempotency --------------------------------------------

def test_campaign_through_a_real_gateway_with_receipts_and_cost(
    redis_client, points_tenant, clock, gateway
):
    gw, url = gateway
    tenant = points_tenant()
    seed_members(redis_client, tenant, clock)
    settings = OutboundSettings(redis_client, tenant)
    settings.update({"cost": 5, "rate": 100})
    settings.top_up(100)
    OptOuts(redis_client, tenant).opt_out("+8613800000003")
    seg = Segment(tiers=("gold",))
    campaigns = SmsCampaigns(redis_client, tenant, clock=clock, master=TEST_MASTER)
    campaign = campaigns.send(seg, "Hi {tier}", "k-1")
    again = campaigns.send(seg, "Hi {tier}", "k-1")
    assert again.duplicate and again.campaign_id == campaign.campaign_id
    assert campaign.targeted == 4 and campaign.counters["queued"] == 3  # one opted out
    assert campaign.status == "queued"  # nothing handled yet
    sent = Dispatcher(redis_client, tenant, http_sender(url), settings.get(), clock=clock,
                      sleep=clock.advance).run()
    assert sent == {"sent": 3}
    assert len(gw.posts) == 3 and {p["msg"] for p in gw.posts} == {"Hi gold"}
    assert gw.headers[0]["Authorization"] == "Bearer t0k"
    box = Outbox(redis_client, tenant, clock=clock)
    assert box.receipt(gw.posts[0]["ref"], True) == "delivered"
    assert box.receipt("gw2", False, "absent") == "undelivered"  # by the gateway's id
    assert box.receipt("gw2", True) == "undelivered"  # the first receipt stands
    assert box.receipt("nope", True) == "unknown"
    assert SmsCampaigns(redis_client, tenant).get(campaign.campaign_id).status == "done"
    status = SmsCampaigns(redis_client, tenant).get(campaign.campaign_id).counters
    assert status == {"queued": 0, "sent": 3, "delivered": 1, "undelivered": 1, "failed": 0,
                      "skipped": 1, "spent": 15}
    assert settings.credit() == 85


def test_failed_sends_are_refunded_and_no_credit_fails(redis_client, points_tenant, clock,
                                                       gateway):
    gw, url = gateway
    tenant = points_tenant()
    settings = OutboundSettings(redis_client, tenant)
    settings.update({"cost": 10})
    settings.top_up(15)
    box = Outbox(redis_client, tenant, clock=clock)
    box.enqueue("a", "+8613800000001", "please fail", "campaign")
    box.enqueue("b", "+8613800000002", "ok", "campaign")
    box.enqueue("c", "+8613800000003", "ok too", "campaign")
    done = Dispatcher(redis_client, tenant, http_sender(url), settings.get(), clock=clock,
                      sleep=clock.advance).run()
    assert done == {"failed": 1, "sent": 1, "no_credit": 1,
                    "failures": {"gateway answered 500": 1}}  # why, not only how many
    assert box.get("a").error == "gateway answered 500" and box.get("c").error == "no_credit"
    assert settings.credit() == 5
    assert box.report()["total"]["spent"] == 10


def test_rate_limit_per_simulated_second(redis_client, points_tenant, clock, tmp_path):
    tenant = points_tenant()
    settings = OutboundSettings(redis_client, tenant)
    settings.update({"rate": 3})
    box = Outbox(redis_client, tenant, clock=clock)
    for i in range(10):
        box.enqueue(f"m{i}", f"+86138000000{i:02d}", "hi", "campaign")
    slept = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)

    start = clock()
    Dispatcher(redis_client, tenant, FileSender(tmp_path / "out.jsonl"), settings.get(),
               clock=clock, sleep=sleep).run()
    per_second = Counter(box.get(f"m{i}").sent_at - int(start) for i in range(10))
    assert max(per_second.values()) == 3 and sorted(per_second) == [0, 1, 2, 3]
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 10


def test_quiet_hours_hold_bulk_but_not_replies(redis_client, points_tenant, clock, tmp_path):
    tenant = points_tenant(points_timezone="UTC")
    settings = OutboundSettings(redis_client, tenant)
    settings.update({"quiet": "23:00-08:00"})  # the clock starts at 00:00 UTC
    box = Outbox(redis_client, tenant, clock=clock)
    box.enqueue("bulk", "+8613800000001", "promo", "campaign")
    box.enqueue("tx", "+8613800000001", "your balance", "reply")
    run = Dispatcher(redis_client, tenant, FileSender(tmp_path / "o.jsonl"), settings.get(),
                     clock=clock, sleep=clock.advance)
    assert run.run() == {"sent": 1} and box.get("bulk").status == "queued"
    clock.advance(8 * 3600)
    assert run.run() == {"sent": 1} and box.get("bulk").status == "sent"


def test_an_opt_out_while_queued_wins_and_only_the_ack_goes(redis_client, points_tenant,
                                                            clock, tmp_path):
    tenant = points_tenant()
    settings = OutboundSettings(redis_client, tenant)
    box = Outbox(redis_client, tenant, clock=clock)
    phone = "+8613800000009"
    assert box.enqueue("promo", phone, "promo", "campaign") == "queued"
    OptOuts(redis_client, tenant).opt_out(phone)
    assert box.enqueue("ack", phone, "you are out", "optout_ack") == "queued"
    assert box.enqueue("later", phone, "a reply", "reply") == "optout"
    done = Dispatcher(redis_client, tenant, FileSender(tmp_path / "o.jsonl"), settings.get(),
                      clock=clock, sleep=clock.advance).run()
    assert done == {"sent": 1, "optout": 1}
    assert box.get("promo").status == "skipped" and box.get("ack").status == "sent"


def test_sms_stop_records_the_opt_out_queues_replies_and_join_opts_in(
    batch_factory, redis_client, clock
):
    world = make_world(batch_factory, redis_client, clock, language="en")
    try:
        phone = "+8613800138000"
        world.json("/v1/sms/aliyun", [{"phone_number": phone, "content": "888",
                                       "dest_code": "106570216001", "sequence_id": "s1"}])
        stop = {"phone_number": phone, "content": "TD", "dest_code": "106570216001",
                "sequence_id": "s2"}
        assert world.json("/v1/sms/aliyun", [stop]).status_code == 200
        world.json("/v1/sms/aliyun", [stop])  # the gateway's retry
        assert OptOuts(redis_client, "ACME").is_out(phone)
        box = Outbox(redis_client, "ACME", clock=clock)
        assert box.get("r.aliyun:s2").kind == "optout_ack" and box.pending()["tx"] == 2
        world.json("/v1/sms/aliyun", [{"phone_number": phone, "content": "666",
                                       "dest_code": "106570216001", "sequence_id": "s3"}])
        assert box.get("r.aliyun:s3") is None  # opted out: nothing after the acknowledgement
        world.json("/v1/sms/aliyun", [{"phone_number": phone, "content": "888",
                                       "dest_code": "106570216001", "sequence_id": "s4"}])
        assert not OptOuts(redis_client, "ACME").is_out(phone)
        assert box.get("r.aliyun:s4").status == "queued"
    finally:
        world.app.engine.link.close()


def test_receipts_route_is_signed(batch_factory, redis_client, clock):
    from verify_api.channels import signatures

    world = make_world(batch_factory, redis_client, clock)
    try:
        box = Outbox(redis_client, "ACME", clock=clock)
        box.enqueue("m1", "+8613800000001", "hi", "reply")
        redis_client.hset(box.message_key("m1"), "status", "sent")
        body = json.dumps({"receipts": [{"id": "m1", "status": "delivered"}]}).encode()
        path = "/v1/tenants/ACME/sms/receipts"
        bad = world.client.simulate_post(path, body=body,
                                         headers={"X-Itemseal-Signature": "00"})
        assert bad.status_code == 403
        good = world.client.simulate_post(path, body=body, headers={
            "X-Itemseal-Signature": signatures.itemseal_signature(SECRET, body),
            "Content-Type": "application/json"})
        assert good.json == {"results": [{"id": "m1", "status": "delivered"}]}
    finally:
        world.app.engine.link.close()


# -- care --------------------------------------------------------------------------------

def test_two_care_schedulers_at_once_send_each_message_once(redis_client, points_tenant,
                                                            clock):
    tenant = points_tenant(points_timezone="UTC")
    seed_members(redis_client, tenant, clock)
    Care(redis_client, tenant).configure({"reminder": {"on": True, "days": 90},
                                          "birthday": {"on": True},
                                          "tier": {"on": True}})
    results = []

    def run() -> None:
        results.append(Care(redis_client, tenant, clock=clock, master=TEST_MASTER).run())

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = Counter()
    for r in results:
        total.update(r)
    assert total["reminder"] == 6  # members 0-5 idle for 100 days, each once
    assert total["tier"] == 4  # gold is above the first tier (silver)
    assert total["birthday"] == 0  # nobody's birthday on 1 January
    assert Care(redis_client, tenant, clock=clock, master=TEST_MASTER).run() == {
        "birthday": 0, "reminder": 0, "tier": 0, "expiry": 0}
    assert Outbox(redis_client, tenant).pending()["bulk"] == 10


def test_birthday_greeting_names_the_multiplier(redis_client, points_tenant, clock):
    tenant = points_tenant(points_timezone="UTC", points_birthday_bp="20000")
    members = MemberStore(redis_client, tenant, clock=clock, master=TEST_MASTER)
    member, _ = members.join("+8613800000001", birthday="01-01")
    Care(redis_client, tenant).configure({"birthday": {"on": True}})
    assert Care(redis_client, tenant, clock=clock, master=TEST_MASTER).run()["birthday"] == 1
    found = Outbox(redis_client, tenant).get(f"care:birthday:2026:{member.card}")
    assert "x2" in found.text


# -- draws -------------------------------------------------------------------------------

@given(st.lists(st.text(min_size=1, max_size=8), max_size=30), st.text(max_size=16),
       st.integers(1, 10))
def test_a_pick_is_reproducible_and_order_free(entrants, seed, n):
    first = pick(entrants, seed, n)
    assert first == pick(list(reversed(entrants)), seed, n)
    assert len(first) == min(n, len(set(entrants))) and set(first) <= set(entrants)


def test_draw_by_sms_close_and_reproduce(batch_factory, redis_client, clock):
    world = make_world(batch_factory, redis_client, clock, language="en")
    try:
        draws = Draws(redis_client, "ACME", clock=clock)
        draws.open("cj", "Blue", winners=2, prize="You won!")
        phones = [f"+86138001380{i:02d}" for i in range(6)]
        for i, phone in enumerate(phones):
            world.sms("888", sender=phone, sid=f"j{i}")
            text = world.sms(f"CJ#{'blue' if i < 4 else 'red'}", sender=phone, sid=f"e{i}").text
            assert "in the draw" in text
        assert "not a member" in world.sms("cj#blue", sender="+8613900000000", sid="x").text
        closed, record = draws.close("cj")
        right = phones[:4]
        assert record["winners"] == pick(right, record["seed"], 2)
        assert record["entrants_sha256"] == entrants_digest(right)
        assert closed.status == "closed" and len(closed.picked) == 2
        assert Outbox(redis_client, "ACME").counters("draw:cj")["queued"] == 2
        assert "closed" in world.sms("cj#blue", sender=phones[0], sid="late").text
    finally:
        world.app.engine.link.close()


# -- alerts ------------------------------------------------------------------------------

def test_window_counts_survive_a_day_rolling_over():
    baseline = {"20260101": {"Zhejiang": 5}, "20260102": {}}
    current = {"20260102": {"Zhejiang": 4}, "20260103": {"Zhejiang": 3}}
    assert window_counts(current, baseline) == {"Zhejiang": 7}
    assert breaches({"Zhejiang": 7, "Jiangsu": 2}, 5) == [("Zhejiang", 7)]
    assert breaches({"Zhejiang": 7}, 0) == []


def test_counterfeit_surge_alert_goes_to_the_webhook_once(redis_client, points_tenant, clock,
                                                         gateway, master_key):
    from codegen.store.keyspace import TenantKeys
    from verify_api.check.stats import day_of

    gw, url = gateway
    tenant = points_tenant()
    alerts = Alerts(redis_client, tenant, master=master_key, clock=clock)
    alerts.configure({"webhook_url": url, "webhook_secret": "s" * 16,
                      "counterfeit_threshold": 3, "window_minutes": 10,
                      "sms_phones": ["+8613800000001"]})
    assert b"s" * 16 not in redis_client.get(f"is:{{{tenant}}}:alerts:config")  # sealed
    assert alerts.config()["webhook_secret"] == "s" * 16
    zone = SettingsStore(redis_client).get(tenant).timezone
    day = TenantKeys(tenant).stats_day(day_of(clock(), zone))
    redis_client.hincrby(day, "cf_region:Zhejiang", 10)
    assert alerts.run() == []  # the first run takes the baseline
    clock.advance(60)
    redis_client.hincrby(day, "cf_region:Zhejiang", 2)
    assert alerts.run() == []  # 2 < 3
    clock.advance(60)
    redis_client.hincrby(day, "cf_region:Zhejiang", 1)
    fired = alerts.run()
    assert [a.kind for a in fired] == ["counterfeit_surge"] and fired[0].detail["count"] == 3
    assert alerts.run() == []  # once per window
    assert len(gw.posts) == 1 and gw.posts[0]["detail"]["region"] == "Zhejiang"
    assert "X-Itemseal-Signature" in gw.headers[0]
    assert Outbox(redis_client, tenant).pending()["tx"] == 1


def test_ledger_credit_records_check_fields(redis_client, points_tenant, clock):
    from points_bridge.credit import check_fields

    assert check_fields("SKU-1", "Zhejiang", 5) == {
        "last_check_at": "5", "sku:SKU-1": "5", "last_region": "Zhejiang"}
    tenant = points_tenant()
    member, _ = MemberStore(redis_client, tenant, master=TEST_MASTER).join("+8613800000001")
    Ledger(redis_client, tenant).adjust(member.card, 1, reason="x")
    assert redis_client.hget(MemberStore(redis_client, tenant).keys.member(member.card),
                             "last_check_at") is None  # only credits of checks record it
