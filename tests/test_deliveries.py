"""What itemseal POSTs out (CRM events, alerts, SMS gateway) against real local receivers.

The CRM stand-in verifies every delivery with the ``standardwebhooks`` library
(the Standard Webhooks reference implementation). A receiver that answers a
POST with a 301 must not get the event marked delivered: urllib would have
followed it with a bodiless GET, been told 200, and lost the event.
"""

from __future__ import annotations

import json
import threading

import pytest
from helpers.httpkit import serve_posts
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks import Webhook as StandardWebhook
from standardwebhooks.webhooks import WebhookVerificationError

from codegen.store.keyspace import PointsKeys, TenantKeys
from codegen.webhooks import backoff_seconds, parse_retry_after
from points_bridge.crm import Bridge, Webhook, standard_secret, standard_signature
from points_bridge.ledger import Ledger
from points_bridge.members import MemberStore
from points_bridge.settings import SettingsStore
from points_bridge.sms.senders import HttpGatewaySender, OutMessage
from tests.helpers.master import TEST_MASTER
from verify_api.admin.alerts import Alerts

SECRET = b"crm-secret-of-acme-0001"


@pytest.fixture
def events(redis_client, points_tenant) -> str:
    tenant = points_tenant()
    member, _ = MemberStore(redis_client, tenant, master=TEST_MASTER).ensure("+8613812345678")
    Ledger(redis_client, tenant).adjust(member.card, 100, reason="welcome")
    return member.card


class Crm:
    """Answers from a script of (status, headers); verifies each post as Standard Webhooks say."""

    def __init__(self, script: list[tuple[int, dict]]) -> None:
        self.script = script
        self.verified: list[dict] = []
        self.gets: list[str] = []
        self.lock = threading.Lock()

    def answer(self, headers: dict, body: bytes):
        lowered = {k.lower(): v for k, v in headers.items()}
        payload = StandardWebhook(standard_secret(SECRET)).verify(body, lowered)  # raises if bad
        with self.lock:
            status, extra = self.script.pop(0) if self.script else (200, {})
            if status == 200:
                self.verified.append(payload)
        return status, b"", extra


def run_bridge(redis_client, url: str, sleeps: list, **kw) -> object:
    return Bridge(redis_client, "ACME", Webhook(url, SECRET), sleep=sleeps.append,
                  rand=lambda: 0.5, **kw).drain()


def test_every_delivery_verifies_with_the_standard_webhooks_library(redis_client, events):
    crm = Crm([])
    with serve_posts(crm.answer, "/hooks") as url:
        stats = run_bridge(redis_client, url, [])
    assert stats.delivered == 2 and [e["type"] for e in crm.verified] == ["member.created",
                                                                          "ledger"]
    body = json.dumps({"a": 1}).encode()
    headers = {"webhook-id": "k1", "webhook-timestamp": "1767225600"}
    headers["webhook-signature"] = standard_signature(SECRET, "k1", 1_767_225_600, body)
    with pytest.raises(WebhookVerificationError):  # a captured post replayed later is refused
        StandardWebhook(standard_secret(SECRET)).verify(body, headers)


def test_a_redirect_is_a_failure_never_a_delivery(redis_client, events):
    crm = Crm([(301, {"Location": "/moved"})] * 10)
    with serve_posts(crm.answer, "/hooks", gets=crm.gets) as url:
        stats = run_bridge(redis_client, url, [], max_attempts=3)
    assert stats.delivered == 0 and stats.parked == 2
    assert crm.gets == []  # no GET was sent after the POST
    dead = redis_client.xrange(PointsKeys("ACME").dead_letter)
    reason = dead[0][1][b"reason"].decode()
    assert "301" in reason and "/moved" in reason and "not followed" in reason


def test_retry_after_is_waited_and_backoff_is_jittered(redis_client, events):
    crm = Crm([(503, {"Retry-After": "7"}), (429, {}), (503, {})])
    sleeps: list[float] = []
    with serve_posts(crm.answer, "/hooks") as url:
        stats = run_bridge(redis_client, url, sleeps, backoff=1.0, max_backoff=30.0)
    assert stats.delivered == 2 and stats.retries == 3
    assert sleeps == [7.0, 1.0, 2.0]  # Retry-After; then rand() 0.5 x 2, then 0.5 x 4


@given(st.integers(1, 20), st.floats(0.01, 5), st.floats(1, 120), st.floats(0, 1),
       st.one_of(st.none(), st.floats(0, 10_000)))
def test_backoff_stays_within_its_bounds(attempt, base, cap, r, retry_after):
    wait = backoff_seconds(attempt, base, cap, retry_after, lambda: r)
    if retry_after is not None:
        assert wait == min(retry_after, cap)
    else:
        assert 0 <= wait <= min(cap, base * 2 ** (attempt - 1))


def test_retry_after_as_seconds_or_an_http_date():
    assert parse_retry_after("120", 0) == 120
    assert parse_retry_after("Thu, 01 Jan 2026 00:01:00 GMT", 1_767_225_600) == 60
    assert parse_retry_after("soon", 0) is None and parse_retry_after(None, 0) is None


def test_the_sms_gateway_sender_does_not_follow_a_redirect():
    gets: list[str] = []
    with serve_posts(lambda h, b: (302, b"", {"Location": "/elsewhere"}), "/send",
                     gets=gets) as url:
        result = HttpGatewaySender(url).send(OutMessage("m1", "ACME", "+8613800138000", "hi"))
    assert not result.ok and "302" in result.error and "/elsewhere" in result.error
    assert gets == []
    with serve_posts(lambda h, b: (200, b'{"id": "g-1"}'), "/send") as url:
        sent = HttpGatewaySender(url).send(OutMessage("m2", "ACME", "+8613800138000", "hi"))
    assert sent.ok and sent.gateway_id == "g-1"


def test_an_alert_answered_with_a_redirect_is_not_sent(redis_client, points_tenant, clock,
                                                        master_key):
    from verify_api.check.stats import day_of

    posts: list[bytes] = []
    gets: list[str] = []

    def moved(headers: dict, body: bytes):
        posts.append(body)
        return 301, b"", {"Location": "/alerts-moved"}

    tenant = points_tenant()
    with serve_posts(moved, "/alerts", gets=gets) as url:
        alerts = Alerts(redis_client, tenant, master=master_key, clock=clock)
        alerts.configure({"webhook_url": url, "counterfeit_threshold": 3, "window_minutes": 10})
        zone = SettingsStore(redis_client).get(tenant).timezone
        day = TenantKeys(tenant).stats_day(day_of(clock(), zone))
        redis_client.hincrby(day, "cf_region:Zhejiang", 10)
        assert alerts.run() == []  # the baseline
        clock.advance(60)
        redis_client.hincrby(day, "cf_region:Zhejiang", 3)
        fired = alerts.run()
    assert [a.kind for a in fired] == ["counterfeit_surge"] and len(posts) == 1
    assert gets == []  # not re-sent as a GET
    assert not redis_client.exists(TenantKeys(tenant).alert_sent(fired[0].alert_id))  # retried


def test_imported_members_events_verify_and_read_as_the_live_paths(redis_client, points_tenant,
                                                                   tmp_path):
    """The importer writes its members' event data itself (not the scripts' cjson): what a
    CRM receives, checked by the Standard Webhooks library, must read as a live member's."""
    from points_bridge.transfer import import_members

    tenant = points_tenant()
    live, _ = MemberStore(redis_client, tenant, master=TEST_MASTER).ensure("+8613812345678")
    Ledger(redis_client, tenant).adjust(live.card, 100, reason="welcome")
    crm_file = tmp_path / "crm.csv"
    crm_file.write_text("phone,points\n+8613912345678,100\n")
    report = import_members(redis_client, tenant, crm_file, master=TEST_MASTER)
    assert report.created == 1 and not report.errors
    crm = Crm([])
    with serve_posts(crm.answer, "/hooks") as url:
        stats = run_bridge(redis_client, url, [])
    assert stats.delivered == 4
    by_card: dict[str, dict[str, dict]] = {}
    for event in crm.verified:
        by_card.setdefault(event["card"], {})[event["type"]] = event
    imported = next(card for card in by_card if card != live.card)
    mine, theirs = by_card[imported], by_card[live.card]
    assert mine["member.created"]["data"]["phone"] == "+8613912345678"
    assert mine["member.created"]["data"]["source"] == "import"
    for kind in ("member.created", "ledger"):  # the same fields, each of the same JSON type
        assert {k: type(v) for k, v in mine[kind]["data"].items()} == {
            k: type(v) for k, v in theirs[kind]["data"].items()}, kind
    assert mine["ledger"]["data"]["delta"] == theirs["ledger"]["data"]["delta"] == 100
    assert mine["ledger"]["data"]["balance"] == 100 and mine["ledger"]["entry_id"]
