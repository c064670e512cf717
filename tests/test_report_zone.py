"""Every report counts days in the tenant's time zone, as the points do.

A check at 23:30 UTC in Asia/Shanghai is at 07:30 the next morning there: the
check reports (HTTP, CLI, office, dashboard), the counterfeit and SMS reports
and the surge alert all count it on that next day. In America/New_York a check
at 02:30 UTC is still the evening before. The pure day function is held to
``datetime.fromtimestamp(t, zone).date()`` for any instant and zone.
"""

from __future__ import annotations

import csv
import io
import random
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, available_timezones

import pytest
from falcon import testing
from helpers.api import AdminApi
from helpers.channels_world import make_world
from helpers.cli_runner import run
from helpers.office import PASSWORD, Office
from hypothesis import given
from hypothesis import strategies as st

from codegen.codes import damm_check_digit
from codegen.store.keyspace import TenantKeys
from points_bridge.settings import SettingsStore
from verify_api.admin.alerts import Alerts
from verify_api.admin.auth import TokenStore
from verify_api.admin.staff import StaffStore
from verify_api.check import stats

REPORTS = "/v1/admin/tenants/{tenant}/reports/"
ZONES = sorted(available_timezones())


@dataclass(frozen=True)
class Case:
    zone: str
    at: datetime  # when the checks and the SMS come in
    local: date  # the tenant's day then
    utc: date  # the UTC day then, which must count nothing


CASES = [
    Case("Asia/Shanghai", datetime(2026, 1, 1, 23, 30, tzinfo=UTC), date(2026, 1, 2),
         date(2026, 1, 1)),
    Case("America/New_York", datetime(2026, 1, 2, 2, 30, tzinfo=UTC), date(2026, 1, 1),
         date(2026, 1, 2)),
]


def forge(code: str) -> str:
    body = code[:12] + str((int(code[12]) + 1) % 10) + code[13:-1]
    return body + str(damm_check_digit(body))


@pytest.fixture(params=CASES, ids=[c.zone for c in CASES])
def late(request, batch_factory, redis_client, clock):
    """ACME in the case's zone, with checks (HTTP and SMS) and SMS at the case's hour."""
    case: Case = request.param
    world = make_world(batch_factory, redis_client, clock)
    SettingsStore(redis_client).update("ACME", timezone=case.zone)
    clock.now = case.at.timestamp()
    api = AdminApi(world.app)
    assert api.verify({"code": world.code(1)}).json["result"] == "genuine"
    assert api.verify({"code": forge(world.code(2))}).json["result"] == "counterfeit"
    assert api.verify({"code": "1234"}).json["result"] == "malformed"  # counted before Redis
    world.sms(world.code(3), sid="s1")  # a check by SMS, and a logged SMS
    world.sms("hello", sid="s2")
    token, _ = TokenStore(redis_client).create("ACME", "manager")
    yield case, world, api, token
    world.app.engine.link.close()


def _days(records: list[dict]) -> dict[str, int]:
    return {r["day"]: r.get("checks", r.get("received")) for r in records}


def test_the_admin_api_counts_the_tenants_day(late):
    case, _, api, token = late
    span = {"from": (case.local - timedelta(days=2)).isoformat(),
            "to": (case.local + timedelta(days=2)).isoformat()}
    found = api.call("GET", REPORTS + "checks", token, params=span, tenant="ACME").json
    assert found["timezone"] == case.zone
    days = _days(found["rows"])
    assert days[case.local.isoformat()] == 4 and days[case.utc.isoformat()] == 0
    assert sum(days.values()) == 4
    by_default = api.call("GET", REPORTS + "checks", token, tenant="ACME").json
    assert by_default["to"] == case.local.isoformat()  # "today" is the tenant's
    assert _days(by_default["rows"])[case.local.isoformat()] == 4

    def on(day: date, name: str, **params) -> list[dict]:
        return api.call("GET", REPORTS + name, token, tenant="ACME",
                        params={"from": day.isoformat(), "to": day.isoformat(), **params}
                        ).json["rows"]

    assert [r["counterfeit"] for r in on(case.local, "counterfeits")] == [1]
    assert on(case.utc, "counterfeits") == []
    assert _days(on(case.local, "sms", by="day")) == {case.local.isoformat(): 2}
    assert on(case.utc, "sms", by="day") == []


def test_the_cli_reports_count_the_tenants_day(late, itemseal_env):
    case, *_ = late

    def table(name: str, day: date, *extra: str) -> list[dict]:
        out = run(itemseal_env, "report", name, "--tenant", "ACME", "--from", day.isoformat(),
                  "--to", day.isoformat(), "--format", "csv", *extra).stdout
        return list(csv.DictReader(io.StringIO(out)))

    assert [(r["day"], r["checks"]) for r in table("checks", case.local)] == [
        (case.local.isoformat(), "4")]
    assert [r["checks"] for r in table("checks", case.utc)] == ["0"]
    assert [r["counterfeit"] for r in table("counterfeits", case.local)] == ["1"]
    assert table("counterfeits", case.utc) == []
    assert [(r["day"], r["received"]) for r in table("sms", case.local, "--by", "day")] == [
        (case.local.isoformat(), "2")]
    assert table("sms", case.utc, "--by", "day") == []


def _cells(html: str, table_id: str) -> list[list[str]]:
    """The rows of one ``html_table`` as text cells."""
    body = re.search(rf'<table id="{table_id}">(.*?)</table>', html, re.S).group(1)
    return [re.findall(r"<td[^>]*>([^<]*)</td>", row) for row in body.split("<tr>")[2:]]


def test_the_office_pages_count_the_tenants_day(late, redis_client, clock):
    case, world, *_ = late
    StaffStore(redis_client, "ACME", master=world.key_store.master, clock=clock).add(
        "mia", "manager", PASSWORD)
    mia = Office(world.app, "ACME")
    assert mia.login("mia").status_code == 303
    span = {"from": case.utc.isoformat(), "to": case.local.isoformat()}
    if case.utc > case.local:
        span = {"from": case.local.isoformat(), "to": case.utc.isoformat()}
    page = mia.get("/office/ACME/reports/checks", **span)
    assert f"({case.zone})" in page.text
    rows = {r[0]: r[1] for r in _cells(page.text, "table-checks")}
    assert rows == {case.local.isoformat(): "4", case.utc.isoformat(): "0"}
    fakes = _cells(mia.get("/office/ACME/reports/counterfeits", **span).text,
                   "table-counterfeits")
    assert [r[1] for r in fakes] == ["1"]
    on_utc = mia.get("/office/ACME/reports/counterfeits", **{"from": case.utc.isoformat(),
                                                           "to": case.utc.isoformat()})
    assert _cells(on_utc.text, "table-counterfeits") == [["none"]]
    csv_rows = list(csv.DictReader(io.StringIO(
        mia.get("/office/ACME/reports/checks", format="csv", **span).text)))
    assert {r["day"]: r["checks"] for r in csv_rows} == rows
    home = mia.get("/office/ACME").text
    assert f"— {case.local.isoformat()} ({case.zone})" in home  # the chart ends today, there
    index = mia.get("/office/ACME/reports").text
    assert case.local.isoformat() in index


def test_the_dashboard_counts_the_tenants_day(late):
    case, world, _, token = late
    client = testing.TestClient(world.app)
    login = client.simulate_get("/admin/ACME")
    csrf = re.search(r'name="csrf" value="([^"]+)"', login.text).group(1)
    cookies = {"itemseal_admin_login": login.cookies["itemseal_admin_login"].value}
    done = client.simulate_post("/admin/ACME/login", body=f"token={token}&csrf={csrf}",
                                content_type="application/x-www-form-urlencoded",
                                cookies=cookies)
    session = {"itemseal_admin": done.cookies["itemseal_admin"].value}
    page = client.simulate_get("/admin/ACME", cookies=session).text
    start = (case.local - timedelta(days=13)).isoformat()
    assert f'<p id="span">{start} to {case.local.isoformat()} (days in {case.zone})</p>' in page
    assert f"<title>{case.local.isoformat()}: 4</title>" in page  # the chart's bar of today
    assert f"<title>{case.utc.isoformat()}: 4</title>" not in page
    assert sum(int(r[2]) for r in _cells(page, "regions")) == 1  # the one counterfeit


@pytest.mark.parametrize("case", CASES, ids=[c.zone for c in CASES])
def test_the_surge_alerts_today_is_the_tenants(case, batch_factory, redis_client, clock):
    world = make_world(batch_factory, redis_client, clock)
    SettingsStore(redis_client).update("ACME", timezone=case.zone)
    clock.now = case.at.timestamp() - 600
    alerts = Alerts(redis_client, "ACME", master=world.key_store.master, clock=clock)
    alerts.configure({"counterfeit_threshold": 2, "window_minutes": 5})
    assert alerts.run() == []  # the baseline
    clock.now = case.at.timestamp()
    api = AdminApi(world.app)
    for i in range(2):
        found = api.verify({"code": forge(world.code(10 + i))}).json
        assert found["result"] == "counterfeit"
    local_day = TenantKeys("ACME").stats_day(case.local.strftime("%Y%m%d"))
    assert redis_client.hget(local_day, "r:counterfeit") == b"2"  # counted on the tenant's day
    clock.advance(60)
    fired = alerts.run()
    assert [(a.kind, a.detail["count"]) for a in fired] == [("counterfeit_surge", 2)]
    world.app.engine.link.close()


# -- pure: the day of an instant ---------------------------------------------------------------
@given(st.integers(-2_208_988_800, 7_258_118_400), st.sampled_from(ZONES))
def test_day_of_is_the_date_there(t, name):
    zone = ZoneInfo(name)
    expected = datetime.fromtimestamp(t, zone).date()
    assert stats.day_of(t, zone) == expected.strftime("%Y%m%d")
    assert stats.day_of(t + 0.75, zone) == expected.strftime("%Y%m%d")  # within the second
    assert stats.day_date(t, zone) == expected
    first, last = stats.span_seconds(expected, expected)
    assert first <= t <= last


@given(st.dates(date(1950, 1, 1), date(2100, 1, 1)), st.integers(0, 30),
       st.sampled_from(ZONES))
def test_a_span_covers_every_instant_of_its_days(first, length, name):
    """However DST cuts a day, the read span holds all of it (and the filter keeps it)."""
    zone = ZoneInfo(name)
    last = first + timedelta(days=length)
    start, end = stats.span_seconds(first, last)
    assert stats.day_date(start, zone) < first and stats.day_date(end + 1, zone) > last


def test_an_hour_repeated_at_a_dst_change_stays_on_its_own_day():
    """New York falls back at 02:00 on 2026-11-01: 01:30 happens twice, both on Nov 1."""
    zone = ZoneInfo("America/New_York")
    first = datetime(2026, 11, 1, 5, 30, tzinfo=UTC).timestamp()  # 01:30 EDT
    again = datetime(2026, 11, 1, 6, 30, tzinfo=UTC).timestamp()  # 01:30 EST
    assert stats.day_of(first, zone) == stats.day_of(again, zone) == "20261101"
    sao_paulo = ZoneInfo("America/Sao_Paulo")  # 2018-02-18 00:00 fell back to 23:00 on the 17th
    before = datetime(2018, 2, 18, 1, 30, tzinfo=UTC).timestamp()  # 23:30 -02, the 17th
    after = datetime(2018, 2, 18, 2, 30, tzinfo=UTC).timestamp()  # 23:30 -03, the 17th again
    assert stats.day_of(before, sao_paulo) == stats.day_of(after, sao_paulo) == "20180217"
    rng = random.Random(7)
    for _ in range(200):  # cached answers equal fresh ones, second after second
        t = rng.randrange(1_700_000_000, 1_900_000_000)
        assert stats.day_of(t, sao_paulo) == datetime.fromtimestamp(t, sao_paulo).strftime(
            "%Y%m%d")
