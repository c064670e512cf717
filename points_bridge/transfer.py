"""Export members and the ledger to Parquet or CSV; import members from either.

Exports walk the tenant's cards in issue order (``MemberStore.cards``), a
chunk at a time with one pipelined round trip per chunk, and write one
record batch per chunk with the schema from ``schemas/points.py``.

Imports check every row before writing any of it: a bad row is reported by
its line (CSV, counting the header as line 1) or row (Parquet) and skipped,
the good rows are kept. A row is written by at most two idempotent scripts:
the member with its profile (created, or updated, in one script), then the
opening balance as an adjustment keyed ``import:opening-balance``. A re-run
of the same file therefore changes nothing; a different opening balance for
a member who already has one is refused for that row, before any write.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import redis

from codegen.amounts import MAX_ENTRY_POINTS
from codegen.files import file_errors
from points_bridge.exc import BadInput, PointsError
from points_bridge.ledger import BASE_FIELDS, Ledger, stored_int
from points_bridge.members import MemberStore
from points_bridge.settings import PointsSettings
from schemas.points import SCHEMAS, with_metadata

FORMATS = ("parquet", "csv")
CHUNK = 500
OPENING_KEY = "import:opening-balance"
IMPORT_COLUMNS = ("phone", "birthday", "points", "attributes")
EXPORT_ONLY = ("card", "status", "balance", "earned", "tier", "pinned_tier", "created_at",
               "source")


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


def _ledger_rows(client: redis.Redis, ledger: Ledger, cards: list[str]) -> list[dict]:
    pipe = client.pipeline(transaction=False)
    for card in cards:
        pipe.xrange(ledger.keys.ledger(card))
    rows = []
    for card, entries in zip(cards, pipe.execute(), strict=True):
        for entry_id, raw in entries:
            f = {k.decode(): v.decode() for k, v in raw.items()}
            details = {k: v for k, v in f.items()
                       if k not in (*BASE_FIELDS, "serial", "sku", "reason", "card")}
            rows.append({
                "card": card, "entry_id": entry_id.decode(), "kind": f["kind"],
                "delta": stored_int(f.get("delta")), "balance": stored_int(f.get("balance")),
                "earned": stored_int(f.get("earned")), "tier": f.get("tier"),
                "at": int(f.get("at", 0)) * 1000, "idempotency_key": f.get("idem") or None,
                "serial": int(f["serial"]) if f.get("serial") else None,
                "sku": f.get("sku") or None, "reason": f.get("reason") or None,
                "details": json.dumps(details, sort_keys=True, ensure_ascii=False),
            })
    return rows


def export(
    client: redis.Redis, tenant: str, what: str, fmt: str, out: Path | pa.NativeFile
) -> int:
    """Write the tenant's ``members`` or ``ledger`` to ``out``; return the rows written."""
    if fmt not in FORMATS:
        raise BadInput("format", fmt, f"use one of {', '.join(FORMATS)}")
    members = MemberStore(client, tenant)
    members.settings()  # unknown tenant: say so before creating a file
    schema = with_metadata(SCHEMAS[what], tenant, what)
    sink = str(out) if isinstance(out, Path) else out
    with file_errors(sink, "write"):
        writer = (pq.ParquetWriter(sink, schema, compression="zstd") if fmt == "parquet"
                  else pacsv.CSVWriter(sink, schema))
    written = 0
    ledger = Ledger(client, tenant)
    with writer:
        for cards in _chunks(members.cards()):
            rows = (_member_rows(client, members, cards) if what == "members"
                    else _ledger_rows(client, ledger, cards))
            if rows:
                writer.write_batch(pa.RecordBatch.from_pylist(rows, schema=schema))
                written += len(rows)
    return written


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)


def _read(path: Path) -> tuple[list[str], Iterator[tuple[str, dict[str, str]]]]:
    """Return the column names and (where, row) pairs of a CSV or Parquet file."""
    with file_errors(path, "read"), open(path, "rb") as fh:
        parquet = fh.read(4) == b"PAR1"
    if parquet:
        with file_errors(path, "read"):
            table = pq.read_table(path)
        rows = ((f"row {i}", {k: "" if v is None else str(v) for k, v in row.items()})
                for i, row in enumerate(table.to_pylist(), start=1))
        return table.column_names, rows

    def csv_rows() -> Iterator[tuple[str, dict[str, str]]]:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            for row in reader:
                yield f"line {reader.line_num}", {k: (v or "") for k, v in row.items()}

    with file_errors(path, "read"), open(path, newline="", encoding="utf-8-sig") as fh:
        header = next(csv.reader(fh), [])
    return header, csv_rows()


read_rows = _read
"""The column names and (where, row) pairs of a CSV or Parquet file (``purchase_import``)."""


def import_members(client: redis.Redis, tenant: str, path: Path) -> ImportReport:
    """Create or update members from a file; report bad rows, keep the good ones."""
    members = MemberStore(client, tenant)
    ledger = Ledger(client, tenant)
    settings = members.settings()
    columns, rows = _read(path)
    with file_errors(path, "read"):
        return _import_rows(members, ledger, settings, path, columns, rows)


def _import_rows(
    members: MemberStore, ledger: Ledger, settings: PointsSettings, path: Path, columns: list[str],
    rows: Iterator[tuple[str, dict[str, str]]],
) -> ImportReport:
    unknown = set(columns) - set(IMPORT_COLUMNS) - set(EXPORT_ONLY) - set(settings.attributes)
    if "phone" not in columns or unknown:
        problem = f"unknown columns {', '.join(sorted(unknown))}" if unknown else "no phone column"
        raise BadInput("file", str(path), f"{problem}; columns are phone, birthday, points,"
                       " attributes (JSON) and the tenant's declared attributes")
    report = ImportReport()
    for where, row in rows:
        try:
            e164 = members.normalize(row["phone"], settings)
            attributes = dict(json.loads(row["attributes"])) if row.get("attributes") else {}
            attributes.update({k: v for k, v in row.items() if k in settings.attributes and v})
            birthday = row.get("birthday") or None
            profile = members.profile_fields(settings, birthday, attributes)
            points = _points(row.get("points", ""))
            existing = members.by_phone(e164)
            if existing is not None and points:
                opened = ledger.lookup(existing.card, OPENING_KEY)
                if opened is not None and opened.delta != points:
                    raise BadInput("points", points, f"opening balance already {opened.delta}")
        except (PointsError, ValueError) as exc:
            report.errors.append((where, str(exc)))
            continue
        member, created = members.ensure(e164, settings=settings, source="import",
                                         profile=profile)
        if not created and profile:
            members.update_profile(member.card, birthday=birthday, attributes=attributes)
        if points:
            ledger.adjust(member.card, points, reason="import: opening balance", idem=OPENING_KEY,
                          expiry=(settings.expiry_months, settings.timezone))
        report.created += created
        report.updated += not created
    return report


def _points(text: str) -> int:
    text = text.strip()
    if not text:
        return 0
    if not text.isdigit() or int(text) > MAX_ENTRY_POINTS:
        raise BadInput("points", text,
                       f"an opening balance is a whole number from 0 to {MAX_ENTRY_POINTS}")
    return int(text)
