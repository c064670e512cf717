"""Benchmark members at scale: Redis memory per member, import rate, report and export times.

Run under the shared lock (the box is small and others benchmark on it too):

    flock /tmp/itemseal-bench.lock .venv/bin/python benchmarks/bench_members.py
    flock /tmp/itemseal-bench.lock .venv/bin/python benchmarks/bench_members.py \\
        --members 20000 --memory-members 20000 --import-rows 5000   # a quick run

It starts an embedded redis-server in a temporary home (unix socket,
``appendfsync always``, as ``itemseal`` runs it) and measures, each on a
flushed store with a fresh tenant:

* memory: ``used_memory`` before and after ``--memory-members`` members
  imported through ``import_members`` (one opening-balance entry each), then
  brought to 5 ledger entries each by adjustments posted with the ledger's
  own script (``ledger_apply.lua``, pipelined), and the same for 50 entries
  on ``--many-entries-members`` members; bytes per member,
  and ``MEMORY USAGE`` per key type on a sample of members; the CRM event
  streams are measured apart (the drop when they are trimmed as the bridge
  trims them once all is delivered), ``bytes_per_member`` is what stays;
  then ``points archive`` (``archive_ledger``) moves every entry to Parquet and
  ``bytes_per_member_archived`` is what stays of a member whose entries are
  all archived (its record and phone index), with the archive's time and file
  bytes per entry. Each count of entries starts from a fresh tenant;
* import: ``itemseal import members`` (the command, in a subprocess) of a CSV
  and of a Parquet file of ``--import-rows`` rows, members per second, and
  the time of a re-run of the same file (a no-op);
* reports: for each size in ``--members``, the wall time of ``itemseal report
  tiers``, ``report points`` and ``export members`` (subprocesses, so the
  CLI's start-up is included and reported apart as ``cli_startup_s``) and of
  the same queries in-process (``Reports.tiers`` / ``Reports.points``).

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import base64
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.fixtures import machine  # noqa: E402
from codegen.keys import MasterKey  # noqa: E402
from codegen.store.embedded import EmbeddedRedis  # noqa: E402
from codegen.store.keyspace import MEMBER_SHARDS  # noqa: E402
from codegen.tenants import TenantStore  # noqa: E402
from points_bridge.archiving import archive_ledger  # noqa: E402
from points_bridge.ledger import entry_spec  # noqa: E402
from points_bridge.members import MemberStore  # noqa: E402
from points_bridge.scoped import points_scripts  # noqa: E402
from points_bridge.settings import SettingsStore  # noqa: E402
from points_bridge.transfer import import_members  # noqa: E402
from verify_api.admin.reports import Reports  # noqa: E402

TENANT = "BENCH"
PIPELINE = 2000
MANY = 20
SAMPLE = 200


def phone(i: int) -> str:
    return f"+86139{i:08d}"


def write_members(path: Path, count: int, fmt: str) -> None:
    """A CRM file of ``count`` members, each with a birthday and an opening balance."""
    rows = {"phone": [phone(i) for i in range(count)],
            "birthday": [f"19{70 + i % 30}-{1 + i % 12:02d}-{1 + i % 28:02d}"
                         for i in range(count)],
            "points": [str(100 + i % 900) for i in range(count)]}
    if fmt == "parquet":
        pq.write_table(pa.table(rows), path)
        return
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(rows)
        writer.writerows(zip(*rows.values(), strict=True))


def fresh_tenant(client, expiry_months: int = 0) -> None:
    client.flushall()
    TenantStore(client).create(TENANT, "Bench brand")
    if expiry_months:  # each member's opening balance is then an expiry lot on its record
        SettingsStore(client).update(TENANT, expiry_months=str(expiry_months))


def add_entries(client, cards: list[str], per_member: int, start: int) -> None:
    """Post adjustments ``start+1 .. per_member`` to every card, pipelined."""
    keys = MemberStore(client, TENANT).keys
    script = points_scripts(client).ledger_apply
    at = int(time.time())
    pipe = client.pipeline(transaction=False)
    queued = 0
    for n in range(start, per_member):
        for card in cards:
            spec = entry_spec(card, kind="adjust", idem=f"bench:{n}", body={"n": n}, at=at,
                              delta=1, fields={"reason": "bench"})
            script(keys=keys.member_keys(card), args=[json.dumps(spec)], client=pipe)
            queued += 1
            if queued == PIPELINE:
                pipe.execute()
                queued = 0
    if queued:
        pipe.execute()


def key_usage(client, cards: list[str]) -> dict[str, float]:
    """Mean ``MEMORY USAGE`` per member by key type, over a sample of members."""
    keys = MemberStore(client, TENANT).keys
    sample = cards[:: max(1, len(cards) // SAMPLE)][:SAMPLE]
    kinds = {"member_hash": keys.member, "ledger": keys.ledger, "idem_hash": keys.idem}
    out: dict[str, float] = {}
    for name, key_of in kinds.items():
        pipe = client.pipeline(transaction=False)
        for card in sample:
            pipe.memory_usage(key_of(card), samples=0)
        out[name] = round(sum(v or 0 for v in pipe.execute()) / len(sample), 1)
    pipe = client.pipeline(transaction=False)
    for card in sample:
        pipe.memory_usage(keys.phone(MemberStore(client, TENANT).get(card).phone), samples=0)
    out["phone_index"] = round(sum(v or 0 for v in pipe.execute()) / len(sample), 1)
    events = sum(client.memory_usage(keys.events(s), samples=0) or 0 for s in range(MEMBER_SHARDS))
    out["crm_events"] = round(events / len(cards), 1)
    return out


def measure_memory(client, master: MasterKey, home: Path, members: int,
                   entries: list[int], expiry_months: int = 0) -> dict[str, object]:
    """For each count of entries, on a fresh tenant: the bytes per member with the entries
    in Redis, then after ``points archive`` moved them all to Parquet."""
    out: dict[str, object] = {"members": members, "expiry_months": expiry_months}
    path = home / "mem.parquet"
    write_members(path, members, "parquet")
    for k in sorted(entries):
        fresh_tenant(client, expiry_months)
        before = client.info("memory")["used_memory"]
        report = import_members(client, TENANT, path, master=master)
        assert report.created == members and not report.errors, report
        cards = list(MemberStore(client, TENANT, master=master).cards())
        add_entries(client, cards, k, 1)
        used = client.info("memory")["used_memory"] - before
        usage = key_usage(client, cards)
        keys = MemberStore(client, TENANT).keys
        for shard in range(MEMBER_SHARDS):  # what the bridge leaves once all is delivered
            client.xtrim(keys.events(shard), maxlen=0, approximate=False)
        delivered = client.info("memory")["used_memory"] - before
        start = time.perf_counter()
        archived = archive_ledger(client, TENANT, cutoff=time.time(),
                                  directory=home / "archive", master=master)
        archive_s = time.perf_counter() - start
        assert archived.members_trimmed == members, archived
        left = client.info("memory")["used_memory"] - before
        files = sum(f.stat().st_size for f in archived.run.directory.iterdir())
        out[f"entries_{k}"] = {
            "bytes_per_member": round(delivered / members, 1),
            "crm_events_bytes_per_member_until_delivered": round((used - delivered) / members, 1),
            "memory_usage_per_key": usage,
            "bytes_per_member_archived": round(left / members, 1),
            "archive_s": round(archive_s, 2),
            "archive_entries_per_s": round(archived.run.entries / archive_s),
            "archive_file_bytes_per_entry": round(files / archived.run.entries, 1),
        }
        shutil.rmtree(archived.run.directory)
    return out


def timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    return round(time.perf_counter() - start, 3)


def measure_import(client, home: Path, env: dict[str, str], rows: int) -> dict[str, object]:
    itemseal = str(Path(sys.executable).with_name("itemseal"))
    out: dict[str, object] = {"rows": rows}
    for fmt in ("csv", "parquet"):
        path = home / f"import.{fmt}"
        write_members(path, rows, fmt)
        fresh_tenant(client)
        seconds = timed([itemseal, "import", "members", "-t", TENANT, str(path)], env)
        again = timed([itemseal, "import", "members", "-t", TENANT, str(path)], env)
        out[fmt] = {"seconds": seconds, "members_per_s": round(rows / seconds, 1),
                    "rerun_seconds": again}
    return out


def measure_reports(client, home: Path, env: dict[str, str], size: int) -> dict[str, object]:
    itemseal = str(Path(sys.executable).with_name("itemseal"))
    path = home / "reports.parquet"
    write_members(path, size, "parquet")
    fresh_tenant(client)
    start = time.perf_counter()
    subprocess.run([itemseal, "import", "members", "-t", TENANT, str(path)], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    seeded = time.perf_counter() - start
    reports = Reports(client, TENANT)
    t0 = time.perf_counter()
    reports.tiers()
    t1 = time.perf_counter()
    reports.points()
    t2 = time.perf_counter()
    return {
        "members": size,
        "import_s": round(seeded, 2),
        "report_tiers_s": timed([itemseal, "report", "tiers", "-t", TENANT], env),
        "report_points_s": timed([itemseal, "report", "points", "-t", TENANT], env),
        "export_members_s": timed([itemseal, "export", "members", "-t", TENANT, "--out",
                                   str(home / "out.parquet")], env),
        "in_process_tiers_s": round(t1 - t0, 3),
        "in_process_points_s": round(t2 - t1, 3),
        "used_memory_mb": round(client.info("memory")["used_memory"] / 2**20, 1),
    }


def _sizes(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", default="100000,1000000",
                        help="Member counts for the report and export times (comma list).")
    parser.add_argument("--memory-members", type=int, default=100_000)
    parser.add_argument("--entries", default="1,5,50", help="Ledger entries per member.")
    parser.add_argument("--many-entries-members", type=int, default=10_000,
                        help=f"Members for the counts of {MANY} entries or more.")
    parser.add_argument("--import-rows", type=int, default=100_000)
    parser.add_argument("--expiry-months", type=int, default=0,
                        help="Points expire after N months in the memory part's tenant.")
    parser.add_argument("--skip", default="", help="Parts to skip: memory,import,reports.")
    opts = parser.parse_args()
    skip = set(opts.skip.split(","))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the store on a kill too

    load_before = [round(x, 2) for x in os.getloadavg()]
    home = Path(tempfile.mkdtemp(prefix="ism-", dir="/tmp"))
    master = MasterKey(os.urandom(32))
    env = {**os.environ, "ITEMSEAL_HOME": str(home),
           "ITEMSEAL_MASTER_KEY": base64.b64encode(master.secret).decode()}
    env.pop("ITEMSEAL_REDIS_URL", None)
    store = EmbeddedRedis(home)
    result: dict[str, object] = {"benchmark": "members"}
    try:
        # FLUSHALL between the parts outlasts redis-py's 5 s default timeout at 1M members.
        client = store.client(socket_timeout=120)
        itemseal = str(Path(sys.executable).with_name("itemseal"))
        result["cli_startup_s"] = timed([itemseal, "--help"], env)
        if "memory" not in skip:
            few = [k for k in _sizes(opts.entries) if k < MANY]
            many = [k for k in _sizes(opts.entries) if k >= MANY]
            result["memory"] = measure_memory(client, master, home, opts.memory_members, few,
                                              opts.expiry_months)
            if many:  # fewer members: 50 entries each is millions of posts
                result["memory_many_entries"] = measure_memory(
                    client, master, home, opts.many_entries_members, many, opts.expiry_months)
        if "import" not in skip:
            result["import"] = measure_import(client, home, env, opts.import_rows)
        if "reports" not in skip:
            result["reports"] = [measure_reports(client, home, env, n)
                                 for n in _sizes(opts.members)]
        result["redis_version"] = client.info("server")["redis_version"]
        result["loadavg_before"] = load_before
        result["machine"] = machine()
    finally:
        store.stop()
        shutil.rmtree(home, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
