"""Benchmark verification over HTTP: itemseal serve against two naive peers, in one run.

Run under the shared lock, the box is small and others benchmark on it too:

    flock /tmp/itemseal-bench.lock .venv/bin/python benchmarks/bench_verify.py

One redis-server (the embedded store's: unix socket, ``appendfsync always``)
serves all three: ``itemseal serve`` (falcon ASGI under gunicorn with uvicorn's
worker, 2 workers) and the peers of ``benchmarks/peers/`` (the ~40-line
programs a user could write instead: falcon WSGI + gevent + redis-py, and
falcon ASGI + uvicorn + redis.asyncio; JSON in, digits-only code, an HMAC-SHA256
tag, one EVALSHA that counts the scan, JSON out), 2 workers each. Load comes
from Debian's ``wrk`` (C; 2 threads, 32 connections; benchmarks/wrk_load.py):

* ``bare``: ``GET /v1/ping`` (``/ping`` on the peers): the serving stack alone;
* ``repeat``: a check of a code checked before (already_verified: rate limit,
  HMAC, the verify script with stats and risk; no claim), without a phone, as
  the peers' check has none; the peers get their own repeat checks;
* ``first``: first checks of fresh codes with a phone from a pool of 2,000
  (claim and points credit; a phone becomes a member on its first claim);
* ``mix``: first checks interleaved with repeats, half and half;
* ``peer_claims_first``: the yardstick of ``first``: fresh codes with a phone
  from the same pool on benchmarks/peers/naive_asgi_claims.py, which makes the
  same two durable round trips as itemseal's first check (claim, then pin and
  credit) and does nothing else; ``first_vs_peer_claims_first`` is how far
  itemseal's claim and credit are from the cheapest durable ones.

Each round runs every load once, itemseal and its peers back to back (the
repeat loads in reverse order every other round, ``repeat_order`` per round),
on codes no earlier round used; the figures are medians of
the rounds. Then the mix is offered open loop at half the measured
``mix_rps`` (benchmarks/open_loop.py: latency from each request's scheduled
time, so waiting is not hidden), once per round on fresh codes, medians
reported with how many append-only-file rewrites (forks) ran meanwhile, as a
rewrite is what stalls the tail, and the worst stall of each kind redis-server's
latency monitor saw (>= 10 ms: an fsync, a command), which tells a store's
stall from a worker's; ``open_loop_p99_ms_by_kind`` splits the tail between the
mix's first checks and its repeats. Then, as a diagnosis and never as the bar's
figure, the same open loop runs again with the store not fsyncing
(``open_loop_store_fsync_off``: after the bar's rounds, on fresh codes, the
store's ``appendfsync always`` restored and the disk synced before anything
else runs): the difference is what this machine's disk adds to the tail, as
every reply of a store's turn waits for that turn's fsync. Distributors' batches of 1,000 codes are
looked up over 8 connections, once per round (the median is the figure; look-ups write no scan
state, so each round finds the same store), and scan-state memory is measured on the same
server, with every code of a range scanned, 1 in 16, 1 in 100 and each code alone in
its scan bucket (a code's record shares its bucket's key with its neighbours', so
the sparser, the dearer).
``cpu_us_per_request`` says where the CPU of the closed-loop loads went, per
request (from /proc: the server's processes, redis-server, and the rest of the
machine's busy time, mostly wrk and the kernel): the anatomy behind
``vs_peer_asgi``; ``idle_share`` how much of the machine's CPU the same loads
left idle: a closed loop that leaves CPU idle is bound by its latency, each of
its connections waiting for an answer, so less CPU per request does not buy
more requests. ``redis_commands_per_request`` names the commands each of
those loads paid redis-server for, per request (``INFO commandstats``: calls
and microseconds; a script's EVALSHA includes the commands it calls, which
are counted as well). Every write of the store waits for ``fdatasync`` (``appendfsync
always``): ``store_fsync_ms`` is how long an appended record took to reach
this machine's disk, on the store's file system, before the rounds and before
each open-loop round: on a shared virtual disk that time moves every latency here; the
latency monitor's stalls are given per open-loop round for the same reason.
``cpu_steal_share`` (the run's, and each round's) is the
CPU time the hypervisor gave to other machines: these machines are shared,
and a run with more than a few percent is not a quiet one. The last line is
one JSON object.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
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

from benchmarks.bench_peers import (  # noqa: E402
    claim_bodies,
    peer_bodies,
    smoke_claims,
    start_peer,
    stop_peer,
)
from benchmarks.fixtures import (  # noqa: E402
    CommandMeter,
    CpuMeter,
    StealMeter,
    answers_200,
    free_port,
    fsync_latency,
    machine,
    process_tree,
    seed_active_batch,
)
from benchmarks.open_loop import run_open_loop  # noqa: E402
from benchmarks.wrk_load import ensure_wrk, run_wrk  # noqa: E402
from codegen.codes import NUMERIC_24  # noqa: E402
from codegen.keys import KeyStore, MasterKey  # noqa: E402
from codegen.store.embedded import EmbeddedRedis  # noqa: E402
from codegen.store.keyspace import SCAN_BUCKET_SERIALS, TenantKeys  # noqa: E402
from codegen.store.link import RedisLink  # noqa: E402
from verify_api.check.scans import (  # noqa: E402
    VERIFY,
    CheckContext,
    ScanQuery,
    VerifyScripts,
    verify_calls,
)

TENANT = "BENCH"
SKU = "SKU-CREAM-50ML"
PHONES = 2000
PEER_KEY = bytes(range(32))
CLAIMS_FIRST_SERIAL = 10**9  # the claims peer's fresh serials, past any repeat code's
CLAIMS_SMOKE_SERIAL = 10**10 - 1
WARM_FIRST = 5 * PHONES  # first checks before the rounds: 5 a phone of the pool
CLAIMS_WARM_SERIAL = CLAIMS_FIRST_SERIAL - WARM_FIRST  # the claims peer's, below its rounds'
REPEAT_ORDER = ("itemseal", "wsgi", "asgi")  # each round's repeat loads; every other reversed
LIMITS = {"verify_rate_ip": "100000000/60", "verify_rate_phone": "100000000/60",
          "verify_rate_batch": "1000000000/60"}  # fmt: skip


def codes_of(key_store: KeyStore, first: int, count: int) -> list[str]:
    matrix = key_store.signer(TENANT, 0, NUMERIC_24).code_matrix(first, count)
    return [row.tobytes().decode() for row in (matrix + ord("0"))]


def body(code: str, phone: int | None = None) -> bytes:
    found: dict[str, str] = {"code": code}
    if phone is not None:
        found["phone"] = f"1390013{phone % PHONES:04d}"
    return orjson.dumps(found)


MIX_LABELS = ("first", "repeat")  # the kinds of mixed()'s bodies, in turn


def mixed(first_codes: list[str], repeat_codes: list[str]) -> list[bytes]:
    """First checks with a phone interleaved with repeats, half and half: every first code
    once (the repeat codes go round as often as needed, a repeat can be sent again)."""
    out = []
    for i, fresh in enumerate(first_codes):
        out += [body(fresh, i), body(repeat_codes[i % len(repeat_codes)])]
    return out


def measure_memory(url: str, client: redis.Redis, first: int, count: int, step: int) -> float:
    """Record a first check of every ``step``-th serial; return used_memory bytes per code."""
    import asyncio

    async def record() -> None:
        link = RedisLink(url)
        scripts = VerifyScripts(link)
        keys, now = TenantKeys(TENANT), int(time.time())
        context = CheckContext(VERIFY, channel=3, region="CN-SH", cap=5)
        serials = range(first, first + count * step, step)
        for at in range(0, len(serials), 1000):
            queries = [ScanQuery(s, 0, NUMERIC_24.wire_id) for s in serials[at : at + 1000]]
            calls = verify_calls(scripts, keys, queries, context, now, 100)
            await scripts.run([call for call, _ in calls])
        await link.aclose()

    client.execute_command("MEMORY", "PURGE")
    before = client.info("memory")["used_memory"]
    asyncio.run(record())
    client.execute_command("MEMORY", "PURGE")
    return (client.info("memory")["used_memory"] - before) / count


def start_itemseal(env: dict[str, str], port: int) -> subprocess.Popen:
    itemseal = str(Path(sys.executable).with_name("itemseal"))
    proc = subprocess.Popen(
        [itemseal, "serve", "--bind", f"127.0.0.1:{port}", "--workers", "2"], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    if answers_200(proc, f"http://127.0.0.1:{port}/healthz"):
        return proc
    proc.kill()
    raise RuntimeError("itemseal serve did not come up")


def prime(url: str, bodies: list[bytes], connections: int = 16) -> None:
    """Check each body once (wrk, closed loop, until every body was sent once)."""
    seconds = max(2.0, len(bodies) / 2500)
    run_wrk(url, bodies, connections=connections, seconds=seconds)


def median(rounds: list[dict], key: str) -> float:
    return round(statistics.median(r[key] for r in rounds), 3)


CPU_LOADS = {"itemseal_repeat": "cpu_repeat", "itemseal_first": "cpu_first",
             "peer_asgi_repeat": "cpu_asgi_repeat", "peer_wsgi_repeat": "cpu_wsgi_repeat",
             "peer_claims_first": "cpu_claims_first"}


IDLE_LOADS = {"itemseal_repeat": "idle_repeat", "peer_asgi_repeat": "idle_asgi_repeat",
              "itemseal_first": "idle_first", "peer_claims_first": "idle_claims_first"}


def store_stalls(client: redis.Redis) -> dict[str, int]:
    """The worst stall of each kind redis-server's latency monitor saw since its reset (ms)."""
    return {event.decode() if isinstance(event, bytes) else event: worst
            for event, _, _, worst in client.execute_command("LATENCY", "LATEST")}


def cpu_medians(rounds: list[dict]) -> dict[str, dict[str, float]]:
    """Per load, the median over rounds of each part's CPU microseconds per request."""
    return {
        name: {part: median([r[key] for r in rounds], part) for part in ("app", "redis", "rest")}
        for name, key in CPU_LOADS.items()
    }


COMMAND_LOADS = {"itemseal_repeat": "commands_repeat", "itemseal_first": "commands_first",
                 "peer_asgi_repeat": "commands_asgi_repeat",
                 "peer_claims_first": "commands_claims_first"}


def command_medians(rounds: list[dict]) -> dict[str, dict[str, dict[str, float]]]:
    """Per load, the median over rounds of each command's calls and microseconds a request
    (a command missing from a round counts 0 there)."""
    out = {}
    for name, key in COMMAND_LOADS.items():
        seen = {command for r in rounds for command in r[key]}
        figures = {command: {part: statistics.median(r[key].get(command, {}).get(part, 0.0)
                                                     for r in rounds)
                             for part in ("calls", "usec")}
                   for command in seen}
        out[name] = dict(sorted(figures.items(), key=lambda item: -item[1]["usec"]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="per load per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--memory-codes", type=int, default=100_000)
    parser.add_argument("--repeat-codes", type=int, default=20_000)
    parser.add_argument("--first-codes", type=int, default=60_000, help="fresh codes per round")
    opts = parser.parse_args()
    if not ensure_wrk():
        raise SystemExit("wrk is needed (apt-get install wrk)")

    load_before = [round(x, 2) for x in os.getloadavg()]
    steal = StealMeter()
    home = Path(tempfile.mkdtemp(prefix="isb-", dir="/tmp"))
    master = MasterKey(os.urandom(32))
    env = {**os.environ, "ITEMSEAL_HOME": str(home),
           "ITEMSEAL_MASTER_KEY": base64.b64encode(master.secret).decode()}  # fmt: skip
    store = EmbeddedRedis(home)
    procs: list[subprocess.Popen] = []
    try:
        client = store.client()
        url = store.start()
        env["ITEMSEAL_REDIS_URL"] = url
        per_round = opts.first_codes
        # + the open-loop runs: half a round's worth each, with the store's fsync and without
        fresh_count = per_round * opts.rounds * 2
        checked = opts.repeat_codes + 60_000 + WARM_FIRST + fresh_count
        count = checked + 17 * opts.memory_codes
        key_store, first = seed_active_batch(client, master, TENANT, SKU, count, limits=LIMITS)
        codes = codes_of(key_store, first, checked)
        repeat_codes, codes = codes[: opts.repeat_codes], codes[opts.repeat_codes :]
        batch_codes, codes = codes[:60_000], codes[60_000:]
        warm_codes, codes = codes[:WARM_FIRST], codes[WARM_FIRST:]
        memory_first = first + checked
        dense = measure_memory(url, client, memory_first, opts.memory_codes, 1)
        sparse = measure_memory(url, client, memory_first + opts.memory_codes,
                                opts.memory_codes // 16, 16)
        # a batch few of whose codes anyone checks: each scanned code pays more of its bucket's key
        rare = measure_memory(url, client, memory_first + 2 * opts.memory_codes,
                              opts.memory_codes // 25, 100)
        alone = measure_memory(url, client, memory_first + 6 * opts.memory_codes,
                               opts.memory_codes // 25, SCAN_BUCKET_SERIALS)

        ports = {name: free_port() for name in ("itemseal", "wsgi", "asgi", "claims")}
        procs.append(start_itemseal(env, ports["itemseal"]))
        for kind in ("wsgi", "asgi", "claims"):
            procs.append(start_peer(kind, url, ports[kind], PEER_KEY))
        smoke_claims(ports["claims"], PEER_KEY, CLAIMS_SMOKE_SERIAL)
        base = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        verify_url = f"{base['itemseal']}/v1/tenants/{TENANT}/verify"
        repeat_bodies = [body(c) for c in repeat_codes]
        peer_repeat = peer_bodies(PEER_KEY, opts.repeat_codes)
        prime(verify_url, repeat_bodies)
        for kind in ("wsgi", "asgi"):
            prime(f"{base[kind]}/verify", peer_repeat)
        # warm up every server (connections, caches, the phones' members): the first checks
        # of the rounds are those of known members, in every round alike. Without this,
        # round 1's made the pool's 2,000 members, each the careful path's extra round trips.
        run_wrk(f"{base['itemseal']}/v1/ping", seconds=2)
        run_wrk(verify_url, repeat_bodies, seconds=2)
        prime(verify_url, [body(c, i) for i, c in enumerate(warm_codes)])
        prime(f"{base['claims']}/verify",
              claim_bodies(PEER_KEY, WARM_FIRST, CLAIMS_WARM_SERIAL, PHONES))

        # CPU per request by process group during the closed-loop loads: where a check's
        # time goes, ours against the peers', on the same machine in the same run
        servers = dict(zip(("itemseal", "wsgi", "asgi", "claims"),
                           (process_tree(p.pid) for p in procs), strict=True))
        redis_pid = int(store.pid_path.read_text().split()[0])
        fsync_before_rounds = fsync_latency(store.data_dir)
        rounds = []
        for r in range(opts.rounds):
            mine = codes[r * per_round : (r + 1) * per_round]
            round_steal = StealMeter()
            got: dict[str, float] = {}
            for name, path in (("itemseal", "/v1/ping"), ("wsgi", "/ping"), ("asgi", "/ping")):
                res = run_wrk(base[name] + path, seconds=opts.seconds)
                got[f"{name}_bare_rps"], got[f"{name}_bare_p99_ms"] = res["rps"], res["p99_ms"]
            # The repeat loads in turn, reversed every other round, so no server always goes
            # first: two servers with the same check path, back to back in a round, differed
            # by up to 20% here, the later one ahead in 8 rounds of 12.
            repeat_order = REPEAT_ORDER if r % 2 == 0 else REPEAT_ORDER[::-1]
            got["repeat_order"] = list(repeat_order)
            for kind in repeat_order:
                url, bodies = ((verify_url, repeat_bodies) if kind == "itemseal"
                               else (f"{base[kind]}/verify", peer_repeat))
                prefix = "" if kind == "itemseal" else f"{kind}_"
                meter = CpuMeter({"app": servers[kind], "redis": [redis_pid]})
                commands = CommandMeter(client)
                res = run_wrk(url, bodies, seconds=opts.seconds)
                got[f"{prefix}repeat_rps"] = res["rps"]
                got[f"{prefix}repeat_p99_ms"] = res["p99_ms"]
                got[f"cpu_{prefix}repeat"] = meter.per_request(res["rps"] * opts.seconds)
                got[f"idle_{prefix}repeat"] = meter.idle_share()
                got[f"commands_{prefix}repeat"] = commands.per_request(res["requests"])
            half = len(mine) // 2
            meter = CpuMeter({"app": servers["itemseal"], "redis": [redis_pid]})
            commands = CommandMeter(client)
            res = run_wrk(verify_url, [body(c, i) for i, c in enumerate(mine[:half])],
                          seconds=opts.seconds)
            got["first_rps"], got["first_p99_ms"] = res["rps"], res["p99_ms"]
            got["cpu_first"] = meter.per_request(res["rps"] * opts.seconds)
            got["commands_first"] = commands.per_request(res["requests"])
            got["idle_first"] = meter.idle_share()
            got["first_wraps"] = res["wraps"]
            # the yardstick: the same two durable round trips and nothing else, fresh codes too
            meter = CpuMeter({"app": servers["claims"], "redis": [redis_pid]})
            commands = CommandMeter(client)
            res = run_wrk(f"{base['claims']}/verify",
                          claim_bodies(PEER_KEY, per_round, CLAIMS_FIRST_SERIAL + r * per_round,
                                       PHONES),
                          seconds=opts.seconds)
            got["claims_first_rps"], got["claims_first_p99_ms"] = res["rps"], res["p99_ms"]
            got["cpu_claims_first"] = meter.per_request(res["rps"] * opts.seconds)
            got["commands_claims_first"] = commands.per_request(res["requests"])
            got["idle_claims_first"] = meter.idle_share()
            got["first_wraps"] += res["wraps"]
            got["claims_errors"] = res["errors"] + res["non2xx"]
            res = run_wrk(verify_url, mixed(mine[half:], repeat_codes), seconds=opts.seconds)
            got["mix_rps"], got["mix_p99_ms"] = res["rps"], res["p99_ms"]
            got["first_wraps"] += res["wraps"]
            got["errors"] = res["errors"] + res["non2xx"]
            got["cpu_steal_share"] = round_steal.share()
            rounds.append(got)

        mix_rps = median(rounds, "mix_rps")
        tail = codes[opts.rounds * per_round :]
        half_round = per_round // 2
        slices = [tail[i * half_round : (i + 1) * half_round] for i in range(2 * opts.rounds)]
        forks_before = client.info("stats")["total_forks"]
        client.config_set("latency-monitor-threshold", 10)  # the store's own stalls of >= 10 ms
        open_loops, open_loop_steal, open_loop_fsync, open_loop_stalls = [], [], [], []

        def offer_mix(first_codes: list[str]) -> dict:  # half the mix's rate, open loop
            return run_open_loop(verify_url, mixed(first_codes, repeat_codes), rate=mix_rps / 2,
                                 seconds=opts.seconds * 2, connections=opts.connections,
                                 labels=list(MIX_LABELS) * len(first_codes))

        for r in range(opts.rounds):  # fresh first checks each time
            open_loop_fsync.append(fsync_latency(store.data_dir))
            client.execute_command("LATENCY", "RESET")
            round_steal = StealMeter()
            open_loops.append(offer_mix(slices[r]))
            open_loop_steal.append(round_steal.share())
            open_loop_stalls.append(store_stalls(client))
        # What the store's disk adds to that tail: the same open loop with the store not
        # fsyncing (for these rounds only, after the bar's rounds, so it cannot touch them;
        # then everything written meanwhile is flushed before anything else is measured).
        # A diagnosis, never the bar's figure: the product asks for fsync on every write.
        unsynced = []
        try:
            client.config_set("appendfsync", "no")
            for r in range(opts.rounds):
                unsynced.append(offer_mix(slices[opts.rounds + r]))
        finally:
            client.config_set("appendfsync", "always")
            os.sync()
        open_loop = {key: statistics.median(o[key] for o in open_loops)
                     for key in ("achieved_rps", "p50_ms", "p99_ms")}
        open_loop["kept_up"] = all(o["kept_up"] for o in open_loops)
        open_loop["errors"] = sum(o["errors"] for o in open_loops + unsynced)
        open_loop_forks = client.info("stats")["total_forks"] - forks_before
        client.config_set("latency-monitor-threshold", 0)
        batch_bodies = [orjson.dumps({"codes": batch_codes[at : at + 1000]})
                        for at in range(0, len(batch_codes), 1000)]
        batches = [run_wrk(f"{base['itemseal']}/v1/tenants/{TENANT}/verify:batch", batch_bodies,
                           connections=8, seconds=opts.seconds) for _ in range(opts.rounds)]
        result = {
            "benchmark": "verify_http",
            "server": "itemseal serve: falcon ASGI, gunicorn + uvicorn worker, 2 workers",
            "connections": opts.connections,
            "rounds": opts.rounds,
            "seconds": opts.seconds,
            "repeat_rps": median(rounds, "repeat_rps"),
            "repeat_p99_ms": median(rounds, "repeat_p99_ms"),
            "first_rps": median(rounds, "first_rps"),
            "first_p99_ms": median(rounds, "first_p99_ms"),
            "mix_rps": mix_rps,
            "mix_p99_ms": median(rounds, "mix_p99_ms"),
            "bare_rps": median(rounds, "itemseal_bare_rps"),
            "bare_p99_ms": median(rounds, "itemseal_bare_p99_ms"),
            "peer_wsgi_bare_rps": median(rounds, "wsgi_bare_rps"),
            "peer_asgi_bare_rps": median(rounds, "asgi_bare_rps"),
            "peer_wsgi_repeat_rps": median(rounds, "wsgi_repeat_rps"),
            "peer_wsgi_repeat_p99_ms": median(rounds, "wsgi_repeat_p99_ms"),
            "peer_asgi_repeat_rps": median(rounds, "asgi_repeat_rps"),
            "peer_asgi_repeat_p99_ms": median(rounds, "asgi_repeat_p99_ms"),
            "peer_claims_first_rps": median(rounds, "claims_first_rps"),
            "peer_claims_first_p99_ms": median(rounds, "claims_first_p99_ms"),
            "open_loop_rps": round(open_loop["achieved_rps"], 1),
            "open_loop_offered_rps": round(mix_rps / 2, 1),
            "open_loop_p50_ms": round(open_loop["p50_ms"], 3),
            "open_loop_p99_ms": round(open_loop["p99_ms"], 3),
            "open_loop_generator_kept_up": open_loop["kept_up"],
            "open_loop_p99_ms_by_kind": {kind: statistics.median(o["p99_ms_by_label"][kind]
                                                                 for o in open_loops)
                                         for kind in MIX_LABELS},
            "open_loop_p50_ms_by_kind": {kind: statistics.median(o["p50_ms_by_label"][kind]
                                                                 for o in open_loops)
                                         for kind in MIX_LABELS},
            "open_loop_store_fsync_off": {
                "p50_ms": statistics.median(o["p50_ms"] for o in unsynced),
                "p99_ms": statistics.median(o["p99_ms"] for o in unsynced),
                "p99_ms_per_round": [o["p99_ms"] for o in unsynced],
                "p99_ms_by_kind": {kind: statistics.median(o["p99_ms_by_label"][kind]
                                                           for o in unsynced)
                                   for kind in MIX_LABELS},
                "generator_kept_up": all(o["kept_up"] for o in unsynced)},
            "open_loop_p99_ms_per_round": [o["p99_ms"] for o in open_loops],
            "open_loop_dispatch_lag_max_ms_per_round": [o["dispatch_lag_max_ms"]
                                                        for o in open_loops],
            "open_loop_dispatch_lag_p99_ms_per_round": [o["dispatch_lag_p99_ms"]
                                                        for o in open_loops],
            "open_loop_cpu_steal_share_per_round": open_loop_steal,
            "open_loop_store_stalls_worst_ms": {
                event: max(stalls[event] for stalls in open_loop_stalls if event in stalls)
                for event in sorted({event for stalls in open_loop_stalls for event in stalls})},
            "open_loop_store_stalls_worst_ms_per_round": open_loop_stalls,
            "store_fsync_ms": {"before_rounds": fsync_before_rounds,
                               "before_each_open_loop_round": open_loop_fsync},
            "aof_rewrites_during_open_loop": open_loop_forks,
            "aof_rewrites_total": client.info("stats")["total_forks"],
            "batch_codes_per_s": round(median(batches, "rps") * 1000, 1),  # look-ups: no writes
            "batch_codes_per_s_per_round": [round(b["rps"] * 1000, 1) for b in batches],
            "batch_p99_ms": median(batches, "p99_ms"),
            "bytes_per_scanned_code": round(dense, 1),
            "bytes_per_scanned_code_sparse_1_in_16": round(sparse, 1),
            "bytes_per_scanned_code_sparse_1_in_100": round(rare, 1),
            "bytes_per_scanned_code_alone_in_its_bucket": round(alone, 1),
            "cpu_us_per_request": cpu_medians(rounds),
            "idle_share": {name: median(rounds, key) for name, key in IDLE_LOADS.items()},
            "redis_commands_per_request": command_medians(rounds),
            "errors": sum(r["errors"] + r["claims_errors"] for r in rounds)
            + sum(b["errors"] for b in batches) + open_loop["errors"],
            "first_codes_reused": sum(r["first_wraps"] for r in rounds),
            "open_loop_requests_reused": sum(o["reused"] for o in open_loops + unsynced),
            "per_round": rounds,
            "redis_version": client.info("server")["redis_version"],
            "store_nice": store.status().nice,  # codegen/store/priority.py, for all three
            "loadavg_before": load_before,
            "cpu_steal_share": steal.share(),
            "machine": machine(),
        }
        result["vs_peer_asgi"] = round(result["repeat_rps"] / result["peer_asgi_repeat_rps"], 3)
        result["vs_peer_wsgi"] = round(result["repeat_rps"] / result["peer_wsgi_repeat_rps"], 3)
        result["first_vs_peer_asgi_repeat"] = round(
            result["first_rps"] / result["peer_asgi_repeat_rps"], 3)
        result["first_vs_peer_claims_first"] = round(
            result["first_rps"] / result["peer_claims_first_rps"], 3)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                stop_peer(proc)
        store.stop()
        shutil.rmtree(home, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
