"""Member and ledger exports (``itemseal export``) and the ledger archive (``points
archive``): Arrow schemas, never inferred.

Both formats (Parquet, CSV) are written from these schemas. ``attributes`` and
``details`` are JSON objects in one string column, so a CSV carries them too.
The key-value metadata names the tenant and the kind of export.
"""

from __future__ import annotations

import pyarrow as pa

FORMAT_VERSION = "1"
_TS = pa.timestamp("ms", tz="UTC")  # Parquet keeps ms, not s

MEMBERS_SCHEMA = pa.schema(
    [
        pa.field("card", pa.string(), nullable=False),
        pa.field("phone", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("balance", pa.int64(), nullable=False),
        pa.field("earned", pa.int64(), nullable=False),
        pa.field("tier", pa.string(), nullable=False),
        pa.field("pinned_tier", pa.string()),
        pa.field("birthday", pa.string()),
        pa.field("created_at", _TS, nullable=False),
        pa.field("source", pa.string()),
        pa.field("attributes", pa.string(), nullable=False),
    ]
)

LEDGER_SCHEMA = pa.schema(
    [
        pa.field("card", pa.string(), nullable=False),
        pa.field("entry_id", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("delta", pa.int64(), nullable=False),
        pa.field("balance", pa.int64(), nullable=False),
        pa.field("earned", pa.int64(), nullable=False),
        pa.field("tier", pa.string()),
        pa.field("at", _TS, nullable=False),
        pa.field("idempotency_key", pa.string()),
        pa.field("serial", pa.int64()),
        pa.field("sku", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("details", pa.string(), nullable=False),
    ]
)

SCHEMAS = {"members": MEMBERS_SCHEMA, "ledger": LEDGER_SCHEMA}

LEDGER_ARCHIVE_SCHEMA = pa.schema(
    [
        pa.field("card", pa.string(), nullable=False),
        pa.field("entry_id", pa.string(), nullable=False),  # the stream id: "<ms>-<seq>"
        pa.field("kind", pa.string(), nullable=False),
        pa.field("delta", pa.int64(), nullable=False),
        pa.field("balance", pa.int64(), nullable=False),
        pa.field("earned", pa.int64(), nullable=False),
        pa.field("tier", pa.string(), nullable=False),
        pa.field("at", pa.int64(), nullable=False),  # unix seconds, as the stream holds it
        pa.field("idem", pa.string(), nullable=False),
        pa.field("fields", pa.string(), nullable=False),  # JSON object: the kind's own fields
    ]
)
"""The files of ``itemseal points archive`` (``points_bridge/ledger_archive.py``): one
ledger entry per row, as the member's stream held it, so it is read back as the same
``Entry``. Unlike the exports, these are the store's own data and change only with it."""


def with_metadata(schema: pa.Schema, tenant: str, kind: str) -> pa.Schema:
    return schema.with_metadata(
        {"itemseal.format_version": FORMAT_VERSION, "itemseal.tenant": tenant,
         "itemseal.export": kind}
    )
