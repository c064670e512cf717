"""Checks that cannot be turned against consumers: what a refused or junk request leaves behind.

Each test is a finding of the attack review (issue 17), through HTTP on a real
redis-server: a 429 never claims a code, junk checks carrying someone's phone
cannot lock that phone out, and counterfeits are counted with the IP limit off.
"""

from __future__ import annotations

from codegen.codes import damm_check_digit
from codegen.store.keyspace import PointsKeys, TenantKeys, segment_of
from points_bridge.settings import SettingsStore
from verify_api.check import stats

PHONE = "13800138000"


def _forge(code: str) -> str:
    body = code[:12] + str((int(code[12]) + 1) % 10) + code[13:-1]
    return body + str(damm_check_digit(body))


def test_the_request_that_crosses_a_limit_claims_nothing(api_world, redis_client, clock):
    api, code_of, batch = api_world
    redis_client.hset(TenantKeys("ACME").meta, "verify_rate_phone", "1/60")
    first = api.verify({"code": code_of(1), "phone": PHONE}).json
    assert first["claimed"] is True and first["points_awarded"] == 10
    refused = api.verify({"code": code_of(2), "phone": PHONE})
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    serial = batch.first_serial + 2
    bucket = TenantKeys("ACME").scan_bucket(serial)
    assert redis_client.hget(bucket, str(serial % 256)) is None, "no scan record left behind"
    outbox = PointsKeys("ACME").claims(segment_of(serial))
    assert redis_client.xlen(outbox) == 0, "no claim owed, none to reconcile"
    clock.advance(int(refused.headers["Retry-After"]) + 60)
    retry = api.verify({"code": code_of(2), "phone": PHONE}).json
    assert retry["result"] == "genuine" and retry["scan_count"] == 1
    assert retry["claimed"] is True and retry["points_awarded"] == 10 and retry["balance"] == 20


def test_junk_checks_carrying_a_phone_do_not_lock_it_out(api_world, redis_client):
    api, code_of, _ = api_world
    redis_client.hset(TenantKeys("ACME").meta,
                      mapping={"verify_rate_phone": "20/60", "verify_rate_ip": "0"})
    for i in range(21):  # an attacker's malformed and forged codes with the victim's phone
        junk = "1234" if i % 2 else _forge(code_of(100 + i))
        assert api.verify({"code": junk, "phone": PHONE}).status_code == 200
    mine = api.verify({"code": code_of(3), "phone": PHONE})
    assert mine.status_code == 200 and mine.json["claimed"] is True


def test_counterfeits_are_counted_with_the_ip_limit_off(api_world, redis_client, clock):
    api, code_of, _ = api_world
    redis_client.hset(TenantKeys("ACME").meta, "verify_rate_ip", "off")
    assert api.verify({"code": _forge(code_of(4))}).json["result"] == "counterfeit"
    assert api.verify({"code": "1234"}).json["result"] == "malformed"
    zone = SettingsStore(redis_client).get("ACME").timezone
    day = TenantKeys("ACME").stats_day(stats.day_of(clock(), zone))
    counted = {k.decode(): int(v) for k, v in redis_client.hgetall(day).items()}
    assert counted.get("r:counterfeit") == 1 and counted.get("r:malformed") == 1


def test_metrics_answer_the_operator_only(api_world, redis_client):
    from falcon import testing

    from verify_api.app import create_app

    api, _, _ = api_world
    assert api.client.simulate_get("/metrics").status_code == 200  # this machine's scraper
    public = api.client.simulate_get("/metrics", remote_addr="203.0.113.9")
    assert public.status_code == 404
    app = create_app(redis_client, api.app.engine._keys, metrics_token="s3cret-metrics-token")
    client = testing.TestClient(app)
    assert client.simulate_get("/metrics").status_code == 404, "a token, when set, is needed"
    ok = client.simulate_get("/metrics", headers={"Authorization": "Bearer s3cret-metrics-token"})
    assert ok.status_code == 200 and "itemseal_http_requests" in ok.text
    app.engine.link.close()
