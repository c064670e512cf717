"""The HTTP API through falcon's TestClient, on a real redis-server, against its OpenAPI spec."""

from __future__ import annotations

import os
import signal
import time

import falcon.inspect
import pytest
import redis
from helpers.api import Api

from codegen.keys import KeyStore
from codegen.store.embedded import EmbeddedRedis
from codegen.store.keyspace import TenantKeys
from verify_api.app import create_app, openapi_spec

pytestmark = pytest.mark.cluster  # and on a 3-master Redis Cluster (conftest.py)


def test_every_route_is_in_the_spec_and_every_spec_path_is_a_route(api_world):
    api, _, _ = api_world
    routes = {
        (route.path, m.method.lower())
        for route in falcon.inspect.inspect_app(api.app).routes
        for m in route.methods
        if not m.internal
    }
    spec = {(path, method) for path, ops in openapi_spec()["paths"].items() for method in ops}
    assert routes == spec


def test_openapi_json_is_the_yaml_spec(api_world):
    api, _, _ = api_world
    assert api.request("GET", "/openapi.json", "/openapi.json").json == openapi_spec()


def test_verify_then_repeat(api_world, clock):
    api, code, _ = api_world
    first = api.verify({"code": code(1), "phone": "138 0013 8000", "channel": "sms"})
    assert first.status_code == 200
    assert first.json["result"] == "genuine" and first.json["claimed"] is True
    assert first.json["product"] == {"sku": "LIP-001", "name": "Velvet lipstick"}
    assert first.json["points_awarded"] == 10 and first.json["balance"] == 10
    clock.advance(90)
    again = api.verify({"code": f"https://acme.example/t/ACME/v/{code(1)}", "region": "cn-sh"})
    assert again.json["result"] == "already_verified"
    assert again.json["scan_count"] == 2 and again.json["first_channel"] == "sms"
    assert again.json["first_verified_at"] == "2026-01-01T00:00:00Z"


def test_lookup_and_batch(api_world):
    api, code, _ = api_world
    assert api.lookup(code(2)).json["result"] == "genuine"
    api.verify({"code": code(2)})
    looked = api.lookup(code(2))
    assert looked.json["result"] == "already_verified" and looked.json["scan_count"] == 1
    found = api.batch({"codes": [code(2), code(3), "oops", code(2)[:-1]]})
    assert [r["result"] for r in found.json["results"]] == [
        "already_verified", "genuine", "malformed", "malformed",
    ]  # fmt: skip
    assert found.json["summary"] == {"already_verified": 1, "genuine": 1, "malformed": 2}
    assert api.lookup(code(3)).json["scan_count"] == 0  # the batch recorded nothing


def test_a_thousand_codes_in_one_batch(api_world):
    api, code, batch = api_world
    found = api.batch({"codes": [code(i % batch.count) for i in range(1000)]})
    assert found.status_code == 200 and found.json["summary"] == {"genuine": 1000}
    too_many = api.batch({"codes": [code(0)] * 1001})
    assert too_many.status_code == 413
    assert too_many.json["error"]["code"] == "too_many_codes"


@pytest.mark.parametrize(
    "body, status, code, field",
    [
        (b"{", 400, "invalid_json", None),
        (b"", 400, "invalid_json", None),
        (b'["a list"]', 400, "invalid_json", None),
        (b'"\xff"', 400, "invalid_json", None),
        ({}, 422, "invalid_field", "code"),
        ({"code": 12345}, 422, "invalid_field", "code"),
        ({"code": ["1"]}, 422, "invalid_field", "code"),
        ({"code": "1", "phone": 138}, 422, "invalid_field", "phone"),
        ({"code": "1", "phone": "not a phone"}, 422, "invalid_field", "phone"),
        ({"code": "1", "channel": "fax"}, 422, "invalid_field", "channel"),
        ({"code": "1", "region": "Shang hai!"}, 422, "invalid_field", "region"),
        ({"code": "1", "extra": True}, 422, "invalid_field", "extra"),
        ({"code": "1" * 600}, 422, "invalid_field", "code"),
        (b'{"code": "' + b"1" * 5000 + b'"}', 413, "body_too_large", None),
    ],
)
def test_bad_bodies_get_a_json_4xx(api_world, body, status, code, field):
    api, _, _ = api_world
    answer = api.verify(body)
    assert answer.status_code == status
    assert answer.json["error"]["code"] == code
    assert answer.json["error"]["message"]
    assert answer.json["error"].get("field") == field


@pytest.mark.parametrize(
    "body, status",
    [({"codes": []}, 422), ({"codes": "1234"}, 422), ({"codes": [1, 2]}, 422), ({}, 422),
     ({"codes": ["1"], "x": 1}, 422), (b"[]", 400)],
)  # fmt: skip
def test_bad_batch_bodies(api_world, body, status):
    api, _, _ = api_world
    answer = api.batch(body)
    assert answer.status_code == status and "error" in answer.json


def test_unknown_tenants_routes_and_methods(api_world):
    api, code, _ = api_world
    for tenant in ("NOPE", "bad tenant!", "x" * 40):
        answer = api.verify({"code": code(1)}, tenant=tenant)
        assert answer.status_code == 404 and answer.json["error"]["code"] == "unknown_tenant"
        # anonymous callers get no operator hint (`itemseal tenant create`)
        assert "itemseal" not in answer.text and "create" not in answer.text
    assert api.lookup(code(1), tenant="NOPE").status_code == 404
    missing = api.client.simulate_get("/v2/nothing")
    assert missing.status_code == 404 and missing.json["error"]["code"] == "not_found"
    wrong = api.client.simulate_delete("/v1/tenants/ACME/verify")
    assert wrong.status_code == 405 and wrong.json["error"]["code"] == "method_not_allowed"


def _calls(client) -> int:
    stats = client.info("commandstats")
    return sum(v["calls"] for k, v in stats.items() if k != "cmdstat_info")


def test_ip_rate_limit_trips_refuses_locally_and_recovers(api_world, redis_client, clock):
    api, code, _ = api_world
    redis_client.hset(TenantKeys("ACME").meta, "verify_rate_ip", "3/60")
    ip = {"remote_addr": "198.51.100.4"}
    assert [api.verify({"code": code(i)}, **ip).status_code for i in range(3)] == [200] * 3
    refused = api.verify({"code": code(3)}, **ip)
    assert refused.status_code == 429 and refused.json["error"]["code"] == "rate_limited"
    wait = int(refused.headers["retry-after"])
    assert 1 <= wait <= 120
    before = _calls(redis_client)
    assert api.verify({"code": "guess"}, **ip).status_code == 429  # refused before Redis
    assert api.lookup(code(5), **ip).status_code == 429
    assert _calls(redis_client) - before <= 2  # at most the tenant lookups, no script
    assert api.verify({"code": code(6)}, remote_addr="198.51.100.5").status_code == 200
    clock.advance(wait)
    assert api.verify({"code": code(7)}, **ip).status_code == 200


def test_phone_rate_limit_follows_the_phone_across_addresses(api_world, redis_client, clock):
    api, code, _ = api_world
    redis_client.hset(TenantKeys("ACME").meta, "verify_rate_phone", "2/60")
    statuses = [
        api.verify(
            {"code": code(i), "phone": "13800138000"}, remote_addr=f"192.0.2.{i}"
        ).status_code
        for i in range(3)
    ]
    assert statuses == [200, 200, 429]
    other = api.verify({"code": code(9), "phone": "+8613900139000"}, remote_addr="192.0.2.9")
    assert other.status_code == 200
    clock.advance(180)
    again = api.verify({"code": code(10), "phone": "0086 138 0013 8000"})
    assert again.status_code == 200


def test_batch_codes_count_against_their_own_limit(api_world, redis_client):
    api, code, _ = api_world
    redis_client.hset(TenantKeys("ACME").meta, "verify_rate_batch", "5/60")
    assert api.batch({"codes": [code(1)] * 5}).status_code == 200
    assert api.batch({"codes": [code(1)]}).status_code == 429


def test_health_and_metrics(api_world):
    api, code, _ = api_world
    assert api.request("GET", "/healthz", "/healthz").json == {"status": "ok"}
    assert api.request("GET", "/v1/ping", "/v1/ping").json == {"pong": True}
    api.verify({"code": code(1)})
    api.verify({"code": "x"})
    text = api.client.simulate_get("/metrics").text
    assert 'itemseal_verify_results_total{result="genuine"} 1.0' in text
    assert 'itemseal_verify_results_total{result="malformed"} 1.0' in text
    assert 'route="/v1/tenants/{tenant}/verify"' in text
    assert "itemseal_http_request_seconds_bucket" in text


def test_redis_down_is_503_never_500(short_home, master_key):
    store = EmbeddedRedis(short_home)
    client = store.client()
    try:
        key_store = KeyStore(client, master_key)
        api = Api(create_app(client, key_store, catalog_seconds=0))
        assert api.request("GET", "/healthz", "/healthz").status_code == 200
        os.kill(store.status().pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while store.status().running and time.monotonic() < deadline:
            time.sleep(0.05)
        down = api.request("GET", "/healthz", "/healthz")
        assert down.status_code == 503 and down.json["error"]["code"] == "store_unavailable"
        assert down.json["error"]["message"] == "the store is unavailable"  # no socket path
        assert str(short_home) not in down.text
        answer = api.verify({"code": "1234 5678 9012 3456 7890 1234"})
        assert answer.status_code == 503 and answer.json["error"]["code"] == "store_unavailable"
        api.app.engine.link.close()
    finally:
        client.close()
        try:
            store.stop()
        except redis.RedisError:
            pass
