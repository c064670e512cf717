"""Tools of the crash-safety tests: an own store and server, a claim stream, the invariants.

The crash tests kill processes with SIGKILL, so nothing here may share a
process with the session's ``redis_server``: each test starts its own
redis-server in its own short home (``OwnStore``) and its own ``itemseal
serve`` (``helpers.serving``).
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis
import requests

from benchmarks.fixtures import seed_active_batch
from codegen.codes import NUMERIC_24
from codegen.keys import MasterKey
from codegen.store.embedded import EmbeddedRedis
from codegen.store.keyspace import (
    CREDIT_BUCKET_SERIALS,
    SCAN_BUCKET_SERIALS,
    PointsKeys,
    TenantKeys,
)
from helpers.cli_runner import ITEMSEAL
from helpers.homes import discard_home
from points_bridge.ledger import Entry, Ledger
from points_bridge.members import MemberStore
from points_bridge.phones import normalize_phone
from points_bridge.reconcile import Reconciler
from tests.helpers.master import TEST_MASTER
from verify_api.check.scanrecord import unpack

TENANT = "ACME"
SKU = "SKU-1"
POINTS = 10
UNLIMITED = {
    "verify_rate_ip": "0",
    "verify_rate_phone": "0",
    "verify_rate_batch": "0",
}


@dataclass
class World:
    """A seeded tenant on an own redis-server: codes ``codes[i]`` have serial ``first + i``."""

    store: EmbeddedRedis
    client: redis.Redis
    master: MasterKey
    codes: list[str]
    first: int

    @property
    def url(self) -> str:
        return self.store.url()

    def env(self) -> dict[str, str]:
        """The environment of ``itemseal`` subprocesses on this store."""
        return {
            "ITEMSEAL_HOME": str(self.store.home),
            "ITEMSEAL_REDIS_URL": self.url,
            "ITEMSEAL_MASTER_KEY": base64.b64encode(self.master.secret).decode(),
            "PATH": os.environ.get("PATH", ""),
            # The CRM receivers these tests post to are on loopback (codegen/webhooks.py).
            "ITEMSEAL_ALLOW_PRIVATE_WEBHOOKS": "1",
        }

    def kill_store(self) -> int:
        """SIGKILL the redis-server (no chance to write anything more); return its pid."""
        pid = self.store.status().pid
        assert pid, "the store is not running"
        os.kill(pid, signal.SIGKILL)
        return pid

    def restart_store(self) -> None:
        """Start redis-server again on the same home: it replays the append-only file."""
        self.store.start()
        self.client.close()
        self.client = self.store.client()

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        discard_home(self.store.home)


def own_world(home: Path, count: int = 2000, limits: dict[str, str] | None = None) -> World:
    """Start a redis-server in ``home`` and seed ACME with an active batch of ``count`` codes."""
    store = EmbeddedRedis(home)
    client = store.client()
    master = TEST_MASTER  # the card key the server seals, the checks here open
    limits = UNLIMITED if limits is None else limits
    key_store, first = seed_active_batch(
        client, master, TENANT, SKU, count, points=POINTS, limits=limits
    )
    signer = key_store.signer(TENANT, 0, NUMERIC_24)
    codes = [signer.code(first + i) for i in range(count)]
    return World(store, client, master, codes, first)


def phone_of(i: int, phones: int = 37) -> str:
    """A CN mobile number; claims share members, so credits of one member race."""
    return f"1380013{i % phones:04d}"


@dataclass
class ClaimStream:
    """Threads that claim code after code over HTTP and keep every 2xx answer."""

    base: str
    world: World
    threads: int = 4
    acked: dict[int, dict] = field(default_factory=dict)
    errors: Counter = field(default_factory=Counter)
    sent: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)

    def start(self) -> ClaimStream:
        for _ in range(self.threads):
            worker = threading.Thread(target=self._run, daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def finish(self) -> None:
        self.stop.set()
        for worker in self._workers:
            worker.join(30)
        assert not any(w.is_alive() for w in self._workers), "a claim thread hung"

    def _next(self) -> int | None:
        with self._lock:
            if self.sent >= len(self.world.codes):
                return None
            self.sent += 1
            return self.sent - 1

    def _run(self) -> None:
        session = requests.Session()
        url = f"{self.base}/v1/tenants/{TENANT}/verify"
        while not self.stop.is_set():
            i = self._next()
            if i is None:
                return
            body = {"code": self.world.codes[i], "phone": phone_of(i), "channel": "web"}
            try:
                answer = session.post(url, json=body, timeout=10)
            except requests.RequestException as exc:
                with self._lock:
                    self.errors[type(exc).__name__] += 1
                session = requests.Session()
                continue
            with self._lock:
                if 200 <= answer.status_code < 300:
                    self.acked[i] = answer.json()
                else:
                    code = answer.json().get("error", {}).get("code", "")
                    self.errors[f"{answer.status_code} {code}"] += 1

    def wait_for(self, acked: int, timeout: float = 30) -> None:
        """Block until at least ``acked`` claims were acknowledged."""
        waited = 0.0
        while len(self.acked) < acked:
            assert waited < timeout, f"only {len(self.acked)} claims acknowledged: {self.errors}"
            assert not self.stop.wait(0.05)
            waited += 0.05


def reconcile(world: World) -> str:
    """Run ``itemseal points reconcile`` on everything (no age limit); return its output."""
    done = subprocess.run(
        [ITEMSEAL, "points", "reconcile", "--tenant", TENANT, "--min-age", "0"],
        env=world.env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "failed 0" in done.stdout, done.stdout + done.stderr
    return done.stdout


def claimed_serials(world: World) -> set[int]:
    """Every serial of the batch whose scan record says a member phone claimed it."""
    keys = TenantKeys(TENANT)
    found = set()
    last = world.first + len(world.codes) - 1
    for bucket in range(world.first // SCAN_BUCKET_SERIALS, last // SCAN_BUCKET_SERIALS + 1):
        base = bucket * SCAN_BUCKET_SERIALS
        for fieldname, raw in world.client.hgetall(keys.scan_bucket(base)).items():
            record = unpack(raw)
            if record is not None and record.claimed:
                found.add(base + int(fieldname))
    return found


def checked_ledgers(world: World) -> Iterator[tuple[str, Entry]]:
    """Every member's ledger entries as ``(card, entry)``, asserting on the way that each
    entry's balance is the running sum and each member's balance its ledger's sum."""
    members = MemberStore(world.client, TENANT, master=world.master)
    ledger = Ledger(world.client, TENANT)
    for card in members.cards():
        member = members.get(card)
        if member is None:
            continue
        running = 0
        for entry in ledger.history(card):
            running += entry.delta
            assert entry.balance == running, f"card {card}: entry {entry.entry_id} off"
            yield card, entry
        assert member.balance == running, f"card {card}: balance {member.balance} != {running}"


def check_ledgers(world: World) -> dict[int, tuple[str, int]]:
    """Assert each member's balance is its ledger's sum; return serial -> (card, points).

    Also asserts that no serial was credited twice, whoever got it.
    """
    credited: dict[int, tuple[str, int]] = {}
    for card, entry in checked_ledgers(world):
        if entry.idem.startswith("claim:"):
            serial = int(entry.idem.removeprefix("claim:"))
            assert serial not in credited, f"serial {serial} credited twice"
            credited[serial] = (card, entry.delta)
    return credited


def check_outboxes_settled(world: World) -> None:
    """After a reconcile with no age limit, no claims outbox holds anything past its checkpoint."""
    keys = PointsKeys(TENANT)
    for segment in Reconciler(world.client, TENANT, master=world.master).segments():
        done = (world.client.get(keys.reconcile_checkpoint(segment)) or b"").decode()
        left = world.client.xrange(keys.claims(segment), f"({done}" if done else "-", "+")
        assert left == [], f"segment {segment}: {len(left)} claims never settled"


def check_claims(world: World, acked: dict[int, dict]) -> dict[int, tuple[str, int]]:
    """Assert the store's claims and credits agree, and hold every acknowledged claim."""
    claimed = claimed_serials(world)
    credited = check_ledgers(world)
    assert set(credited) == claimed, (
        f"claimed but not credited {sorted(claimed - set(credited))[:5]},"
        f" credited but not claimed {sorted(set(credited) - claimed)[:5]}"
    )
    pins = PointsKeys(TENANT)
    members = MemberStore(world.client, TENANT, master=world.master)
    for i, answer in acked.items():
        serial = world.first + i
        assert answer["result"] == "genuine" and answer["claimed"], (i, answer)
        assert serial in claimed, f"acknowledged claim of serial {serial} is lost"
        card, points = credited[serial]
        assert points == POINTS
        e164 = normalize_phone(phone_of(i), "CN")
        assert members.by_phone(e164).card == card
        pinned = world.client.hget(pins.credit_pin(serial), serial % CREDIT_BUCKET_SERIALS)
        assert pinned.decode() == card
        if not answer.get("points_pending"):
            assert answer["points_awarded"] == POINTS, answer
    return credited
