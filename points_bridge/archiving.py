"""``itemseal points archive``: move ledger entries older than a cut-off to Parquet.

Why: a member's ledger stream costs Redis ~1.3 KB from its first entry and
its idempotency hash ~170 B, four times the record itself; once a member's
entries are archived its ledger and idem keys are gone and it costs ~400 B
(``benchmarks/bench_members.py``). Entries stay readable: ``Ledger.history``,
``export ledger``, ``points recount``, the sales report and ``store verify``
read the archive too (``ledger_archive.py``).

Order of work, so that a run cut off anywhere loses nothing: (1) read every
member's entries older than the cut-off; (2) write the run's files and fsync
them; (3) list the run in Redis; (4) trim each member with
``lua/ledger_archive.lua``, which removes the entries only if the stream still
holds exactly those the file holds, and adds their count and points to the
record (``archived``). Cut off after (3), entries are in
both places (readers keep Redis's copy) and the next run archives the rest.

An idempotency key leaves Redis with its entry: a request repeated with a
key older than the cut-off is posted again. Hence the default cut-off of
``DEFAULT_DAYS`` days, far beyond any client's retry; claims are safe either
way (a code is claimed once, in its own record). The import's opening-balance
key is kept on the member's record (``opened``), so re-running a CRM file
never posts an opening balance twice.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import redis
from redis.cluster import RedisCluster

from codegen.keys import MasterKey
from codegen.store.keyspace import MEMBER_SHARDS, shard_of
from points_bridge.exc import BadInput
from points_bridge.ledger import BASE_FIELDS, stored_int
from points_bridge.ledger_archive import SCHEMA, ArchiveRun, add_run, shard_file, write_shard
from points_bridge.member_import import OPENING_KEY
from points_bridge.members import MemberStore
from points_bridge.scoped import points_scripts

DEFAULT_DAYS = 90
"""Default age of the entries moved out: idempotency keys are honoured at least this long."""

BATCH = 1000
"""Members read (and trimmed) per pipeline."""


@dataclass
class ArchiveReport:
    run: ArchiveRun | None
    members_seen: int
    members_trimmed: int
    members_changed: int
    """Members whose stream moved between the read and the trim: left whole, archived again
    by the next run (their rows in this run's files are read once, beside Redis's)."""


def archive_ledger(
    client: redis.Redis,
    tenant: str,
    *,
    cutoff: float,
    directory: Path,
    master: MasterKey | None,
    clock: Callable[[], float] = time.time,
    progress: Callable[[int, int], None] | None = None,
    run_id: str | None = None,
) -> ArchiveReport:
    """Archive every entry posted before ``cutoff`` (unix seconds) under ``directory``.

    "Posted" by the store's clock: an entry's id is the redis-server's time when it
    was written (``XADD *``), which is what the cut-off is compared with.
    """
    now = clock()
    if cutoff > now:
        raise BadInput("cutoff", cutoff, "the cut-off is in the future: entries being"
                                         " posted would leave with their idempotency keys")
    members = MemberStore(client, tenant, master=master)
    members.settings()  # an unknown tenant fails here, with its own message
    cards = list(members.cards())
    cutoff_ms = int(cutoff * 1000)
    end = f"{cutoff_ms}-0"
    run_id = run_id or f"{int(now)}-{uuid.uuid4().hex[:8]}"
    run_dir = directory / tenant / run_id
    batches: list[list[pa.RecordBatch]] = [[] for _ in range(MEMBER_SHARDS)]
    trims: list[tuple[str, int, str]] = []
    total = len(cards)
    for start in range(0, total, BATCH):
        chunk = cards[start:start + BATCH]
        pipe = client.pipeline(transaction=False)
        for card in chunk:
            pipe.xrange(members.keys.ledger(card), "-", f"({end}")
        rows: list[list[dict[str, object]]] = [[] for _ in range(MEMBER_SHARDS)]
        for card, found in zip(chunk, pipe.execute(), strict=True):
            if not found:
                continue
            entries = [(i.decode(), {k.decode(): v.decode() for k, v in raw.items()})
                       for i, raw in found]
            rows[shard_of(card)].extend(archive_rows(card, entries))
            trims.append((card, len(entries), entries[-1][0]))
        for shard, shard_rows in enumerate(rows):  # held as Arrow, not ~10 objects a row
            if shard_rows:
                batches[shard].append(pa.RecordBatch.from_pylist(shard_rows, schema=SCHEMA))
        if progress:
            progress(min(start + BATCH, total), 2 * total)
    if not trims:
        if progress:
            progress(2 * total, 2 * total)
        return ArchiveReport(None, total, 0, 0)
    run_dir.mkdir(parents=True, exist_ok=False)
    try:
        written = sum(write_shard(shard_file(run_dir, shard), batches[shard])
                      for shard in range(MEMBER_SHARDS))
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    run = ArchiveRun(run_id, run_dir.absolute(), cutoff_ms, written, len(trims),
                     int(now))
    run = add_run(client, tenant, run)
    trimmed = _trim(client, members, trims, end, progress, total)
    return ArchiveReport(run, total, trimmed, len(trims) - trimmed)


def _trim(client: redis.Redis, members: MemberStore, trims: list[tuple[str, int, str]],
          end: str, progress: Callable[[int, int], None] | None, total: int) -> int:
    script = points_scripts(client).ledger_archive
    keys = members.keys
    trimmed = 0
    cluster = isinstance(client, RedisCluster)
    for start in range(0, len(trims), BATCH):
        # redis-py refuses EVALSHA in a cluster pipeline: there, one call per member.
        pipe = client if cluster else client.pipeline(transaction=False)
        replies = [script(keys=[keys.member(card), keys.ledger(card), keys.idem(card)],
                          args=[end, count, last, OPENING_KEY], client=pipe)
                   for card, count, last in trims[start:start + BATCH]]
        trimmed += sum(replies if cluster else pipe.execute())
        if progress:
            done = min(start + BATCH, len(trims))
            progress(total + done * total // len(trims), 2 * total)
    if progress:
        progress(2 * total, 2 * total)
    return trimmed


def archive_rows(card: str, entries: Iterable[tuple[str, Mapping[str, str]]],
                 ) -> Iterator[dict[str, object]]:
    """The archive's rows (``ledger_archive.SCHEMA``) of one member's stream entries."""
    for entry_id, fields in entries:
        rest = {k: v for k, v in fields.items() if k not in BASE_FIELDS}
        yield {"card": card, "entry_id": entry_id, "kind": fields.get("kind", ""),
               "delta": stored_int(fields.get("delta")),
               "balance": stored_int(fields.get("balance")),
               "earned": stored_int(fields.get("earned")), "tier": fields.get("tier", ""),
               "at": int(fields.get("at") or 0), "idem": fields.get("idem", ""),
               "fields": json.dumps(rest, ensure_ascii=False, sort_keys=True)}
