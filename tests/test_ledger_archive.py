"""``points archive``: entries leave Redis for Parquet, and every reader still sees them once."""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import astuple

import pyarrow.parquet as pq
import pytest
import redis
from click.testing import CliRunner
from redis.cluster import RedisCluster

from cli import main
from points_bridge.archiving import archive_ledger
from points_bridge.counters import Counts, recount
from points_bridge.exc import ArchiveMissing, BadInput
from points_bridge.integrity import verify_store
from points_bridge.ledger import Ledger
from points_bridge.ledger_archive import (
    LISTED,
    ArchivedEntries,
    list_runs,
    parse_runs,
    shard_file,
)
from points_bridge.members import MemberStore
from points_bridge.purchase_rules import Line
from points_bridge.purchases import PurchaseDesk, PurchaseRequest, sales_entries
from points_bridge.scoped import points_scripts
from points_bridge.settings import SettingsStore
from points_bridge.shops import ShopStore
from points_bridge.transfer import export, import_members
from tests.helpers.acl import client_without_scripts
from tests.helpers.cli_runner import ITEMSEAL
from tests.helpers.master import TEST_MASTER, with_test_master

pytestmark = pytest.mark.cluster

PHONES = [f"1381234{i:04d}" for i in range(6)]


@pytest.fixture
def world(redis_client, points_tenant, tmp_path):
    """Six imported members with opening balances, adjustments, a redemption, a purchase."""
    tenant = points_tenant()
    SettingsStore(redis_client).update(tenant, expiry_months="12")
    ShopStore(redis_client, tenant).add("JN-01", name="Jinan", region="Shandong")
    crm = tmp_path / "crm.csv"
    crm.write_text("phone,points\n" + "".join(f"{p},{100 + i}\n" for i, p in enumerate(PHONES)))
    assert import_members(redis_client, tenant, crm, master=TEST_MASTER).created == 6
    members = MemberStore(redis_client, tenant, master=TEST_MASTER)
    ledger = Ledger(redis_client, tenant)
    cards = [members.find(phone=p).card for p in PHONES]
    for i, card in enumerate(cards[:4]):
        ledger.adjust(card, 5 + i, reason=f"goodwill {i}")
    ledger.redeem(cards[1], 20, reason="gift")
    bought = PurchaseDesk(redis_client, tenant).record(PurchaseRequest(
        PHONES[2], "JN-01", (Line("LIP-001", 1, 10_000), Line("EYE-002", 2, 5_000)), "till-1"))
    return tenant, crm, cards, bought.purchase_id


def _everything(client, tenant: str, cards: list[str], tmp_path) -> dict:
    """What every reader of the ledger sees."""
    ledger = Ledger(client, tenant)
    out = tmp_path / f"ledger-{time.monotonic_ns()}.parquet"
    export(client, tenant, "ledger", "parquet", out, master=TEST_MASTER)
    rows = pq.read_table(out).to_pylist()
    return {
        "history": {card: ledger.history(card) for card in cards},
        "last_two": {card: ledger.history(card, 2) for card in cards},
        "export": sorted(rows, key=lambda r: (r["card"], r["entry_id"])),
        "purchases": PurchaseDesk(client, tenant).history(cards[2]),
        "sales": sorted(sales_entries(client, tenant, 0, master=TEST_MASTER),  # all members'
                        key=lambda e: (*astuple(e)[:-1], sorted(e.fields.items()))),
    }


def _archive(client, tenant: str, tmp_path, **kw):
    time.sleep(0.002)  # the cut-off is in ms (an entry id's): after the last entry's own ms
    return archive_ledger(client, tenant, cutoff=time.time(), directory=tmp_path / "archive",
                          master=TEST_MASTER, **kw)


def test_archived_entries_leave_redis_and_every_reader_still_sees_them(
        redis_client, world, tmp_path):
    tenant, crm, cards, purchase = world
    before = _everything(redis_client, tenant, cards, tmp_path)
    counts = Counts(redis_client, tenant).read()
    balances = [MemberStore(redis_client, tenant).get(c).balance for c in cards]
    seen = []
    report = _archive(redis_client, tenant, tmp_path, progress=lambda d, t: seen.append((d, t)))
    entries = sum(len(h) for h in before["history"].values())
    assert (report.members_trimmed, report.members_changed, report.run.entries) == (6, 0,
                                                                                    entries)
    assert seen[-1][0] == seen[-1][1] and seen == sorted(seen)
    keys = MemberStore(redis_client, tenant).keys
    for card in cards:  # the ledger and idem keys are gone; the record says what left
        assert not redis_client.exists(keys.ledger(card), keys.idem(card))
        record = redis_client.hgetall(keys.member(card))
        assert int(record[b"archived"]) == len(before["history"][card])
    assert _everything(redis_client, tenant, cards, tmp_path) == before
    assert [MemberStore(redis_client, tenant).get(c).balance for c in cards] == balances
    assert recount(redis_client, tenant) == counts  # the points report's figures, rebuilt
    assert verify_store(redis_client, TEST_MASTER).problems == []
    # An archived purchase is refunded as before, and history goes on after the archive.
    refund = PurchaseDesk(redis_client, tenant).refund(purchase, [2], idempotency_key="r-1")
    assert refund.entry.kind == "refund" and refund.entry.delta < 0
    after = Ledger(redis_client, tenant).adjust(cards[0], 7, reason="later")
    assert Ledger(redis_client, tenant).history(cards[0])[-1] == after.entry
    assert Ledger(redis_client, tenant).history(cards[0])[:-1] == before["history"][cards[0]]


def test_a_rerun_of_the_import_still_sees_each_archived_opening_balance(
        redis_client, world, tmp_path):
    tenant, crm, cards, _ = world
    balances = [MemberStore(redis_client, tenant).get(c).balance for c in cards]
    _archive(redis_client, tenant, tmp_path)
    again = import_members(redis_client, tenant, crm, master=TEST_MASTER)
    assert (again.created, again.updated, again.errors) == (0, 6, [])
    assert [MemberStore(redis_client, tenant).get(c).balance for c in cards] == balances
    changed = tmp_path / "changed.csv"
    changed.write_text(f"phone,points\n{PHONES[0]},999\n")
    report = import_members(redis_client, tenant, changed, master=TEST_MASTER)
    assert report.errors and "opening balance already 100" in report.errors[0][1]


def test_a_run_cut_off_before_its_trim_doubles_nothing_and_the_next_run_finishes(
        redis_client, world, tmp_path):
    """The files are listed before the trim; a run that dies there leaves each entry in
    Redis and in a file, and every reader still counts it once."""
    if isinstance(redis_client, RedisCluster):
        pytest.skip("an ACL user is made per node; the single server shows the cut")
    tenant, _, cards, _ = world
    before = _everything(redis_client, tenant, cards, tmp_path)
    counts = Counts(redis_client, tenant).read()
    with client_without_scripts(redis_client) as limited, \
            pytest.raises(redis.exceptions.NoPermissionError):
        _archive(limited, tenant, tmp_path)
    assert len(list_runs(redis_client, tenant)) == 1
    assert redis_client.exists(MemberStore(redis_client, tenant).keys.ledger(cards[0]))
    assert _everything(redis_client, tenant, cards, tmp_path) == before
    assert recount(redis_client, tenant) == counts
    report = _archive(redis_client, tenant, tmp_path)
    assert report.members_trimmed == 6 and len(list_runs(redis_client, tenant)) == 2
    assert _everything(redis_client, tenant, cards, tmp_path) == before
    assert recount(redis_client, tenant) == counts
    assert verify_store(redis_client, TEST_MASTER).problems == []


def test_the_trim_leaves_a_stream_that_moved_since_it_was_read(redis_client, world, tmp_path):
    tenant, _, cards, _ = world
    keys = MemberStore(redis_client, tenant).keys
    first = redis_client.xrange(keys.ledger(cards[0]))
    time.sleep(0.002)
    end = f"{int(time.time() * 1000)}-0"
    trim = points_scripts(redis_client).ledger_archive
    args = [end, len(first) - 1, first[-2][0], "import:opening-balance"]
    assert trim(keys=[keys.member(cards[0]), keys.ledger(cards[0]), keys.idem(cards[0])],
                args=args) == 0
    assert redis_client.xlen(keys.ledger(cards[0])) == len(first)


def test_a_missing_archive_file_is_an_error_not_a_shorter_history(
        redis_client, world, tmp_path):
    tenant, _, cards, _ = world
    run = _archive(redis_client, tenant, tmp_path).run
    shard_file(run.directory, 0).unlink()
    for shard in range(1, 16):  # every member's shard file but one
        shard_file(run.directory, shard).unlink()
    with pytest.raises(ArchiveMissing, match="is missing"):
        Ledger(redis_client, tenant).history(cards[0])
    problems = verify_store(redis_client, TEST_MASTER).problems
    assert problems and all("is missing" in p for p in problems)


def test_the_cut_off_cannot_be_in_the_future(redis_client, world, tmp_path):
    tenant = world[0]
    with pytest.raises(BadInput, match="future"):
        archive_ledger(redis_client, tenant, cutoff=time.time() + 60,
                       directory=tmp_path, master=TEST_MASTER)


def test_the_files_hold_each_entry_as_the_stream_did(redis_client, world, tmp_path):
    tenant, _, cards, _ = world
    history = {card: Ledger(redis_client, tenant).history(card) for card in cards}
    run = _archive(redis_client, tenant, tmp_path).run
    rows = [row for shard in range(16)
            for row in pq.read_table(shard_file(run.directory, shard)).to_pylist()]
    assert len(rows) == run.entries == sum(map(len, history.values()))
    by_id = {(r["card"], r["entry_id"]): r for r in rows}
    for card, entries in history.items():
        for e in entries:
            row = by_id[(card, e.entry_id)]
            assert (row["kind"], row["delta"], row["balance"], row["at"], row["idem"]) == (
                e.kind, e.delta, e.balance, e.at, e.idem)
    cards_in_files = [r["card"] for r in pq.read_table(shard_file(run.directory, 3))
                      .to_pylist()]
    assert cards_in_files == sorted(cards_in_files)  # one member's rows are a range
    assert list(ArchivedEntries(redis_client, tenant).every()) != []


def test_points_archive_command(itemseal_env, redis_client):
    runner = CliRunner()
    env = with_test_master(itemseal_env)

    def run(*args):
        return runner.invoke(main, list(args), env=env, catch_exceptions=False)

    assert run("tenant", "create", "ACME", "--name", "Acme").exit_code == 0
    assert run("member", "join", "--tenant", "ACME", "--phone", PHONES[0]).exit_code == 0
    assert run("member", "adjust", "--tenant", "ACME", "--phone", PHONES[0], "--points", "40",
               "--reason", "welcome").exit_code == 0
    kept = run("points", "archive", "--tenant", "ACME")
    assert kept.exit_code == 0 and "nothing to archive" in kept.output
    time.sleep(0.01)
    moved = run("points", "archive", "--tenant", "ACME", "--older-than", "0")
    assert moved.exit_code == 0, moved.output
    assert "archived 1 entry of 1 member to " in moved.output
    as_json = run("points", "archive", "--tenant", "ACME", "--older-than", "0", "--json")
    assert json.loads(as_json.output) == {"run": None, "members_seen": 1,
                                          "members_trimmed": 0, "members_changed": 0}
    shown = run("member", "show", "--tenant", "ACME", "--phone", PHONES[0])
    assert "reason=welcome" in shown.output
    unknown = run("points", "archive", "--tenant", "NOPE", "--older-than", "0")
    assert unknown.exit_code != 0 and len(unknown.output.strip().splitlines()) == 1
    assert "Traceback" not in unknown.output
    negative = run("points", "archive", "--tenant", "ACME", "--older-than", "-1")
    assert negative.exit_code == 2 and "x>=0" in negative.output


def test_kill_9_of_the_archive_mid_trim_loses_and_doubles_nothing(
        redis_client, points_tenant, itemseal_env, tmp_path):
    """``points archive`` killed with SIGKILL once its first members are trimmed (the run is
    listed, the rest not trimmed yet): every reader sees each entry once, and a second run
    finishes the work."""
    if isinstance(redis_client, RedisCluster):
        pytest.skip("the single server shows the kill; the cluster's trim is one call each")
    tenant = points_tenant()
    members = 20_000
    crm = tmp_path / "crm.csv"
    crm.write_text("phone,points\n" + "".join(f"139{i:08d},{1 + i % 50}\n"
                                                for i in range(members)))
    assert import_members(redis_client, tenant, crm, master=TEST_MASTER).created == members
    store = MemberStore(redis_client, tenant, master=TEST_MASTER)
    sample = [store.find(phone=f"139{i:08d}").card for i in range(0, members, members // 40)]
    for card in sample:
        Ledger(redis_client, tenant).adjust(card, 3, reason="sampled")
    before = _everything(redis_client, tenant, sample, tmp_path)
    counts = Counts(redis_client, tenant).read()
    env = with_test_master(itemseal_env)
    (tmp_path / "archive").mkdir()
    proc = subprocess.Popen([ITEMSEAL, "points", "archive", "--tenant", tenant,
                             "--older-than", "0", "--dir", str(tmp_path / "archive")],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = store.keys.member(next(iter(store.cards())))  # trimmed in the first batch
    deadline = time.monotonic() + 60
    while not redis_client.hexists(first, "archived") and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.001)
    proc.kill()
    assert proc.wait() == -9, "the run ended before it was killed"
    assert len(list_runs(redis_client, tenant)) == 1  # listed, then cut off while trimming
    left = sum(redis_client.exists(store.keys.ledger(c)) for c in sample)
    assert _everything(redis_client, tenant, sample, tmp_path) == before
    assert recount(redis_client, tenant) == counts
    assert verify_store(redis_client, TEST_MASTER, sample=50).problems == []
    again = _archive(redis_client, tenant, tmp_path)
    assert again.members_trimmed == (again.run.members if again.run else 0)
    assert not any(redis_client.exists(store.keys.ledger(c)) for c in sample)
    assert _everything(redis_client, tenant, sample, tmp_path) == before
    assert recount(redis_client, tenant) == counts
    print(f"{left} of {len(sample)} sampled ledgers were still in Redis after the kill")


def test_a_later_run_with_an_older_cut_off_hides_nothing_an_earlier_run_trimmed(
        redis_client, world, tmp_path):
    """Runs are read in the order they were listed, not by cut-off: run X (cut-off now) is
    cut off after trimming one member; run Y, with an older cut-off, archives the others
    again. The member only X holds keeps its history."""
    if isinstance(redis_client, RedisCluster):
        pytest.skip("an ACL user is made per node; the single server shows the order")
    tenant, _, cards, _ = world
    before = _everything(redis_client, tenant, cards, tmp_path)
    time.sleep(0.02)
    older = time.time()
    time.sleep(0.02)
    with client_without_scripts(redis_client) as limited, \
            pytest.raises(redis.exceptions.NoPermissionError):
        _archive(limited, tenant, tmp_path)  # run X: listed, nothing trimmed
    (x,) = list_runs(redis_client, tenant)
    keys = MemberStore(redis_client, tenant).keys
    found = redis_client.xrange(keys.ledger(cards[0]), "-", f"({x.cutoff_ms}-0")
    trim = points_scripts(redis_client).ledger_archive  # X's trim of its first member
    assert trim(keys=[keys.member(cards[0]), keys.ledger(cards[0]), keys.idem(cards[0])],
                args=[f"{x.cutoff_ms}-0", len(found), found[-1][0], "import:opening-balance"])
    y = archive_ledger(redis_client, tenant, cutoff=older, directory=tmp_path / "archive",
                       master=TEST_MASTER)
    assert y.members_trimmed == 5 and [r.listed for r in list_runs(redis_client, tenant)] == [1, 2]
    assert _everything(redis_client, tenant, cards, tmp_path) == before


def test_runs_listed_before_runs_were_numbered_still_read_first():
    """A run listed by a version before the listing counter has no ``listed``: it came first."""
    old = {"dir": "/a", "cutoff_ms": 5, "entries": 1, "members": 1, "at": 100}
    raw = {b"r-old-2": json.dumps({**old, "at": 200}).encode(),
           b"r-old-1": json.dumps(old).encode(),
           b"r-new": json.dumps({**old, "at": 50, "listed": 1}).encode(),
           LISTED.encode(): b"1"}
    assert [run.run_id for run in parse_runs(raw)] == ["r-old-1", "r-old-2", "r-new"]
