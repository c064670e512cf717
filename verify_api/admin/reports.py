"""The reports' queries: read counters, scan records and exports, hand them to report_math.

* Checks and counterfeits: the per-day counter hashes (``stats.py``), the
  tenant-wide one and one per code segment of the tenant's batches, added
  up per day in one pipelined round trip.
* Every day is the tenant's (``points_timezone``, as the checks count them
  and as the sales report and the points' "today" read them): ``today()``,
  the SMS log's days, the span a report defaults to.
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
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import redis

from codegen.batches import Batch, BatchRegistry, segments_of
from codegen.files import file_errors
from codegen.keys import KeyStore, MasterKey
from codegen.store.keyspace import SCAN_BUCKET_SERIALS, TenantKeys
from codegen.tenants import TenantStore
from points_bridge import counters
from points_bridge.purchases import SALES_BY, SALES_COLUMNS, sales_entries, sales_rows
from points_bridge.settings import SettingsStore, timezone_of
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
    start: str | None, end: str | None, today: date, days: int = DEFAULT_DAYS
) -> tuple[date, date]:
    """Read ``from``/``to`` (YYYY-MM-DD, inclusive); default: the ``days`` days to ``today``.

    ``today`` is the tenant's (``Reports.today``): a report asked for at 01:00 in
    Shanghai ends on Shanghai's date, not on the UTC one still running.
    """
    try:
        last = date.fromisoformat(end) if end else today
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


def sales_by(text: str) -> tuple[str, ...]:
    """``day,shop`` -> ``("day", "shop")``: the sales report's breakdown, each of ``SALES_BY``."""
    dims = tuple(d.strip() for d in (text or "").split(",") if d.strip())
    if not dims or any(d not in SALES_BY for d in dims) or len(set(dims)) < len(dims):
        raise InvalidField("by", f"group by any of {', '.join(SALES_BY)}, comma-separated,"
                                 f" each once: {text!r}")
    return dims


class Reports:
    """Every report of one tenant."""

    def __init__(
        self,
        client: redis.Redis,
        tenant: str,
        *,
        key_store: KeyStore | None = None,
        master: MasterKey | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``key_store`` re-signs suspicious codes; ``master`` (or the key store's)
        opens the card key that the member and points reports walk with."""
        record = TenantStore(client).get(tenant)
        self.timezone = timezone_of(record.settings)
        """The tenant's days' zone, read once per report."""
        self._redis = client
        self.tenant = tenant
        self._keys = TenantKeys(tenant)
        self._key_store = key_store
        self._master = master if master is not None or key_store is None else key_store.master
        self.clock = clock
        self._counts = counters.Counts(client, tenant)

    def today(self) -> date:
        """The tenant's date now: the last day a report shows by default."""
        return stats.day_date(self.clock(), self.timezone)

    def span(self, start: str | None, end: str | None) -> tuple[date, date]:
        """``date_range`` ending, by default, on the tenant's today."""
        return date_range(start, end, self.today())

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

    def sales(self, first: date, last: date, by: str = "day") -> Table:
        """Purchases less refunds from ``first`` to ``last`` (the tenant's days) by ``by``:
        ``SALES_BY`` names, comma-separated (``day,shop``), as ``itemseal report sales --by``
        and the office's sales report both ask; one row per value."""
        dims = sales_by(by)
        since, _ = stats.span_seconds(first, last)  # wider than any offset: rows keep the span
        entries = sales_entries(self._redis, self.tenant, since, master=self._master)
        rows = sales_rows(entries, dims, self.timezone, first.strftime("%Y%m%d"),
                          last.strftime("%Y%m%d"))
        return Table("sales", (*dims, *SALES_COLUMNS), rows)

    def sms(self, first: date, last: date, by: str = "kind") -> Table:
        """Inbound SMS received from ``first`` to ``last`` (the tenant's days) counted by day, kind
        (code, join, balance, redeem, draw, stop, feedback, unknown), keyword, outcome
        (the reply sent) or campaign (replies within a campaign's reply window)."""
        if by not in SMS_BY:
            raise InvalidField("by", f"'by' is one of {', '.join(SMS_BY)}")
        return report_math.sms_by(by, self.sms_log(first, last), self.timezone)

    def sms_log(self, first: date, last: date) -> list[dict[str, str]]:
        """The inbound log's messages of the span, oldest first (``TenantKeys.sms_inbound``).

        Reads a span wider than any offset (``stats.span_seconds``) and keeps the
        messages whose tenant day is in the range: a day a DST change cut short or
        long loses nothing and borrows nothing.
        """
        start, end = stats.span_seconds(first, last)
        low, high = first.strftime("%Y%m%d"), last.strftime("%Y%m%d")
        out = []
        for entry_id, raw in self._redis.xrange(self._keys.sms_inbound, start * 1000,
                                                end * 1000 + 999):
            message = {k.decode(): v.decode() for k, v in raw.items()}
            at = int(message.get("at") or int(entry_id.split(b"-")[0]) // 1000)
            if low <= stats.day_of(at, self.timezone) <= high:
                out.append(message)
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
        export(self._redis, self.tenant, what, "parquet", sink, master=self._master)
        return pq.read_table(pa.BufferReader(sink.getvalue()), columns=columns)
