"""`itemseal serve` for real: gunicorn with two workers, over HTTP, on both kinds of store."""

from __future__ import annotations

import base64
import os
import socket
import time
from pathlib import Path

import pytest
import requests
from helpers.cli_runner import run_process
from helpers.openapi_check import validate
from helpers.serving import serving

from codegen.batches import BatchRegistry
from codegen.codes import NUMERIC_24
from codegen.keys import KeyStore, MasterKey
from codegen.store.embedded import EmbeddedRedis
from codegen.tenants import TenantStore

VERIFY = "/v1/tenants/{tenant}/verify"


def seed(client, master: MasterKey, count: int = 100) -> list[str]:
    TenantStore(client).create("ACME", "Acme")
    key_store = KeyStore(client, master)
    key_store.rotate("ACME")
    registry = BatchRegistry(client, "ACME")
    first = registry.reserve(NUMERIC_24, count)
    batch = registry.register(
        registry.next_batch_id(), sku="SKU-1", key_id=0, profile=NUMERIC_24.name,
        first_serial=first, count=count,
    )  # fmt: skip
    registry.transition(batch.batch_id, "active")
    signer = key_store.signer("ACME", 0, NUMERIC_24)
    return [signer.code(first + i) for i in range(count)]


def server_env(home: Path, master: MasterKey, redis_url: str | None) -> dict[str, str]:
    env = {
        "ITEMSEAL_HOME": str(home),
        "ITEMSEAL_MASTER_KEY": base64.b64encode(master.secret).decode(),
        "PATH": os.environ.get("PATH", ""),
    }
    if redis_url:
        env["ITEMSEAL_REDIS_URL"] = redis_url
    return env


def post(base: str, body: dict) -> requests.Response:
    answer = requests.post(f"{base}/v1/tenants/ACME/verify", json=body, timeout=10)
    validate(VERIFY, "POST", answer.status_code, answer.json())
    return answer


@pytest.mark.slow
@pytest.mark.cluster  # also `itemseal serve` with ITEMSEAL_REDIS_URL=redis+cluster://...
def test_serve_with_redis_url_answers_and_sums_metrics(
    short_home, redis_store, redis_client, master_key, tmp_path
):
    codes = seed(redis_client, master_key)
    env = server_env(short_home, master_key, redis_store.url())
    with serving(env, tmp_path / "serve.log") as (base, _):
        assert requests.get(f"{base}/healthz", timeout=10).status_code == 200
        first = post(base, {"code": codes[0], "phone": "13800138000", "channel": "sms"})
        assert first.json()["result"] == "genuine" and first.json()["claimed"]
        again = post(base, {"code": codes[0]})
        assert again.json()["result"] == "already_verified"
        assert again.json()["first_channel"] == "sms"
        assert post(base, {"code": "nonsense"}).json()["result"] == "malformed"
        bad = requests.post(f"{base}/v1/tenants/ACME/verify", data=b"{nope", timeout=10)
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_json"
        batch = requests.post(
            f"{base}/v1/tenants/ACME/verify:batch", json={"codes": codes[:50]}, timeout=10
        )
        assert batch.json()["summary"] == {"already_verified": 1, "genuine": 49}
        session = requests.Session()  # keep-alive: the same worker answers; new ones spread
        for _ in range(40):
            requests.get(f"{base}/v1/ping", timeout=10)
            session.get(f"{base}/v1/ping", timeout=10)
        assert requests.get(f"{base}/openapi.json", timeout=10).json()["openapi"] == "3.1.0"
        # both workers summed; a worker hands its samples over within a second (metrics.py)
        deadline = time.monotonic() + 10
        genuine = 'itemseal_verify_results_total{result="genuine"} 50.0'
        metrics = requests.get(f"{base}/metrics", timeout=10).text
        while ping_count(metrics) < 80 or genuine not in metrics:
            assert time.monotonic() < deadline, metrics
            time.sleep(0.2)
            metrics = requests.get(f"{base}/metrics", timeout=10).text
    assert ping_count(metrics) == 80


def ping_count(metrics: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
        if line.startswith("itemseal_http_requests_total") and 'route="/v1/ping"' in line
    )  # fmt: skip


@pytest.mark.slow
def test_serve_on_the_embedded_store(short_home, master_key, tmp_path):
    store = EmbeddedRedis(short_home)
    client = store.client()
    try:
        codes = seed(client, master_key)
        with serving(server_env(short_home, master_key, None), tmp_path / "serve.log") as (
            base, _
        ):
            assert post(base, {"code": codes[1]}).json()["result"] == "genuine"
            assert post(base, {"code": codes[1]}).json()["scan_count"] == 2
        assert store.status().running  # serve reused it, and leaves it running
    finally:
        client.close()
        store.stop()


def test_serve_help_has_an_example():
    out = run_process({"PATH": os.environ.get("PATH", "")}, "serve", "--help").stdout
    assert "Example:" in out and "itemseal serve --bind" in out and "--workers" in out


@pytest.mark.parametrize("reuse_port", [False, True], ids=["plain", "another-serve"])
def test_serve_refuses_a_port_another_server_listens_on(short_home, master_key, reuse_port):
    """Workers listen with SO_REUSEPORT, which would otherwise share a port already served."""
    with socket.socket() as taken:
        if reuse_port:
            taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = run_process(server_env(short_home, master_key, None),
                          "serve", "--bind", f"127.0.0.1:{port}", ok=False)
    assert out.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in out.stderr
    assert not (short_home / "redis.pid").exists(), "refused before starting a store"
