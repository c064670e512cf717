"""Ledger entries archived out of Redis: Parquet files, and where to find them.

A member's ledger stream costs Redis ~1.3 KB from its first entry (a
stream's node and tree), more than all the rest of the member; most members of
a large brand have not moved in months. ``itemseal points archive``
(``archiving.py``) moves entries older than a cut-off into Parquet files and
trims them from Redis, so a quiet member costs its record and phone index
only (``benchmarks/bench_members.py``), while the history, exports, reports
and ``store verify`` read both.

One archive run writes one folder, one file per member shard
(``shard-NN.parquet``, every shard, so a missing file is a lost file), rows
sorted by card and entry id in row groups of ``ROW_GROUP`` rows: reading one
member's entries reads the row groups whose card range holds it, not the file.
The runs are listed in Redis (``PointsKeys.ledger_archive``: run id -> JSON
{dir, cutoff_ms, entries, members, at}) so every process that reads a member's history finds them;
files are written and fsynced before they are listed, and listed before the
entries leave Redis. A run cut off between the two leaves entries both here
and in Redis, and the next run archives them again. So readers follow one
rule (``live_from``): once a run with cut-off C is listed, every entry with an
id below C is in the files (ids are posting times, and C was in the past when
the run read Redis), so an entry still in Redis below C is a copy and is
skipped, and a run's rows below the cut-off of a run listed before it are
copies too (``parse_runs``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import redis

from codegen.store.keyspace import MEMBER_SHARDS, TENANT_INDEX, PointsKeys, shard_of
from points_bridge.exc import ArchiveMissing
from schemas.points import LEDGER_ARCHIVE_SCHEMA as SCHEMA

ROW_GROUP = 16_384
"""Rows per row group: a member's lookup decodes at most about this many rows per file."""

def shard_file(run_dir: Path, shard: int) -> Path:
    return run_dir / f"shard-{shard:02d}.parquet"


@dataclass(frozen=True)
class ArchiveRun:
    """One archive run as listed in Redis; ``listed``: its place in the listing order."""

    run_id: str
    directory: Path
    cutoff_ms: int
    entries: int
    members: int
    at: int
    listed: int = 0

    def to_json(self) -> dict[str, object]:
        return {"run": self.run_id, "dir": str(self.directory), "cutoff_ms": self.cutoff_ms,
                "entries": self.entries, "members": self.members, "at": self.at,
                "listed": self.listed}


LISTED = "#listed"
"""Field of ``PointsKeys.ledger_archive`` counting the runs listed, which orders them."""


def list_runs(client: redis.Redis, tenant: str) -> list[ArchiveRun]:
    """The tenant's archive runs in the order they were listed."""
    return parse_runs(client.hgetall(PointsKeys(tenant).ledger_archive))


def parse_runs(raw: Mapping[bytes, bytes]) -> list[ArchiveRun]:
    """The runs of ``PointsKeys.ledger_archive`` as read (HGETALL), in listing order.

    Readers skip a run's rows below the cut-off of any run listed before it:
    that run read Redis after the earlier one was listed, so whatever it holds
    below that cut-off the earlier one holds too (or an even earlier one did
    the trimming, and holds it). Listing order, not cut-off order: a later run
    with an older cut-off holds only what the earlier ones had not trimmed.
    """
    runs = []
    for run_id, text in raw.items():
        if run_id == LISTED.encode():
            continue
        facts = json.loads(text)
        runs.append(ArchiveRun(run_id.decode(), Path(facts["dir"]), int(facts["cutoff_ms"]),
                               int(facts["entries"]), int(facts["members"]), int(facts["at"]),
                               int(facts.get("listed", 0))))
    # a run listed before runs were numbered (0) came before every numbered one, in the
    # order of their start, as they were read then
    return sorted(runs, key=lambda run: (run.listed, run.at, run.run_id))


def live_from(runs: Iterable[ArchiveRun]) -> int:
    """The first ledger id time (ms) read from Redis: entries below it are archived."""
    return max((run.cutoff_ms for run in runs), default=0)


def add_run(client: redis.Redis, tenant: str, run: ArchiveRun) -> ArchiveRun:
    """List ``run`` (its files are on disk): numbered first, so a run that reads Redis after
    this one is listed always comes after it (``parse_runs``)."""
    key = PointsKeys(tenant).ledger_archive
    run = replace(run, listed=client.hincrby(key, LISTED, 1))
    facts = run.to_json()
    del facts["run"]
    client.hset(key, run.run_id, json.dumps(facts))
    return run


def write_shard(path: Path, batches: list[pa.RecordBatch]) -> int:
    """Write one shard's rows sorted by (card, entry id), fsynced; return the rows."""
    table = pa.Table.from_batches(batches, schema=SCHEMA)
    table = table.sort_by([("card", "ascending"), ("entry_id", "ascending")])
    partial = path.with_name(path.name + ".partial")
    pq.write_table(table, partial, row_group_size=ROW_GROUP, compression="zstd")
    with open(partial, "rb") as fh:
        os.fsync(fh.fileno())
    partial.replace(path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return table.num_rows


class ArchivedEntries:
    """Read a tenant's archived entries as the ledger stream's field mappings.

    Rows come out as ``(card, entry_id, fields)`` with ``fields`` the str -> str
    mapping the stream would hold, so ``Entry`` is built one way for both.
    A missing file is an error, not an empty history: entries would be lost.
    """

    def __init__(self, client: redis.Redis, tenant: str) -> None:
        self._client = client
        self.tenant = tenant

    def runs(self) -> list[ArchiveRun]:
        return list_runs(self._client, self.tenant)

    def of_member(self, card: str, runs: list[ArchiveRun] | None = None,
                  ) -> list[tuple[str, dict[str, str]]]:
        """The member's archived entries, oldest first."""
        found: list[tuple[str, dict[str, str]]] = []
        below = 0  # the earlier runs' cut-off: their copies in a later run are skipped
        for run in self.runs() if runs is None else runs:
            path = _existing(run, shard_of(card))
            for row in pq.read_table(path, filters=[("card", "=", card)]).to_pylist():
                if id_ms(row["entry_id"]) >= below:
                    found.append((row["entry_id"], _stream_fields(row)))
            below = max(below, run.cutoff_ms)
        return sorted(found, key=lambda item: id_order(item[0]))

    def every(self, since_ms: int = 0) -> Iterator[tuple[str, str, dict[str, str]]]:
        """Every archived entry with an id from ``since_ms`` on: (card, entry id, fields)."""
        below = since_ms
        for run in self.runs():
            if run.cutoff_ms <= below:  # every row of it is older (or a copy)
                continue
            for shard in range(MEMBER_SHARDS):
                path = _existing(run, shard)
                for batch in pq.ParquetFile(path).iter_batches(batch_size=ROW_GROUP):
                    for row in batch.to_pylist():
                        if id_ms(row["entry_id"]) >= below:
                            yield row["card"], row["entry_id"], _stream_fields(row)
            below = max(below, run.cutoff_ms)


def _existing(run: ArchiveRun, shard: int) -> Path:
    path = shard_file(run.directory, shard)
    if not path.exists():
        raise ArchiveMissing(str(path), run.run_id)
    return path


def id_ms(entry_id: str) -> int:
    """The posting time (ms) a ledger entry id starts with."""
    return int(entry_id.partition("-")[0])


def id_order(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _stream_fields(row: Mapping[str, Any]) -> dict[str, str]:
    fields = {"kind": row["kind"], "delta": str(row["delta"]), "balance": str(row["balance"]),
              "earned": str(row["earned"]), "tier": row["tier"], "at": str(row["at"]),
              "idem": row["idem"]}
    fields.update(json.loads(row["fields"] or "{}"))
    return fields


def backup_files(client: redis.Redis) -> dict[str, Path]:
    """Every tenant's archive files, as ``store backup`` keeps them beside the snapshot:
    ``ledger-archive/<tenant>/<run>/shard-NN.parquet`` -> the file."""
    files = {}
    for raw in sorted(client.smembers(TENANT_INDEX)):
        tenant = raw.decode()
        for run in list_runs(client, tenant):
            for shard in range(MEMBER_SHARDS):
                path = shard_file(run.directory, shard)
                files[f"ledger-archive/{tenant}/{run.run_id}/{path.name}"] = path
    return files


def missing_files(client: redis.Redis, tenant: str) -> list[ArchiveMissing]:
    """The tenant's listed archive files that are not where they were written."""
    return [ArchiveMissing(str(shard_file(run.directory, shard)), run.run_id)
            for run in list_runs(client, tenant) for shard in range(MEMBER_SHARDS)
            if not shard_file(run.directory, shard).exists()]
