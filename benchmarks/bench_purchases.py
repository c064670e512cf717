"""Benchmark purchases over HTTP: ``POST /v1/tenants/T/purchases`` with 8 lines each.

Run under the shared lock (the box is small and others benchmark on it too):

    flock /tmp/itemseal-bench.lock .venv/bin/python benchmarks/bench_purchases.py --seconds 5

It starts an embedded redis-server in a temporary home, seeds a tenant with a
shop, ``--members`` members, a 2x campaign and tiers with discounts, creates a
cashier token, starts ``itemseal serve`` (gunicorn, 2 uvicorn workers) and
drives it from ``--generators`` processes at ``--connections`` keep-alive
connections (benchmarks/http_load.py). Every request is a new purchase (its
own idempotency key) of 8 lines for a member picked round robin, so members'
purchases race as at a busy chain of tills. The last line is one JSON object:
purchases/s, p50 and p99 latency, errors.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.fixtures import answers_200, free_port, machine  # noqa: E402
from benchmarks.http_load import run_load  # noqa: E402
from codegen.keys import MasterKey  # noqa: E402
from codegen.store.embedded import EmbeddedRedis  # noqa: E402
from codegen.tenants import TenantStore  # noqa: E402
from points_bridge.campaigns import CampaignStore  # noqa: E402
from points_bridge.members import MemberStore  # noqa: E402
from points_bridge.rules import Campaign  # noqa: E402
from points_bridge.settings import SettingsStore  # noqa: E402
from points_bridge.shops import ShopStore  # noqa: E402
from verify_api.admin.auth import TokenStore  # noqa: E402

TENANT = "BENCH"
LINES = [{"sku": f"SKU-{n}", "qty": 1 + n % 3, "amount": 1_990 + 1_000 * n} for n in range(8)]


def seed(client, master: MasterKey, members: int) -> tuple[str, list[str]]:
    TenantStore(client).create(TENANT, "Bench brand")
    SettingsStore(client).update(TENANT, tiers="silver:0,gold:1000:5,diamond:5000:12:1.5",
                                 daily_cap="1000000")
    ShopStore(client, TENANT).add("S1", name="Shop one", region="Shandong")
    now = datetime.now(UTC)
    CampaignStore(client, TENANT).add(Campaign(
        "double", now - timedelta(days=1), now + timedelta(days=1), 20_000, skus=frozenset(
            {"SKU-1", "SKU-3"})))
    store = MemberStore(client, TENANT, master=master)
    phones = [f"1380013{i:04d}" for i in range(members)]
    for phone in phones:
        store.join(phone)
    token, _ = TokenStore(client).create(TENANT, "cashier", "bench till")
    return token, phones


def purchase_request(i: int, phone: str, token: str, run: str) -> bytes:
    body = orjson.dumps({"member": phone, "shop": "S1", "lines": LINES,
                         "idempotency_key": f"{run}-{i}"})
    head = (f"POST /v1/tenants/{TENANT}/purchases HTTP/1.1\r\nHost: bench\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


def start_server(env: dict[str, str], port: int) -> subprocess.Popen:
    itemseal = str(Path(sys.executable).with_name("itemseal"))
    proc = subprocess.Popen([itemseal, "serve", "--bind", f"127.0.0.1:{port}", "--workers", "2"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if answers_200(proc, f"http://127.0.0.1:{port}/healthz"):
        return proc
    proc.kill()
    raise RuntimeError("itemseal serve did not come up")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--generators", type=int, default=2)
    parser.add_argument("--members", type=int, default=500)
    parser.add_argument("--requests", type=int, default=40_000,
                        help="Distinct purchases prepared (more than the run can send).")
    opts = parser.parse_args()

    load_before = [round(x, 2) for x in os.getloadavg()]
    home = Path(tempfile.mkdtemp(prefix="isp-", dir="/tmp"))
    master = MasterKey(os.urandom(32))
    env = {**os.environ, "ITEMSEAL_HOME": str(home),
           "ITEMSEAL_MASTER_KEY": base64.b64encode(master.secret).decode()}
    env.pop("ITEMSEAL_REDIS_URL", None)
    store = EmbeddedRedis(home)
    server = None
    try:
        client = store.client()
        token, phones = seed(client, master, opts.members)
        port = free_port()
        server = start_server(env, port)
        run = os.urandom(4).hex()
        sets = [[purchase_request(i, phones[i % len(phones)], token, run)
                 for i in range(opts.requests) if i % opts.generators == g]
                for g in range(opts.generators)]
        load = run_load(("127.0.0.1", port), sets, opts.connections, opts.seconds)
        result = {
            "benchmark": "purchases_http",
            "lines_per_purchase": len(LINES),
            "workers": 2,
            "connections": opts.connections,
            "members": opts.members,
            "purchases_per_s": round(load.rps, 1),
            "p50_ms": round(load.percentile(50), 2),
            "p99_ms": round(load.percentile(99), 2),
            "errors": load.errors,
            "all_distinct": load.requests <= opts.requests,
            "seconds": opts.seconds,
            "redis_version": client.info("server")["redis_version"],
            "loadavg_before": load_before,
            "machine": machine(),
        }
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            server.wait(30)
        store.stop()
        shutil.rmtree(home, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
