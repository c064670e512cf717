"""Benchmark verification over HTTP: itemseal serve (gunicorn, 2 workers) against its own ceiling.

Run under the shared lock, the box is small and others benchmark on it too:

    flock /tmp/itemseal-bench.lock .venv/bin/python benchmarks/bench_verify.py

It starts an embedded redis-server in a temporary home, seeds a tenant with an
activated batch (registered through BatchRegistry, codes from
CodeSigner.code_matrix), starts ``itemseal serve`` and drives it at 32
keep-alive connections from two generator processes (benchmarks/http_load.py):

* ``bare``: ``GET /v1/ping`` of the same app, same middleware: the ceiling;
* ``verify``: ``POST /v1/tenants/T/verify`` with real codes, each checked twice
  (a first check with a member phone, later a repeat), so half are genuine and
  half already_verified; each round on codes no earlier round checked;
* ``repeat``: repeat checks only (already_verified, no claim, no credit): the
  check without the points path, for the note's breakdown;
* ``batch``: ``POST /v1/tenants/T/verify:batch`` with 1,000 codes a request, 8
  connections (distributors at once; ``--batch-connections``).

Bare and verify alternate for ``--rounds`` rounds; the figures are the medians.
Scan-state memory is measured on the same server: used_memory before and after
recording a first check of ``--memory-codes`` consecutive codes (full scan
buckets, the figure the 64-byte bar is about), and of every 16th code of
another range (sparse buckets: a tenth as many codes). The last line is one
JSON object.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import redis

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from codegen.store.pipe import RedisPipe  # noqa: E402

from benchmarks.fixtures import free_port, machine, seed_active_batch  # noqa: E402
from benchmarks.http_load import LoadResult, encode_request, run_load  # noqa: E402
from codegen.codes import NUMERIC_24  # noqa: E402
from codegen.keys import KeyStore, MasterKey  # noqa: E402
from codegen.store.embedded import EmbeddedRedis  # noqa: E402
from codegen.store.keyspace import TenantKeys  # noqa: E402
from verify_api.check.scans import (  # noqa: E402
    VERIFY,
    CheckContext,
    ScanQuery,
    VerifyScripts,
    verify_calls,
)

TENANT = "BENCH"
SKU = "SKU-CREAM-50ML"


def codes_of(key_store: KeyStore, first: int, count: int) -> list[str]:
    matrix = key_store.signer(TENANT, 0, NUMERIC_24).code_matrix(first, count)
    return [row.tobytes().decode() for row in (matrix + ord("0"))]


def seed(client: redis.Redis, master: MasterKey, count: int) -> tuple[KeyStore, list[str], int]:
    limits = {"verify_rate_ip": "100000000/60", "verify_rate_phone": "100000000/60",
              "verify_rate_batch": "1000000000/60"}  # fmt: skip
    key_store, first = seed_active_batch(client, master, TENANT, SKU, count, limits=limits)
    return key_store, codes_of(key_store, first, count), first


def measure_memory(client: redis.Redis, first: int, count: int, step: int) -> float:
    """Record a first check of every ``step``-th serial; return used_memory bytes per code."""
    scripts = VerifyScripts(RedisPipe.for_client(client))
    keys = TenantKeys(TENANT)
    serials = range(first, first + count * step, step)
    client.execute_command("MEMORY", "PURGE")
    before = client.info("memory")["used_memory"]
    now = int(time.time())
    context = CheckContext(VERIFY, channel=3, region="CN-SH", cap=5)
    for at in range(0, len(serials), 1000):
        queries = [ScanQuery(s, 0, NUMERIC_24.wire_id) for s in serials[at : at + 1000]]
        scripts.run([call for call, _ in verify_calls(scripts, keys, queries, context, now, 100)])
    client.execute_command("MEMORY", "PURGE")
    after = client.info("memory")["used_memory"]
    scripts.pipe.close()
    return (after - before) / count


def start_server(home: Path, env: dict[str, str], port: int, worker_class: str) -> subprocess.Popen:
    itemseal = str(Path(sys.executable).with_name("itemseal"))
    args = [itemseal, "serve", "--bind", f"127.0.0.1:{port}", "--workers", "2"]
    proc = subprocess.Popen([*args, "--worker-class", worker_class], env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(encode_request("GET", "/healthz"))
                if b" 200 " in s.recv(4096):
                    return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("itemseal serve did not come up")


def verify_request(i: int, code: str) -> bytes:
    phone = f"1380013{i % 10000:04d}"
    body = orjson.dumps({"code": code, "phone": phone, "channel": "web", "region": "CN-SH"})
    return encode_request("POST", f"/v1/tenants/{TENANT}/verify", body)


def verify_requests(codes: list[str], procs: int, lag: int = 64) -> list[list[bytes]]:
    """Per generator process: each code checked with a phone, then again ``lag`` checks later.

    Half the checks are first checks (claim and credit), half repeats
    (already_verified), interleaved from the start.
    """
    sets: list[list[bytes]] = [[] for _ in range(procs)]
    for p in range(procs):
        mine = [verify_request(i, code) for i, code in enumerate(codes) if i % procs == p]
        for k, first in enumerate(mine):
            sets[p].append(first)
            if k >= lag:
                sets[p].append(mine[k - lag])
    return sets


def batch_requests(codes: list[str], procs: int) -> list[list[bytes]]:
    sets: list[list[bytes]] = [[] for _ in range(procs)]
    for n, at in enumerate(range(0, len(codes) - 999, 1000)):
        body = orjson.dumps({"codes": codes[at : at + 1000]})
        sets[n % procs].append(encode_request("POST", f"/v1/tenants/{TENANT}/verify:batch", body))
    return sets


def summary(results: list[LoadResult]) -> dict:
    return {
        "rps": round(statistics.median(r.rps for r in results), 1),
        "p50_ms": round(statistics.median(r.percentile(50) for r in results), 3),
        "p99_ms": round(statistics.median(r.percentile(99) for r in results), 3),
        "errors": sum(r.errors for r in results),
        "runs_rps": [round(r.rps, 1) for r in results],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--generators", type=int, default=2)
    parser.add_argument("--worker-class", default="gevent")
    parser.add_argument("--codes", type=int, default=200_000)
    parser.add_argument("--memory-codes", type=int, default=100_000)
    parser.add_argument("--batch-connections", type=int, default=8)
    opts = parser.parse_args()

    load_before = [round(x, 2) for x in os.getloadavg()]
    home = Path(tempfile.mkdtemp(prefix="isb-", dir="/tmp"))
    master = MasterKey(os.urandom(32))
    env = {
        **os.environ,
        "ITEMSEAL_HOME": str(home),
        "ITEMSEAL_MASTER_KEY": base64.b64encode(master.secret).decode(),
    }
    env.pop("ITEMSEAL_REDIS_URL", None)
    store = EmbeddedRedis(home)
    server = None
    try:
        client = store.client()
        key_store, codes, first = seed(client, master, opts.codes + 3 * opts.memory_codes)
        dense = measure_memory(client, first + opts.codes, opts.memory_codes, 1)
        sparse = measure_memory(
            client, first + opts.codes + opts.memory_codes, opts.memory_codes // 10, 16
        )
        codes = codes[: opts.codes]
        port = free_port()
        server = start_server(home, env, port, opts.worker_class)
        address = ("127.0.0.1", port)
        bare_reqs = [[encode_request("GET", "/v1/ping")]] * opts.generators
        per_round = len(codes) // opts.rounds  # each round checks codes nobody checked yet
        bare, verify = [], []
        for r in range(opts.rounds):
            mine = codes[r * per_round : (r + 1) * per_round]
            bare.append(run_load(address, bare_reqs, opts.connections, opts.seconds))
            verify.append(
                run_load(address, verify_requests(mine, opts.generators), opts.connections,
                         opts.seconds)
            )
        # Repeats only, of codes the first round surely checked: the check without points.
        checked = codes[: max(verify[0].requests // 2, opts.generators)]
        repeat_reqs = [
            [verify_request(i, c) for i, c in enumerate(checked) if i % opts.generators == p]
            for p in range(opts.generators)
        ]
        repeat = run_load(address, repeat_reqs, opts.connections, opts.seconds)
        batch = run_load(
            address, batch_requests(codes, opts.generators), opts.batch_connections, opts.seconds
        )
        b, v = summary(bare), summary(verify)
        result = {
            "benchmark": "verify_http",
            "worker_class": opts.worker_class,
            "workers": 2,
            "connections": opts.connections,
            "verify_rps": v["rps"],
            "verify_p50_ms": v["p50_ms"],
            "verify_p99_ms": v["p99_ms"],
            "bare_rps": b["rps"],
            "bare_p50_ms": b["p50_ms"],
            "bare_p99_ms": b["p99_ms"],
            "ratio": round(v["rps"] / b["rps"], 3),
            "repeat_rps": round(repeat.rps, 1),
            "repeat_p99_ms": round(repeat.percentile(99), 3),
            "repeat_ratio": round(repeat.rps / b["rps"], 3),
            "batch_codes_per_s": round(batch.rps * 1000, 1),
            "batch_p99_ms": round(batch.percentile(99), 2),
            "batch_connections": opts.batch_connections,
            "bytes_per_scanned_code": round(dense, 1),
            "bytes_per_scanned_code_sparse_1_in_16": round(sparse, 1),
            "errors": v["errors"] + b["errors"] + batch.errors + repeat.errors,
            "runs": {"bare_rps": b["runs_rps"], "verify_rps": v["runs_rps"]},
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
