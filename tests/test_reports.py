"""Reports against a scenario whose every figure was worked out by hand.

Day 1 (2026-01-01, UTC): code A (LIP-001) checked three times, by three
phones in three regions; code B (EYE-2) once without a phone; one forged
code and one mistyped code. Day 2: B again, and code C (LIP-001) once.
"""

from __future__ import annotations

from collections import Counter
from datetime import date
from pathlib import Path

import pytest
from helpers.aio import Blocking
from hypothesis import given
from hypothesis import strategies as st

from codegen.codes import damm_check_digit
from codegen.products import ProductStore
from points_bridge.ledger import Ledger
from points_bridge.members import MemberStore
from points_bridge.settings import SettingsStore
from points_bridge.transfer import export
from tests.helpers.master import TEST_MASTER
from verify_api.admin import report_math
from verify_api.admin.reports import Reports, date_range
from verify_api.app import create_app
from verify_api.check import stats
from verify_api.check.engine import CheckRequest
from verify_api.exc import InvalidField

D1, D2 = date(2026, 1, 1), date(2026, 1, 2)
P1, P2, P3, P4 = "13800000001", "13800000002", "13800000003", "13800000004"


def forge(code: str) -> str:
    body = code[:12] + str((int(code[12]) + 1) % 10) + code[13:-1]
    return body + str(damm_check_digit(body))


@pytest.fixture
def scenario(batch_factory, redis_client, clock):
    lip, key_store = batch_factory("ACME", count=1000, sku="LIP-001")
    eye, _ = batch_factory("ACME", count=300, sku="EYE-2")
    products = ProductStore(redis_client)
    products.add("ACME", "LIP-001", name="Lipstick", points=10)
    products.add("ACME", "EYE-2", name="Liner", points=7)
    SettingsStore(redis_client).update("ACME", tiers="silver:0,gold:15,diamond:5000")
    batch_factory("BETA", count=10, sku="LIP-001")  # another tenant: must never count
    app = create_app(redis_client, key_store, clock=clock, key_cache_seconds=0,
                     catalog_seconds=0)
    engine = Blocking(app.engine)

    def code(batch, i):
        return key_store.signer("ACME", batch.key_id, batch.profile).code(batch.first_serial + i)

    def check(text, phone=None, channel="api", region=None):
        return engine.verify("ACME", CheckRequest(text, phone, channel, region), "10.1.1.1").result

    a, b, c = code(lip, 5), code(eye, 7), code(lip, 9)
    assert check(a, P1, "sms", "CN-SH") == "genuine"
    assert check(a, P2, "web", "CN-BJ") == "already_verified"
    assert check(a, P3, "web", "CN-GD") == "already_verified"
    assert check(b, None, "api", "CN-SH") == "genuine"
    assert check(forge(c), None, "sms", "CN-GD") == "counterfeit"
    assert check(a[:-1] + str((int(a[-1]) + 1) % 10), None, "web") == "mistyped"
    clock.advance(86400)
    assert check(b, None, "sms", "CN-SH") == "already_verified"
    assert check(c, P1, "web", "CN-SH") == "genuine"
    members = MemberStore(redis_client, "ACME", master=TEST_MASTER)
    p1 = members.find(phone=P1)
    p4, _ = members.join(P4)
    ledger = Ledger(redis_client, "ACME", clock=clock)
    ledger.redeem(p1.card, 5, reason="gift")
    ledger.adjust(p4.card, 30, reason="welcome")
    members.change_status(p4.card, "freeze")
    yield Reports(redis_client, "ACME", key_store=key_store, clock=clock), (a, b, c)
    engine.link.close()


def test_checks_by_day(scenario):
    reports, _ = scenario
    table = reports.checks(D1, date(2026, 1, 3))
    rows = {r["day"]: r for r in table.records()}
    assert rows["2026-01-01"]["checks"] == 6
    assert (rows["2026-01-01"]["genuine"], rows["2026-01-01"]["already_verified"],
            rows["2026-01-01"]["counterfeit"], rows["2026-01-01"]["mistyped"]) == (2, 2, 1, 1)
    assert rows["2026-01-02"]["checks"] == 2
    assert (rows["2026-01-02"]["genuine"], rows["2026-01-02"]["already_verified"]) == (1, 1)
    assert rows["2026-01-03"]["checks"] == 0


def test_checks_by_product_region_channel(scenario):
    reports, _ = scenario
    assert reports.checks(D1, D2, "product").rows == [("LIP-001", 4), ("-", 2), ("EYE-2", 2)]
    assert reports.checks(D1, D2, "region").rows == [
        ("CN-SH", "上海", 4), ("CN-GD", "广东", 2), ("-", "-", 1), ("CN-BJ", "北京", 1)]
    assert reports.checks(D1, D2, "channel").rows == [("web", 4), ("sms", 3), ("api", 1)]
    assert reports.checks(D2, D2, "product").rows == [("EYE-2", 1), ("LIP-001", 1)]


def test_counterfeits_by_region(scenario):
    reports, _ = scenario
    assert reports.counterfeits(D1, D2).rows == [("CN-GD", 1, 2, 0.5)]


def test_suspicious_codes_ranked(scenario):
    reports, (a, b, _) = scenario
    table = reports.suspicious()
    rows = table.records()
    assert [r["code"] for r in rows] == [a, b]  # C was checked once: not listed
    assert [r["checks"] for r in rows] == [3, 2]
    assert rows[0]["phones"] >= 2 and rows[0]["regions"] >= 2 and rows[0]["risk"] == "high"
    assert rows[0]["score"] == report_math.suspicion_score(3, rows[0]["phones"],
                                                           rows[0]["regions"])
    assert (rows[1]["phones"], rows[1]["regions"], rows[1]["score"]) == (0, 1, 2)
    assert rows[1]["first_region"] == "CN-SH" and rows[1]["first_channel"] == "api"
    assert reports.suspicious(min_checks=3).records()[0]["code"] == a
    assert len(reports.suspicious(min_checks=4).rows) == 0


def test_members_by_tier(scenario):
    reports, _ = scenario
    assert reports.tiers().rows == [
        ("silver", 1, 0, 1, 0), ("gold", 1, 1, 0, 0), ("diamond", 0, 0, 0, 0)]


def test_points_per_product_from_the_store_and_from_parquet(scenario, redis_client, tmp_path):
    reports, _ = scenario
    expected = [("LIP-001", 20, 0, 0, 0), ("-", 0, 5, 30, 0)]
    assert reports.points().rows == expected
    path = Path(tmp_path) / "ledger.parquet"
    export(redis_client, "ACME", "ledger", "parquet", path, master=TEST_MASTER)
    assert reports.points(path).rows == expected
    members = Path(tmp_path) / "members.parquet"
    export(redis_client, "ACME", "members", "parquet", members, master=TEST_MASTER)
    assert reports.tiers(members).rows == reports.tiers().rows


def test_other_tenant_sees_nothing_of_acme(scenario, redis_client, clock):
    beta = Reports(redis_client, "BETA", clock=clock, master=TEST_MASTER)
    assert all(r["checks"] == 0 for r in beta.checks(D1, D2).records())
    assert beta.suspicious().rows == [] and beta.points().rows == []


def test_date_range_defaults_and_refusals():
    today = date(2026, 1, 21)
    assert date_range(None, None, today) == (date(2026, 1, 8), date(2026, 1, 21))
    for start, end in (("2026-02-01", "2026-01-01"), ("bad", None), (None, "2026-13-01"),
                       ("2020-01-01", "2026-01-01")):
        with pytest.raises(InvalidField):
            date_range(start, end, today)


# -- pure: the counters and their sums -----------------------------------------------------
CHECKS = st.tuples(
    st.sampled_from(["genuine", "already_verified", "counterfeit", "mistyped"]),
    st.sampled_from(["LIP-001", "EYE-2", None]),
    st.sampled_from(["CN-SH", "CN-BJ", None]),
    st.sampled_from(["sms", "web", "api"]),
)


@given(st.lists(st.lists(CHECKS, max_size=20), min_size=1, max_size=4))
def test_merged_counters_equal_counting_by_hand(hashes):
    raw = []
    for checks in hashes:
        h: Counter = Counter()
        for result, sku, region, channel in checks:
            h.update(stats.tally_fields(result, sku, region, channel))
        raw.append({k.encode(): str(v).encode() for k, v in h.items()})
    merged = stats.merge(raw)
    flat = [c for checks in hashes for c in checks]
    assert merged["r"] == Counter(r for r, *_ in flat)
    assert merged["sku"] == Counter(s or "-" for _, s, _, _ in flat)
    assert merged["cf_region"] == Counter(g or "-" for r, _, g, _ in flat if r == "counterfeit")
    table = report_math.checks_by_day({"20260101": merged})
    assert table.records()[0]["checks"] == len(flat)


@given(st.integers(1, 1000), st.integers(0, 16), st.integers(0, 8))
def test_more_of_anything_is_never_less_suspicious(count, phones, regions):
    score = report_math.suspicion_score(count, phones, regions)
    assert report_math.suspicion_score(count + 1, phones, regions) > score
    assert report_math.suspicion_score(count, phones + 1, regions) >= score
    assert report_math.suspicion_score(count, phones, regions + 1) >= score
