"""Soak: minutes of mixed load on itemseal serve, with a kill -9 of redis-server in the middle.

Run under the shared lock, the box is small and others benchmark on it too:

    flock /tmp/itemseal-bench.lock .venv/bin/python benchmarks/bench_soak.py --minutes 5

It starts its own redis-server (append-only file, fsync always) in a
temporary home, seeds a tenant with an activated batch and a product worth
points, starts ``itemseal serve`` (``--workers`` uvicorn workers) and drives it from
``--threads`` client threads, each picking a request from ``MIXES`` by
weight: claims and repeat checks over HTTP, look-ups, distributor batches,
signed Aliyun-style SMS (a code, claimed for the sender, or the balance
keyword) and a brand manager's admin reads with a bearer token. At
``--kill-at`` of the run it kills redis-server with SIGKILL, waits
``--down`` seconds (the API answers 503 ``store_unavailable``) and starts it
again on the same append-only file.

At the end it runs the reconciler (claims answered ``points_pending`` are
credited from the outbox) and checks every claim the API acknowledged with
a 2xx: its code must be claimed in the store and its points in the member's
ledger. The last line is one JSON object: requests and successes per
interval, errors by kind, ``recovery_seconds`` (restart to the first 2xx),
``lost_claims`` (acknowledged but missing: must be 0) and the machine.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis
import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.fixtures import answers_200, free_port, machine, seed_active_batch  # noqa: E402
from codegen.codes import NUMERIC_24  # noqa: E402
from codegen.keys import MasterKey  # noqa: E402
from codegen.store.embedded import EmbeddedRedis  # noqa: E402
from codegen.store.keyspace import (  # noqa: E402  # noqa: E402
    CREDIT_BUCKET_SERIALS,
    SCAN_BUCKET_SERIALS,
    PointsKeys,
    TenantKeys,
)
from points_bridge.ledger import Ledger  # noqa: E402
from points_bridge.reconcile import Reconciler  # noqa: E402
from verify_api.admin.auth import TokenStore  # noqa: E402
from verify_api.channels.config import ChannelStore  # noqa: E402
from verify_api.channels.signatures import itemseal_signature  # noqa: E402
from verify_api.check.scanrecord import unpack  # noqa: E402

TENANT = "SOAK"
SKU = "SKU-SOAK"
SMS_NUMBER = "106570216099"
GATEWAY_SECRET = "soak-gateway-secret"
POINTS = 10
CHUNK = 500  # serials a thread takes at a time for its claims


# -- the load ----------------------------------------------------------------------------


@dataclass
class Serials:
    """Hands out fresh serials (each claimed once) and remembers claimed codes to re-check."""

    signer: object
    first: int
    count: int
    next: int = 0
    used: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self) -> list[tuple[int, str]]:
        with self.lock:
            start = self.next
            self.next = min(self.next + CHUNK, self.count)
        if start >= self.count:
            raise RuntimeError("the batch is used up: raise --codes")
        matrix = self.signer.code_matrix(self.first + start, self.next - start)
        codes = [row.tobytes().decode() for row in (matrix + ord("0"))]
        return [(self.first + start + i, code) for i, code in enumerate(codes)]

    def seen(self, code: str) -> None:
        with self.lock:
            if len(self.used) < 100_000:
                self.used.append(code)

    def old(self, rng: random.Random) -> str | None:
        with self.lock:
            return rng.choice(self.used) if self.used else None


@dataclass
class Client:
    """One load thread's state: its session, random source and fresh serials."""

    base: str
    serials: Serials
    rng: random.Random
    token: str = ""  # a manager's admin token
    session: requests.Session = field(default_factory=requests.Session)
    fresh: list[tuple[int, str]] = field(default_factory=list)

    def fresh_code(self) -> tuple[int, str]:
        if not self.fresh:
            self.fresh = self.serials.take()
        return self.fresh.pop()


@dataclass
class Outcome:
    status: int  # 0: no HTTP answer
    kind: str  # "ok" or the error kind
    claim: tuple[int, str, dict] | None = None  # (serial, phone, answer) of a 2xx claim


def _outcome(answer: requests.Response) -> Outcome:
    if 200 <= answer.status_code < 300:
        return Outcome(answer.status_code, "ok")
    try:
        code = answer.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        code = "non_json"
    return Outcome(answer.status_code, f"{answer.status_code} {code}")


def claim(c: Client) -> Outcome:
    """A consumer's first check of a fresh code with a phone: must be credited."""
    serial, code = c.fresh_code()
    phone = f"1390013{c.rng.randrange(5000):04d}"
    body = {"code": code, "phone": phone, "channel": "web", "region": "CN-SH"}
    answer = c.session.post(f"{c.base}/v1/tenants/{TENANT}/verify", json=body, timeout=10)
    out = _outcome(answer)
    c.serials.seen(code)
    if out.kind == "ok":
        out.claim = (serial, phone, answer.json())
    return out


def recheck(c: Client) -> Outcome:
    """A repeat check without a phone (``already_verified``), or a fresh one."""
    code = c.serials.old(c.rng) or c.fresh_code()[1]
    body = {"code": code, "channel": "sms"}
    return _outcome(c.session.post(f"{c.base}/v1/tenants/{TENANT}/verify", json=body, timeout=10))


def lookup(c: Client) -> Outcome:
    """The brand's look at a code: records nothing."""
    code = c.serials.old(c.rng) or c.fresh_code()[1]
    return _outcome(c.session.get(f"{c.base}/v1/tenants/{TENANT}/codes/{code}", timeout=10))


def batch(c: Client) -> Outcome:
    """A distributor's carton: 100 codes, some checked before."""
    codes = [c.serials.old(c.rng) or c.fresh_code()[1] for _ in range(100)]
    body = {"codes": codes}
    return _outcome(
        c.session.post(f"{c.base}/v1/tenants/{TENANT}/verify:batch", json=body, timeout=10)
    )


def sms(c: Client) -> Outcome:
    """An Aliyun-style uplink: a fresh code (a claim, so it must be credited) or ``666``."""
    phone = f"1370013{c.rng.randrange(5000):04d}"
    fresh = c.rng.random() < 0.7
    serial, code = c.fresh_code() if fresh else (0, "666")
    uplink = [{"phone_number": phone, "content": code, "dest_code": SMS_NUMBER,
               "sequence_id": c.rng.getrandbits(48), "send_time": "2026-11-23 10:00:00"}]
    body = json.dumps(uplink).encode()
    headers = {"Content-Type": "application/json",
               "X-Itemseal-Signature": itemseal_signature(GATEWAY_SECRET, body)}
    answer = c.session.post(f"{c.base}/v1/sms/aliyun", data=body, headers=headers, timeout=10)
    out = _outcome(answer)
    if fresh:
        c.serials.seen(code)
        if out.kind == "ok":  # acknowledged to the gateway: the claim must hold
            out.claim = (serial, phone, {"claimed": True})
    return out


def admin(c: Client) -> Outcome:
    """A brand manager's reads: today's checks by channel, or a member by phone."""
    headers = {"Authorization": f"Bearer {c.token}"}
    if c.rng.random() < 0.5:
        url = f"{c.base}/v1/admin/tenants/{TENANT}/reports/checks?by=channel"
        return _outcome(c.session.get(url, headers=headers, timeout=10))
    phone = f"1390013{c.rng.randrange(5000):04d}"
    url = f"{c.base}/v1/admin/tenants/{TENANT}/members?phone={phone}"
    answer = c.session.get(url, headers=headers, timeout=10)
    return Outcome(200, "ok") if answer.status_code == 404 else _outcome(answer)  # no such one


MIXES: dict[str, tuple[float, Callable[[Client], Outcome]]] = {
    "claim": (0.30, claim),
    "verify": (0.25, recheck),
    "lookup": (0.15, lookup),
    "batch": (0.10, batch),
    "sms": (0.12, sms),
    "admin": (0.08, admin),
}
"""Name -> (weight, request)."""


# -- the run -----------------------------------------------------------------------------


@dataclass
class Tally:
    started: float
    interval: float
    buckets: dict[int, Counter] = field(default_factory=dict)
    errors: Counter = field(default_factory=Counter)
    by_mix: dict[str, Counter] = field(default_factory=dict)
    claims: list[tuple[int, str, dict]] = field(default_factory=list)
    ok_times: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, mix: str, out: Outcome, at: float) -> None:
        with self.lock:
            bucket = self.buckets.setdefault(int((at - self.started) // self.interval), Counter())
            bucket["requests"] += 1
            self.by_mix.setdefault(mix, Counter())[out.kind] += 1
            if out.kind == "ok":
                bucket["ok"] += 1
                self.ok_times.append(at)
            else:
                bucket["errors"] += 1
                self.errors[out.kind] += 1
            if out.claim:
                self.claims.append(out.claim)


def load_thread(
    base: str, serials: Serials, tally: Tally, until: float, seed: int, token: str
) -> None:
    rng = random.Random(seed)
    client = Client(base, serials, rng, token=token)
    names = list(MIXES)
    weights = [MIXES[n][0] for n in names]
    while time.monotonic() < until:
        mix = rng.choices(names, weights)[0]
        try:
            out = MIXES[mix][1](client)
        except requests.RequestException as exc:
            out = Outcome(0, type(exc).__name__)
            client.session = requests.Session()
        tally.add(mix, out, time.monotonic())
        if out.kind != "ok" and out.status in (0, 503):
            time.sleep(0.01)  # a client backs off a little while the store is down


def seed(client: redis.Redis, master: MasterKey, count: int) -> tuple[object, int, str]:
    """The tenant with an active batch, its SMS number and a manager's token."""
    limits = {"verify_rate_ip": "0", "verify_rate_phone": "0", "verify_rate_batch": "0"}
    key_store, first = seed_active_batch(
        client, master, TENANT, SKU, count, points=POINTS, limits=limits
    )
    ChannelStore(client, master).update(
        TENANT, sms_number=SMS_NUMBER, gateway_secret=GATEWAY_SECRET, language="en"
    )
    token, _ = TokenStore(client).create(TENANT, "manager", "soak")
    return key_store.signer(TENANT, 0, NUMERIC_24), first, token


def start_server(env: dict[str, str], log: Path, workers: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    itemseal = str(Path(sys.executable).with_name("itemseal"))
    args = [itemseal, "serve", "--bind", f"127.0.0.1:{port}", "--workers", str(workers)]
    with open(log, "ab") as sink:
        proc = subprocess.Popen(args, env=env, stdout=sink, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    if answers_200(proc, f"{base}/healthz"):
        return proc, base
    proc.kill()
    raise RuntimeError(f"itemseal serve did not come up: {log.read_text()[-2000:]}")


def lost_claims(client: redis.Redis, claims: list[tuple[int, str, dict]]) -> dict[str, int]:
    """Count acknowledged claims missing from the store or the ledger."""
    keys, pins = TenantKeys(TENANT), PointsKeys(TENANT)
    ledger = Ledger(client, TENANT)
    lost = uncredited = wrong_points = 0
    for serial, _phone, answer in claims:
        raw = client.hget(keys.scan_bucket(serial), serial % SCAN_BUCKET_SERIALS)
        record = unpack(raw)
        if record is None or not record.claimed or not answer.get("claimed"):
            lost += 1
            continue
        card = client.hget(pins.credit_pin(serial), serial % CREDIT_BUCKET_SERIALS)
        entry = ledger.lookup(card.decode(), f"claim:{serial}") if card else None
        if entry is None:
            uncredited += 1
        elif entry.delta != POINTS:
            wrong_points += 1
    return {"lost": lost, "uncredited": uncredited, "wrong_points": wrong_points}


def killer(store: EmbeddedRedis, at: float, down: float, marks: dict[str, float]) -> None:
    """SIGKILL the redis-server at ``at`` (monotonic), start it again ``down`` s later."""
    time.sleep(max(0.0, at - time.monotonic()))
    pid = store.status().pid
    if pid:
        os.kill(pid, signal.SIGKILL)
    marks["killed"] = time.monotonic()
    time.sleep(down)
    store.start()
    marks["restarted"] = time.monotonic()


def run(args: argparse.Namespace) -> dict:
    home = Path(tempfile.mkdtemp(prefix="is-soak-", dir="/tmp"))
    store = EmbeddedRedis(home)
    master = MasterKey(os.urandom(32))
    proc = None
    try:
        client = store.client()
        signer, first, token = seed(client, master, args.codes)
        env = {
            "ITEMSEAL_HOME": str(home),
            "ITEMSEAL_REDIS_URL": store.url(),
            "ITEMSEAL_MASTER_KEY": base64.b64encode(master.secret).decode(),
            "PATH": os.environ.get("PATH", ""),
        }
        proc, base = start_server(env, home / "serve.log", args.workers)
        serials = Serials(signer, first, args.codes)
        seconds = args.minutes * 60
        started = time.monotonic()
        tally = Tally(started, args.interval)
        marks: dict[str, float] = {}
        until = started + seconds
        threads = [
            threading.Thread(target=load_thread, args=(base, serials, tally, until, n, token))
            for n in range(args.threads)
        ]
        threads.append(threading.Thread(
            target=killer, args=(store, started + seconds * args.kill_at, args.down, marks)
        ))  # fmt: skip
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        proc.send_signal(signal.SIGQUIT)
        proc.wait(30)
        proc = None
        client.close()
        client = store.client()
        report = Reconciler(client, TENANT, min_age=0, master=master).run()
        checked = lost_claims(client, tally.claims)
        client.close()
    finally:
        if proc is not None:
            proc.kill()
        store.stop()
        shutil.rmtree(home, ignore_errors=True)
    ended = seconds
    restarted = marks.get("restarted")
    first_ok = min((t for t in tally.ok_times if restarted and t >= restarted), default=None)
    intervals = [
        {"t": round(i * args.interval, 1), "requests": b["requests"], "ok": b["ok"],
         "errors": b["errors"],
         "ok_per_s": round(b["ok"] / max(min(args.interval, ended - i * args.interval), 0.1), 1)}
        for i, b in sorted(tally.buckets.items())
    ]  # the last interval may be short: its rate is over its own length  # fmt: skip
    return {
        "benchmark": "soak",
        "minutes": args.minutes,
        "threads": args.threads,
        "workers": args.workers,
        "mixes": {name: weight for name, (weight, _) in MIXES.items()},
        "requests": sum(b["requests"] for b in tally.buckets.values()),
        "ok": len(tally.ok_times),
        "intervals": intervals,
        "by_mix": {mix: dict(c) for mix, c in sorted(tally.by_mix.items())},
        "errors": dict(tally.errors),
        "killed_at_s": round(marks["killed"] - started, 2) if "killed" in marks else None,
        "restarted_at_s": round(restarted - started, 2) if restarted else None,
        "recovery_seconds": round(first_ok - restarted, 3) if first_ok and restarted else None,
        "acknowledged_claims": len(tally.claims),
        "pending_claims": sum(bool(a.get("points_pending")) for _, _, a in tally.claims),
        "reconciled": {"seen": report.seen, "credited": report.credited,
                       "failed": len(report.failed)},  # fmt: skip
        "lost_claims": checked["lost"] + checked["uncredited"] + checked["wrong_points"],
        "lost_detail": checked,
        "machine": machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=0.5, help="length of the load")
    parser.add_argument("--threads", type=int, default=8, help="client threads")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds per interval")
    parser.add_argument("--kill-at", type=float, default=0.5, help="fraction of the run")
    parser.add_argument("--down", type=float, default=2.0, help="seconds redis stays down")
    parser.add_argument("--codes", type=int, default=2_000_000, help="codes in the batch")
    args = parser.parse_args()
    result = run(args)
    print(json.dumps(result))
    if result["lost_claims"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
