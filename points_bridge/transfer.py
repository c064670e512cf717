"""Export members and the ledger to Parquet or CSV; import members from either.

Exports walk the tenant's cards in issue order (``MemberStore.cards``), a
chunk at a time with one pipelined round trip per chunk, and write one
record batch per chunk with the schema from ``schemas/points.py``.

Imports check every row before writing any of it: a bad row is reported by
its line (CSV, counting the header as line 1) or row (Parquet) and skipped,
the good rows are kept. Checked rows are written ``BATCH`` at a time by
``member_import.py``: new members with their opening balance (an adjustment
keyed ``import:opening-balance``) by one script per member shard, existing
ones only where the file differs from the store. A re-run of the same file
therefore changes nothing; a different opening balance for a member who
already has one is refused for that row, before any write.

A CRM's cards and tiers carry over: ``card`` is kept when it is free (a
well-formed card no member holds; a row whose card is taken is refused),
``tier`` becomes the member's manual floor (``MemberStore.pin_tier``), a tier
the ladder does not know refuses the row.
"""

from __future__ import annotations

import csv
import itertools
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import redis

from codegen.amounts import MAX_ENTRY_POINTS
from codegen.files import file_errors, text_encoding
from codegen.keys import MasterKey
from points_bridge.exc import BadInput, PointsError
from points_bridge.ledger import BASE_FIELDS, Ledger, stored_int
from points_bridge.ledger_archive import ArchivedEntries, list_runs, live_from
from points_bridge.member_import import ImportReport, ImportRow, MemberImporter
from points_bridge.members import MemberStore
from points_bridge.settings import PointsSettings
from schemas.points import SCHEMAS, with_metadata

FORMATS = ("parquet", "csv")
CHUNK = 500
BATCH = 2000
"""Rows written per batch (``member_import.py``): a few round trips each."""
IMPORT_COLUMNS = ("phone", "birthday", "points", "attributes", "card", "tier")
EXPORT_ONLY = ("status", "balance", "earned", "pinned_tier", "created_at", "source")


def _chunks(items: Iterator[str], size: int = CHUNK) -> Iterator[list[str]]:
    chunk: list[str] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _member_rows(client: redis.Redis, members: MemberStore, cards: list[str]) -> list[dict]:
    pipe = client.pipeline(transaction=False)
    for card in cards:
        pipe.hgetall(members.keys.member(card))
    rows = []
    for card, raw in zip(cards, pipe.execute(), strict=True):
        m = members.get_from(card, raw)
        if m is None:
            continue
        rows.append({
            "card": m.card, "phone": m.phone, "status": m.status, "balance": m.balance,
            "earned": m.earned, "tier": m.tier, "pinned_tier": m.pinned_tier,
            "birthday": m.birthday, "created_at": m.created_at * 1000, "source": m.source,
            "attributes": json.dumps(m.attributes, sort_keys=True, ensure_ascii=False),
        })
    return rows


def _ledger_rows(client: redis.Redis, ledger: Ledger, cards: list[str],
                 start: str = "-") -> list[dict]:
    """The export rows of the entries in Redis (from id ``start``: those below are
    archived, ``ledger_archive.live_from``)."""
    pipe = client.pipeline(transaction=False)
    for card in cards:
        pipe.xrange(ledger.keys.ledger(card), start)
    rows = []
    for card, entries in zip(cards, pipe.execute(), strict=True):
        for entry_id, raw in entries:
            rows.append(_ledger_row(card, entry_id.decode(),
                                    {k.decode(): v.decode() for k, v in raw.items()}))
    return rows


def _archived_rows(client: redis.Redis, tenant: str) -> Iterator[list[dict]]:
    """The export rows of the archived entries (``points archive``), a batch at a time."""
    rows = []
    for card, entry_id, fields in ArchivedEntries(client, tenant).every():
        rows.append(_ledger_row(card, entry_id, fields))
        if len(rows) == CHUNK:
            yield rows
            rows = []
    if rows:
        yield rows


def _ledger_row(card: str, entry_id: str, f: Mapping[str, str]) -> dict:
    details = {k: v for k, v in f.items()
               if k not in (*BASE_FIELDS, "serial", "sku", "reason", "card")}
    return {
        "card": card, "entry_id": entry_id, "kind": f["kind"],
        "delta": stored_int(f.get("delta")), "balance": stored_int(f.get("balance")),
        "earned": stored_int(f.get("earned")), "tier": f.get("tier"),
        "at": int(f.get("at", 0)) * 1000, "idempotency_key": f.get("idem") or None,
        "serial": int(f["serial"]) if f.get("serial") else None,
        "sku": f.get("sku") or None, "reason": f.get("reason") or None,
        "details": json.dumps(details, sort_keys=True, ensure_ascii=False),
    }


_NUMBER_LIKE = re.compile(r"\+?[0-9]+")
UTF8_BOM = b"\xef\xbb\xbf"


def excel_text(value: object) -> object:
    """A digit string as Excel keeps it: ``="013800138000"``, else ``value`` unchanged.

    Excel opens a CSV cell of digits as a number: 12 or more digits show in
    scientific notation (a card 100000000001 becomes 1E+11), more than 15 lose
    digits, leading zeros go. A cell that is the formula ``="..."`` is the
    text itself, shown and copied as the digits; a leading tab or apostrophe
    would stay in the cell. ``import members`` reads the form back.
    """
    if isinstance(value, str) and _NUMBER_LIKE.fullmatch(value):
        return f'="{value}"'
    return value


def excel_unwrap(value: str) -> str:
    """``="digits"`` (an ``--excel`` export's cell) -> the digits."""
    if value.startswith('="') and value.endswith('"') and _NUMBER_LIKE.fullmatch(value[2:-1]):
        return value[2:-1]
    return value


def export(
    client: redis.Redis, tenant: str, what: str, fmt: str, out: Path | pa.NativeFile,
    *, master: MasterKey | None, excel: bool = False,
) -> int:
    """Write the tenant's ``members`` or ``ledger`` to ``out``; return the rows written.

    ``excel`` (CSV only): a UTF-8 BOM, so Excel reads the file as UTF-8 and not
    the ANSI code page, and digit strings (cards, phones) as ``excel_text``.
    """
    if fmt not in FORMATS:
        raise BadInput("format", fmt, f"use one of {', '.join(FORMATS)}")
    if excel and fmt != "csv":
        raise BadInput("format", fmt, "--excel is for CSV files")
    members = MemberStore(client, tenant, master=master)
    members.settings()  # unknown tenant: say so before creating a file
    schema = with_metadata(SCHEMAS[what], tenant, what)
    sink = str(out) if isinstance(out, Path) else out
    handle = None
    with file_errors(sink, "write"):
        if excel:
            handle = open(sink, "wb") if isinstance(sink, str) else sink  # noqa: SIM115
            handle.write(UTF8_BOM)
            sink = handle
        writer = (pq.ParquetWriter(sink, schema, compression="zstd") if fmt == "parquet"
                  else pacsv.CSVWriter(sink, schema))
    written = 0
    ledger = Ledger(client, tenant)
    start = f"{live_from(list_runs(client, tenant))}-0"
    batches: Iterable[list[dict]] = (
        (_member_rows(client, members, cards) for cards in _chunks(members.cards()))
        if what == "members" else
        itertools.chain(_archived_rows(client, tenant),
                        (_ledger_rows(client, ledger, cards, start)
                         for cards in _chunks(members.cards()))))
    try:
        with writer:
            for rows in batches:
                if excel:
                    rows = [{k: excel_text(v) for k, v in row.items()} for row in rows]
                if rows:
                    writer.write_batch(pa.RecordBatch.from_pylist(rows, schema=schema))
                    written += len(rows)
    finally:
        if handle is not None and isinstance(out, Path):
            handle.close()
    return written


def _read(path: Path, encoding: str | None = None,
          ) -> tuple[list[str], Iterator[tuple[str, dict[str, str]]]]:
    """Return the column names and (where, row) pairs of a CSV or Parquet file.

    A CSV file's encoding is ``encoding`` or found (``files.text_encoding``:
    BOM, UTF-8, else GBK as Chinese Excel saves); ``="..."`` cells of an
    ``--excel`` export read as their digits.
    """
    with file_errors(path, "read"), open(path, "rb") as fh:
        parquet = fh.read(4) == b"PAR1"
    if parquet:
        with file_errors(path, "read"):
            parquet_file = pq.ParquetFile(path)
        # A record batch at a time: the whole table as Python dicts took ~1 GB at 1M rows.
        rows = ((f"row {i}", {k: "" if v is None else str(v) for k, v in row.items()})
                for i, row in enumerate((row for batch in parquet_file.iter_batches(BATCH)
                                         for row in batch.to_pylist()), start=1))
        return parquet_file.schema_arrow.names, rows

    found = text_encoding(path, encoding)
    found = "utf-8-sig" if found == "utf-8" else found

    def csv_rows() -> Iterator[tuple[str, dict[str, str]]]:
        with open(path, newline="", encoding=found) as fh:
            reader = csv.DictReader(fh)
            for row in reader:
                yield f"line {reader.line_num}", {k: excel_unwrap(v or "") for k, v in row.items()}

    with file_errors(path, "read"), open(path, newline="", encoding=found) as fh:
        header = next(csv.reader(fh), [])
    return header, csv_rows()


read_rows = _read
"""The column names and (where, row) pairs of a CSV or Parquet file (``purchase_import``)."""


def import_members(client: redis.Redis, tenant: str, path: Path,
                   encoding: str | None = None,
                   progress: Callable[[int, int], None] | None = None, *,
                   master: MasterKey | None) -> ImportReport:
    """Create or update members from a file; report bad rows, keep the good ones.

    ``progress(done, total)`` is called after each batch (``total``: the file's
    rows, counted from the Parquet footer or the CSV's lines); ``master`` opens
    the card key new members' cards are made with.
    """
    settings = MemberStore(client, tenant).settings()
    columns, rows = _read(path, encoding)
    with MemberImporter(client, tenant, settings, master=master) as importer, \
            file_errors(path, "read"):
        return _import_rows(importer, path, columns, rows, _row_count(path),
                            progress or (lambda done, total: None))


def _row_count(path: Path) -> int:
    """The rows of a members file, for a progress bar (a CSV's quoted newlines overcount)."""
    with open(path, "rb") as fh:
        if fh.read(4) == b"PAR1":
            return pq.read_metadata(path).num_rows
        fh.seek(0)
        return max(0, sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))
                   - 1)


def _import_rows(
    importer: MemberImporter, path: Path, columns: list[str],
    rows: Iterator[tuple[str, dict[str, str]]], total: int,
    progress: Callable[[int, int], None],
) -> ImportReport:
    settings = importer.settings
    unknown = set(columns) - set(IMPORT_COLUMNS) - set(EXPORT_ONLY) - set(settings.attributes)
    if "phone" not in columns or unknown:
        problem = f"unknown columns {', '.join(sorted(unknown))}" if unknown else "no phone column"
        raise BadInput("file", str(path), f"{problem}; columns are phone, birthday, points,"
                       " attributes (JSON), card, tier and the tenant's declared attributes")
    report = ImportReport()
    batch: dict[str, ImportRow] = {}
    done = 0
    for where, row in rows:
        done += 1
        try:
            checked = _check_row(importer.members, settings, where, row)
        except (PointsError, ValueError) as exc:
            report.errors.append((where, str(exc)))
            continue
        if checked.e164 in batch or len(batch) >= BATCH:  # a phone twice: in file order
            importer.write(list(batch.values()), report)
            progress(done, total)
            batch = {}
        batch[checked.e164] = checked
    importer.write(list(batch.values()), report)
    importer.finish(report)
    progress(done, total)
    report.errors.sort(key=lambda error: int(error[0].rsplit(" ", 1)[-1]))
    return report


def _check_row(members: MemberStore, settings: PointsSettings, where: str,
               row: dict[str, str]) -> ImportRow:
    """Check one row without the store (``BadInput`` and the like)."""
    e164 = members.normalize(row["phone"], settings)
    attributes = dict(json.loads(row["attributes"])) if row.get("attributes") else {}
    attributes.update({k: v for k, v in row.items() if k in settings.attributes and v})
    birthday = row.get("birthday") or None
    profile = members.profile_fields(settings, birthday, attributes)
    points = _points(row.get("points", ""))
    tier = (row.get("tier") or "").strip()
    if tier:
        settings.ladder.index(tier)  # UnknownTier: the row is refused
    return ImportRow(where, e164, profile, birthday, attributes, points,
                     (row.get("card") or "").strip(), tier)


def _points(text: str) -> int:
    text = text.strip()
    if not text:
        return 0
    if not text.isdigit() or int(text) > MAX_ENTRY_POINTS:
        raise BadInput("points", text,
                       f"an opening balance is a whole number from 0 to {MAX_ENTRY_POINTS}")
    return int(text)
