"""The printer file of a minted batch: Arrow schema and metadata keys (see batch.md).

Writers take the schema from here, never from the data; readers find the
batch facts in the Parquet key-value metadata under ``itemseal.*`` keys and,
with the file's sha256, in the JSON manifest beside it.
"""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow as pa

FORMAT_VERSION = "1"
METADATA_PREFIX = "itemseal."
# Batch facts carried in the file's key-value metadata and in the manifest.
FACTS = (
    "format_version",
    "tenant",
    "batch_id",
    "sku",
    "key_id",
    "profile",
    "count",
    "first_serial",
    "last_serial",
    "created_at",
    "url_template",
)

_CONSTANT = pa.dictionary(pa.int32(), pa.string())
BATCH_SCHEMA = pa.schema(
    [
        pa.field("seq", pa.uint64(), nullable=False),
        pa.field("code", pa.string(), nullable=False),
        pa.field("url", pa.string(), nullable=False),
        pa.field("batch_id", _CONSTANT, nullable=False),
        pa.field("sku", _CONSTANT, nullable=False),
    ]
)
COLUMNS = tuple(BATCH_SCHEMA.names)


def batch_schema(facts: Mapping[str, str]) -> pa.Schema:
    """The schema with the batch facts as key-value metadata."""
    missing = set(FACTS) - set(facts)
    if missing:
        raise ValueError(f"batch facts missing: {', '.join(sorted(missing))}")
    return BATCH_SCHEMA.with_metadata({METADATA_PREFIX + k: str(facts[k]) for k in FACTS})


def read_facts(metadata: Mapping[bytes, bytes] | None) -> dict[str, str]:
    """The batch facts from a file's key-value metadata (``pq.read_metadata(f).metadata``)."""
    prefix = METADATA_PREFIX.encode()
    return {
        k[len(prefix) :].decode(): v.decode()
        for k, v in (metadata or {}).items()
        if k.startswith(prefix)
    }
