"""Backups, restore, verify and the standby, on real redis-servers each test starts itself.

Claims go through the real engine (``VerifyEngine.verify`` with a phone: the
verify script claims, the crediter credits), as ``test_claim_points.py`` does
over HTTP.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import redis
from click.testing import CliRunner
from helpers.crashkit import (
    POINTS,
    TENANT,
    World,
    check_ledgers,
    claimed_serials,
    own_world,
    phone_of,
)
from helpers.homes import make_short_home

from benchmarks.fixtures import free_port, seed_active_batch
from cli import main
from codegen.codes import NUMERIC_24
from codegen.exc import ReplicaTimeout
from codegen.keys import KeyStore, MasterKey
from codegen.store.backup import MANIFEST
from codegen.store.embedded import EmbeddedRedis
from codegen.store.keyspace import PointsKeys
from codegen.store.standby import replica_conf
from points_bridge.ledger import Ledger
from points_bridge.reconcile import Reconciler
from verify_api.app import create_app
from verify_api.check.engine import CheckRequest
from verify_api.exc import StoreError


@pytest.fixture
def world() -> Iterator[World]:
    """ACME with an active batch on an own embedded store (killed and restored by tests)."""
    made = own_world(make_short_home(), count=600)
    yield made
    made.close()


@pytest.fixture
def backups(tmp_path: Path) -> Path:
    """The folder backups go into, as a cron job's (it exists; each backup is new in it)."""
    folder = tmp_path / "backups"
    folder.mkdir()
    return folder


def cli(world_or_home, *args: str, url: str | None = None, master: MasterKey | None = None):
    """Run ``itemseal`` in-process; the embedded store of a home unless ``url``."""
    home = world_or_home.store.home if isinstance(world_or_home, World) else world_or_home
    master = master or (world_or_home.master if isinstance(world_or_home, World) else None)
    env = {
        "ITEMSEAL_HOME": str(home),
        "ITEMSEAL_REDIS_URL": url,
        "ITEMSEAL_MASTER_KEY": base64.b64encode(master.secret).decode() if master else None,
        "ITEMSEAL_REPLICAS": None,
    }
    return CliRunner().invoke(main, list(args), env=env)


def gone(pid: int) -> None:
    """Wait until a killed redis-server has exited (it is not our child: init reaps it)."""
    psutil.wait_procs([psutil.Process(pid)], timeout=10)


def one_line_error(result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and result.exception.__class__ is SystemExit
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


class Claimer:
    """Claims code after code through the real engine in a thread; keeps each acknowledgement.

    The engine is a coroutine API: it runs on an event loop of the Claimer's own,
    driven by whichever thread claims (the Claimer's, or the test's when it is idle).
    """

    def __init__(self, world: World, start: int = 0, pace: float = 0.0) -> None:
        self.world = world
        self.pace = pace  # seconds between the thread's claims
        self.loop = asyncio.new_event_loop()
        self.app = create_app(world.client, KeyStore(world.client, world.master))
        self.next = start
        self.acked: dict[int, tuple[float, object]] = {}  # code index -> (when, answer)
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def claim(self, i: int) -> None:
        request = CheckRequest(self.world.codes[i], phone=phone_of(i), channel="web")
        answer = self.loop.run_until_complete(
            self.app.engine.verify(TENANT, request, "127.0.0.1"))
        assert answer.result == "genuine" and answer.claimed, answer
        self.acked[i] = (time.monotonic(), answer)

    def _run(self) -> None:
        while not self.stop.is_set() and self.next < len(self.world.codes):
            i, self.next = self.next, self.next + 1
            try:
                self.claim(i)
                time.sleep(self.pace)
            except (StoreError, redis.RedisError) as exc:
                self.errors.append(type(exc).__name__)
                time.sleep(0.01)

    def wait_for(self, count: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acked) < count:
            assert time.monotonic() < deadline, f"{len(self.acked)} acked: {self.errors[:3]}"
            time.sleep(0.01)

    def finish(self) -> None:
        self.stop.set()
        if self.thread.ident is not None:
            self.thread.join(30)
        self.loop.run_until_complete(self.app.engine.link.aclose())
        self.loop.close()


def assert_holds(world: World, acked: dict[int, tuple[float, object]]) -> None:
    """Every acknowledged claim is claimed and credited (to the card the answer named)."""
    claimed = claimed_serials(world)
    credited = check_ledgers(world)  # also: every balance is its ledger's sum
    for i, (_, answer) in acked.items():
        serial = world.first + i
        assert serial in claimed, f"acknowledged claim of serial {serial} is lost"
        if answer.credit is not None:
            assert credited[serial] == (answer.credit.member_card, POINTS)


def test_backup_while_checks_run_then_restore_into_a_destroyed_home(world, backups):
    claimer = Claimer(world, pace=0.002)
    for i in range(50):
        claimer.claim(i)
    claimer.next = 50
    claimer.thread.start()
    claimer.wait_for(120)
    started = time.monotonic()
    done = cli(world, "store", "backup", "--out", str(backups / "b1"))
    finished = time.monotonic()
    claimer.finish()
    during = [i for i, (at, _) in claimer.acked.items() if started <= at <= finished]
    assert during, "checks went on while the backup was taken"
    assert done.exit_code == 0, done.output
    assert "master key is NOT in this backup" in done.output
    assert "ITEMSEAL_MASTER_KEY" in done.output
    before = {i: a for i, a in claimer.acked.items() if a[0] < started}
    assert len(before) >= 120

    manifest = json.loads((backups / "b1" / MANIFEST).read_text())
    assert manifest["kind"] == "rdb" and manifest["created_at"].endswith("Z")
    assert manifest["keys_per_tenant"][TENANT] > 0 and manifest["redis_version"]
    assert set(manifest["files"]) == {"dump.rdb"}

    gone(world.kill_store())
    shutil.rmtree(world.store.run_dir)  # the store's folder is gone
    restored = cli(world, "store", "restore", str(backups / "b1"))
    assert restored.exit_code == 0, restored.output
    checked = cli(world, "store", "verify", "--backup", str(backups / "b1"))
    assert checked.exit_code == 0, checked.output
    assert "store verified" in checked.output and f"{TENANT}: " in checked.output

    world.client = world.store.client()
    assert world.client.dbsize() == manifest["keys"]
    assert_holds(world, before)


def test_keys_format_over_a_url_into_a_tar_then_a_new_home(world, backups):
    claimer = Claimer(world)
    for i in range(40):
        claimer.claim(i)
    claimer.finish()
    archive = backups / "b.tar.gz"
    done = cli(world, "store", "backup", "--out", str(archive), "--format", "keys", url=world.url)
    assert done.exit_code == 0, done.output
    assert archive.is_file() and "keys" in done.output

    home = make_short_home()
    other = World(EmbeddedRedis(home), None, world.master, world.codes, world.first)  # type: ignore[arg-type]
    try:
        restored = cli(other, "store", "restore", str(archive))
        assert restored.exit_code == 0, restored.output
        checked = cli(other, "store", "verify", "--backup", str(archive))
        assert checked.exit_code == 0, checked.output
        other.client = other.store.client()
        assert other.client.dbsize() == world.client.dbsize()
        assert_holds(other, claimer.acked)
        # the restored store is durable: its AOF holds everything after a kill -9
        gone(other.kill_store())
        other.restart_store()
        assert other.client.dbsize() == world.client.dbsize()
    finally:
        other.close()


def seeded_primary(home: Path, count: int) -> World:
    store = EmbeddedRedis(home, port=free_port())
    client = store.client()
    master = MasterKey(base64.b64decode(base64.b64encode(bytes(range(32)))))
    limits = {"verify_rate_ip": "0", "verify_rate_phone": "0", "verify_rate_batch": "0"}
    keys, first = seed_active_batch(client, master, TENANT, "SKU-1", count, limits=limits)
    signer = keys.signer(TENANT, 0, NUMERIC_24)
    return World(store, client, master, [signer.code(first + i) for i in range(count)], first)


@pytest.fixture
def primary_and_standby(monkeypatch) -> Iterator[tuple[World, World]]:
    primary = seeded_primary(make_short_home(), 600)
    standby_home = make_short_home()
    standby = World(EmbeddedRedis(standby_home), None, primary.master, primary.codes, primary.first)  # type: ignore[arg-type]
    url = f"redis://127.0.0.1:{primary.store.port}"
    started = cli(standby, "store", "start", "--replica-of", url)
    assert started.exit_code == 0, started.output
    assert "standby running" in started.output
    standby.client = standby.store.client()
    monkeypatch.setenv("ITEMSEAL_REPLICAS", "1")
    try:
        yield primary, standby
    finally:
        for world in (standby, primary):
            world.close()


def test_kill_the_primary_promote_the_standby_every_acknowledged_claim_is_there(
    primary_and_standby,
):
    primary, standby = primary_and_standby
    assert standby.client.info("replication")["role"] == "slave"
    claimer = Claimer(primary)
    claimer.thread.start()
    claimer.wait_for(150)
    gone(primary.kill_store())  # kill -9, mid-stream
    time.sleep(0.2)
    claimer.finish()
    acked = dict(claimer.acked)

    promoted = cli(standby, "store", "promote")
    assert promoted.exit_code == 0, promoted.output
    assert "promoted" in promoted.output and "asynchronous" in promoted.output
    assert not replica_conf(standby.store).exists()
    assert standby.client.info("replication")["role"] == "master"
    # claims a crash left uncredited
    Reconciler(standby.client, TENANT, min_age=0, master=standby.master).run()
    assert_holds(standby, acked)
    standby.client.set("is:written-after-promotion", "1")  # it takes writes now

    standby.store.stop()  # a restart stays a primary: promote removed replica.conf
    standby.restart_store()
    assert standby.client.info("replication")["role"] == "master"


def test_a_claim_is_not_acknowledged_without_enough_replicas(primary_and_standby, monkeypatch):
    primary, _ = primary_and_standby
    monkeypatch.setenv("ITEMSEAL_REPLICAS", "2")
    monkeypatch.setenv("ITEMSEAL_REPLICAS_TIMEOUT_MS", "50")
    claimer = Claimer(primary)
    with pytest.raises(ReplicaTimeout, match="only 1 of 2 replicas"):
        claimer.claim(0)
    claimer.finish()
    assert claimed_serials(primary) == {primary.first}, "claimed on the primary, unacknowledged"


# -- CLI error paths: one line, no traceback ---------------------------------------------


def test_restore_errors_are_one_line(world, backups, tmp_path):
    assert "does not exist" in one_line_error(cli(world, "store", "restore", str(tmp_path / "x")))
    (tmp_path / "junk").write_text("not a backup")
    assert "is not a backup" in one_line_error(
        cli(world, "store", "restore", str(tmp_path / "junk"))
    )
    (tmp_path / "empty").mkdir()
    assert "no manifest.json" in one_line_error(
        cli(world, "store", "restore", str(tmp_path / "empty"))
    )

    assert cli(world, "store", "backup", "--out", str(backups / "b")).exit_code == 0
    line = one_line_error(cli(world, "store", "restore", str(backups / "b")))
    assert "the store is running" in line and "--force" in line
    world.store.stop()
    line = one_line_error(cli(world, "store", "restore", str(backups / "b")))
    assert "is not empty" in line and "--force" in line

    forced = cli(world, "store", "restore", "--force", str(backups / "b"))
    assert forced.exit_code == 0 and "data.before-restore-" in forced.output, forced.output

    dump = backups / "b" / "dump.rdb"
    dump.write_bytes(dump.read_bytes()[:-1] + b"\x00")
    world.store.stop()
    assert "is damaged" in one_line_error(
        cli(world, "store", "restore", "--force", str(backups / "b"))
    )


def test_backup_errors_are_one_line(world, backups):
    (backups / "full").mkdir(parents=True)
    (backups / "full" / "something").write_text("x")
    line = one_line_error(cli(world, "store", "backup", "--out", str(backups / "full")))
    assert "already exists" in line
    line = one_line_error(cli(world, "store", "backup", "--out", str(backups / "b"), "--format",
                              "rdb", url="redis://10.255.255.1:6379"))  # fmt: skip
    assert "not reachable from here" in line and "--format keys" in line
    line = one_line_error(cli(world, "store", "start", "--replica-of", "unix:///tmp/x.sock"))
    assert "redis://HOST:PORT" in line


def test_verify_reports_each_problem_on_its_own_line(world):
    claimer = Claimer(world)
    claimer.claim(0)
    claimer.finish()
    card = next(c for c in claimed_card_numbers(world))
    world.client.hset(PointsKeys(TENANT).member(card), "balance", 999)
    wrong = MasterKey(bytes(32))
    result = cli(world, "store", "verify", master=wrong)
    assert result.exit_code == 1 and "Traceback" not in result.output
    problems = result.stderr.strip().splitlines()
    assert len(problems) == 2, result.stderr
    assert problems[0].startswith("problem: tenant ACME: key 0 does not open")
    assert "cannot list members: the card key of 'ACME' was sealed under a different" in (
        problems[1])  # a wrong master key cannot walk the members either
    right = cli(world, "store", "verify")
    assert right.exit_code == 1 and right.stderr.strip().splitlines() == [
        f"problem: tenant ACME: member {card} has balance 999, its ledger sums to {POINTS}"]
    assert cli(world, "store", "verify", "--sample", "0").exit_code == 0


def claimed_card_numbers(world: World) -> Iterator[str]:
    from points_bridge.members import MemberStore

    members = MemberStore(world.client, TENANT, master=world.master)
    return (card for card in members.cards() if members.get(card) is not None)


def test_the_ledger_archive_is_backed_up_and_restored_where_it_was(world, backups):
    """Entries moved out by ``points archive`` live in files beside the store: a backup
    holds them, a restore on a machine without them puts them back, verify notices a loss."""
    claimer = Claimer(world)
    for i in range(30):
        claimer.claim(i)
    claimer.finish()
    time.sleep(0.01)
    moved = cli(world, "points", "archive", "--tenant", TENANT, "--older-than", "0")
    assert moved.exit_code == 0 and "archived 30 entries" in moved.output, moved.output
    folder = world.store.home / "archive"
    history = {card: Ledger(world.client, TENANT).history(card)
               for card in {a.credit.member_card for _, a in claimer.acked.values()}}
    archive = backups / "b.tar.gz"
    done = cli(world, "store", "backup", "--out", str(archive), "--format", "keys", url=world.url)
    assert done.exit_code == 0 and "with 16 ledger archive files" in done.output, done.output

    shutil.rmtree(folder)  # the machine's files are lost with it
    lost = cli(world, "store", "verify")
    assert lost.exit_code == 1 and lost.stderr.count("is missing") >= 16, lost.output
    home = make_short_home()
    other = World(EmbeddedRedis(home), None, world.master, world.codes, world.first)  # type: ignore[arg-type]
    try:
        restored = cli(other, "store", "restore", str(archive))
        assert restored.exit_code == 0, restored.output
        assert "restored 16 ledger archive files where they were" in restored.output
        checked = cli(other, "store", "verify", "--backup", str(archive))
        assert checked.exit_code == 0, checked.output
        other.client = other.store.client()
        assert {card: Ledger(other.client, TENANT).history(card) for card in history} == history
        assert all(entries for entries in history.values())
        again = cli(other, "store", "restore", str(archive), "--force")
        assert again.exit_code == 0, again.output  # the same files, already there: left alone
    finally:
        other.close()
