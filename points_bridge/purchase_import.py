"""Import a till's end-of-day purchases from a CSV or Parquet file, exactly once.

One row per purchase line; rows with the same ``receipt`` (the till's own
purchase number) are one purchase, whatever their order in the file.
Columns: ``receipt``, ``member`` (phone or card), ``shop``, ``sku``, ``qty``
(default 1), ``amount`` (the line's total, integer fen), and optionally
``at`` (ISO time of the purchase; the rules of that moment apply, e.g. the
day's cap, a campaign's window), ``paid_with_points`` and
``paid_with_stored_value`` (summed over the receipt's rows).

**Re-running is a no-op**: each receipt is posted under the idempotency key
``import:<receipt>``, so a purchase already in is answered as a duplicate and
nothing moves (``PurchaseDesk.record``). **A bad row** is reported with its
line number (``row N`` in a Parquet file) and its whole receipt is left out,
so no purchase goes in with a line missing; every other receipt goes in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import redis

from codegen.exc import ItemsealError
from codegen.files import file_errors
from points_bridge.exc import BadInput
from points_bridge.purchase_rules import Line
from points_bridge.purchases import PurchaseDesk, PurchaseRequest
from points_bridge.transfer import read_rows

REQUIRED = ("receipt", "member", "shop", "sku", "amount")
OPTIONAL = ("qty", "at", "paid_with_points", "paid_with_stored_value")


@dataclass
class PurchaseImportReport:
    posted: int = 0
    duplicates: int = 0
    points: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class _Receipt:
    wheres: list[str] = field(default_factory=list)
    member: str = ""
    shop: str = ""
    at: int | None = None
    lines: list[Line] = field(default_factory=list)
    paid_points: int = 0
    paid_stored: int = 0
    bad: bool = False


def _whole(name: str, text: str, default: int | None = None) -> int:
    text = (text or "").strip()
    if not text and default is not None:
        return default
    if not text.lstrip("-").isdigit():
        raise BadInput(name, text, "must be a whole number (amounts in fen)")
    return int(text)


def _when(text: str) -> int | None:
    text = (text or "").strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadInput("at", text, "must be an ISO time with its offset,"
                                   " e.g. 2026-12-01T18:30:00+08:00") from None
    if moment.utcoffset() is None:
        raise BadInput("at", text, "needs its UTC offset, e.g. +08:00")
    return int(moment.timestamp())


def import_purchases(
    client: redis.Redis, tenant: str, path: Path, *,
    progress: Callable[[int, int], None] | None = None,
) -> PurchaseImportReport:
    """Post every receipt of the file once; report bad rows by line. ``progress(done,
    total)`` is called after each receipt (the CLI draws a bar on a terminal)."""
    desk = PurchaseDesk(client, tenant)
    desk.members.settings()  # an unknown tenant: say so before reading the file
    columns, rows = read_rows(path)
    missing = [c for c in REQUIRED if c not in columns]
    unknown = sorted(set(columns) - set(REQUIRED) - set(OPTIONAL))
    if missing or unknown:
        problem = (f"missing columns {', '.join(missing)}" if missing
                   else f"unknown columns {', '.join(unknown)}")
        raise BadInput("file", str(path), f"{problem}; columns are {', '.join(REQUIRED)}"
                                          f" and optionally {', '.join(OPTIONAL)}")
    report = PurchaseImportReport()
    receipts: dict[str, _Receipt] = {}
    with file_errors(path, "read"):
        for where, row in rows:
            key = (row.get("receipt") or "").strip()
            if not key:
                report.errors.append((where, "receipt is empty"))
                continue
            receipt = receipts.setdefault(key, _Receipt())
            receipt.wheres.append(where)
            try:
                member, shop = row["member"].strip(), row["shop"].strip()
                if receipt.lines and (member, shop) != (receipt.member, receipt.shop):
                    raise BadInput("receipt", key, "its rows name different members or shops")
                receipt.member, receipt.shop = member, shop
                receipt.at = _when(row.get("at", "")) or receipt.at
                receipt.lines.append(Line(row["sku"].strip(), _whole("qty", row.get("qty", ""),
                                                                     1),
                                          _whole("amount", row["amount"])))
                receipt.paid_points += _whole("paid_with_points",
                                              row.get("paid_with_points", ""), 0)
                receipt.paid_stored += _whole("paid_with_stored_value",
                                              row.get("paid_with_stored_value", ""), 0)
            except ItemsealError as exc:
                receipt.bad = True
                report.errors.append((where, f"receipt {key}: {exc}"))
    total = len(receipts)
    for done, (key, receipt) in enumerate(receipts.items(), start=1):
        if not receipt.bad:
            try:
                result = desk.record(PurchaseRequest(
                    member=receipt.member, shop=receipt.shop, lines=tuple(receipt.lines),
                    idempotency_key=f"import:{key}", paid_with_points=receipt.paid_points,
                    paid_with_stored_value=receipt.paid_stored), at=receipt.at)
            except ItemsealError as exc:
                where = ", ".join(receipt.wheres)
                report.errors.append((where, f"receipt {key}: {exc}"))
            else:
                if result.duplicate:
                    report.duplicates += 1
                else:
                    report.posted += 1
                    report.points += int(result.entry.fields.get("points", 0))
        if progress is not None:
            progress(done, total)
    return report
