"""The reports' queries: read counters, scan records and exports, hand them to report_math.

* Checks and counterfeits: the per-day counter hashes (``stats.py``), the
  tenant-wide one and one per code segment of the tenant's batches, added
  up per day in one pipelined round trip.
* Suspicious codes: the scan buckets of every batch, walked by serial range
  (no SCAN over the keyspace: a batch knows which buckets it can have),
  500 buckets per round trip.
* Members by tier and points per product: the counters the member and
  ledger scripts keep per shard (``points_bridge/counters.py``), 16 hashes
  in one round trip. Given a Parquet export of ``itemseal export
  members|ledger`` (``schemas/points.py``) they read the file instead; a
  store from before the counters (until ``itemseal points recount``) is
  exported to memory and read the same way.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import redis

from codegen.batches import Batch, BatchRegistry, segments_of
from codegen.files import file_errors
from codegen.keys import KeyStore
from codegen.store.keyspace import SCAN_BUCKET_SERIALS, TenantKeys
from codegen.tenants import TenantStore
from points_bridge import counters
from points_bridge.settings import SettingsStore
from points_bridge.transfer import export
from verify_api.admin import report_math
from verify_api.admin.report_math import Suspect, Table
from verify_api.check import scanrecord, stats
from verify_api.exc import InvalidField

DEFAULT_DAYS = 14
MAX_DAYS = 366
BUCKETS_PER_TRIP = 500
BY = ("day", "product", "region", "channel", "source")
SMS_BY = ("day", "kind", "keyword", "outcome", "campaign")


def date_range(
    start: str | None, end: str | None, now: float, days: int = DEFAULT_DAYS
) -> tuple[date, date]:
    """Read ``from``/``to`` (YYYY-MM-DD, inclusive); default: the last ``days`` days."""
    try:
        last = date.fromisoformat(end) if end else datetime.fromtimestamp(now, UTC).date()
    except ValueError:
        raise InvalidField("to", f"'to' is a date, YYYY-MM-DD: {end!r}") from None
    try:
        first = date.fromisoformat(start) if start else last - timedelta(days=days - 1)
    except ValueError:
        raise InvalidField("from", f"'from' is a date, YYYY-MM-DD: {start!r}") from None
    if first > last:
        raise InvalidField("from", "'from' is after 'to'")
    if (last - first).days >= MAX_DAYS:
        raise InvalidField("from", f"at most {MAX_DAYS} days per report")
    return first, last


class Reports:
    """Every report of one tenant."""

    def __init__(
        self,
        client: redis.Redis,
        tenant: str,
        *,
        key_store: KeyStore | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        TenantStore(client).get(tenant)
        self._redis = client
        self.tenant = tenant
        self._keys = TenantKeys(tenant)
        self._key_store = key_store
        self.clock = clock
        self._counts = counters.Counts(client, tenant)

    # -- checks ----------------------------------------------------------------------
    def per_day(self, first: date, last: date) -> dict[str, dict[str, Counter]]:
        """Every day's counters, summed over the tenant's hashes (days with none: zeros)."""
        segments = sorted({s for b in self._batches() for s in segments_of(
            b.first_serial, b.last_serial)})
        days = stats.days_between(first, last)
        pipe = self._redis.pipeline(transaction=False)
        for day in days:
            pipe.hgetall(self._keys.stats_day(day))
            for segment in segments:
                pipe.hgetall(self._keys.segment_stats(segment, day))
        found = iter(pipe.execute())
        return {day: stats.merge(next(found) for _ in range(len(segments) + 1)) for day in days}

    def checks(self, first: date, last: date, by: str = "day") -> Table:
        if by not in BY:
            raise InvalidField("by", f"'by' is one of {', '.join(BY)}")
        per_day = self.per_day(first, last)
        return (report_math.checks_by_day(per_day) if by == "day"
                else report_math.checks_by(by, per_day))

    def sms(self, first: date, last: date, by: str = "kind") -> Table:
        """Inbound SMS received from ``first`` to ``last`` (UTC days) counted by day, kind
        (code, join, balance, redeem, draw, stop, feedback, unknown), keyword, outcome
        (the reply sent) or campaign (replies within a campaign's reply window)."""
        if by not in SMS_BY:
            raise InvalidField("by", f"'by' is one of {', '.join(SMS_BY)}")
        return report_math.sms_by(by, self.sms_log(first, last))

    def sms_log(self, first: date, last: date) -> list[dict[str, str]]:
        """The inbound log's messages of the span, oldest first (``TenantKeys.sms_inbound``)."""
        start = int(datetime.combine(first, datetime.min.time(), UTC).timestamp()) * 1000
        end = int(datetime.combine(last + timedelta(days=1), datetime.min.time(),
                                   UTC).timestamp()) * 1000 - 1
        out = []
        for _, raw in self._redis.xrange(self._keys.sms_inbound, start, end):
            out.append({k.decode(): v.decode() for k, v in raw.items()})
        return out

    def counterfeits(self, first: date, last: date) -> Table:
        return report_math.counterfeits_by_region(self.per_day(first, last))

    # -- suspicious codes -------------------------------------------------------------
    def suspicious(self, min_checks: int = 2, limit: int = 50) -> Table:
        return report_math.rank_suspects(self._scanned(), min_checks, limit)

    def scanned(self) -> Iterator[Suspect]:
        """Every scanned code of the tenant's batches (the alerts' risk rule reads them)."""
        return self._scanned()

    def _scanned(self) -> Iterator[Suspect]:
        for batch in self._batches():
            signer = self._signer(batch)
            buckets = range(batch.first_serial // SCAN_BUCKET_SERIALS,
                            batch.last_serial // SCAN_BUCKET_SERIALS + 1)
            for at in range(0, len(buckets), BUCKETS_PER_TRIP):
                chunk = buckets[at : at + BUCKETS_PER_TRIP]
                pipe = self._redis.pipeline(transaction=False)
                for bucket in chunk:
                    pipe.hgetall(self._keys.scan_bucket(bucket * SCAN_BUCKET_SERIALS))
                for bucket, raw in zip(chunk, pipe.execute(), strict=True):
                    for field, value in raw.items():
                        serial = bucket * SCAN_BUCKET_SERIALS + int(field)
                        record = scanrecord.unpack(value)
                        if record is None or not batch.first_serial <= serial <= batch.last_serial:
                            continue
                        code = signer(serial) if signer else None
                        yield Suspect(serial, batch.batch_id, batch.sku, record, code)

    def _signer(self, batch: Batch) -> Callable[[int], str] | None:
        if self._key_store is None:
            return None
        return self._key_store.signer(self.tenant, batch.key_id, batch.profile).code

    def _batches(self) -> list[Batch]:
        return BatchRegistry(self._redis, self.tenant).list()

    # -- members and points, from the Parquet exports -----------------------------------
    def tiers(self, members_file: Path | None = None) -> Table:
        ladder = SettingsStore(self._redis).get(self.tenant).ladder.names
        if members_file is None and self._counts.complete():
            return report_math.tier_table(counters.by_tier(self._counts.read()), ladder)
        table = self._export_table("members", members_file)
        return report_math.members_by_tier(table.to_pylist(), ladder)

    def points(self, ledger_file: Path | None = None) -> Table:
        if ledger_file is None and self._counts.complete():
            return report_math.points_table(counters.by_product(self._counts.read()))
        table = self._export_table("ledger", ledger_file, columns=["kind", "delta", "sku"])
        return report_math.points_by_product(table.to_pylist())

    def _export_table(
        self, what: str, path: Path | None, columns: list[str] | None = None
    ) -> pa.Table:
        if path is not None:
            with file_errors(path, "read"):
                return pq.read_table(path, columns=columns)
        sink = pa.BufferOutputStream()
        export(self._redis, self.tenant, what, "parquet", sink)
        return pq.read_table(pa.BufferReader(sink.getvalue()), columns=columns)
