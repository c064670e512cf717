"""Printer files: Parquet (zstd, row groups) or CSV, written whole or not at all.

A file appears under its final name only when complete: it is written to a
hidden temporary file in the same directory (so the rename cannot cross file
systems), fsynced, and renamed over the final name at the end. An interrupted
mint leaves no partial file where a printer would pick it up; the temporary
is removed on the way out, or by the next mint into the same directory if the
process was killed (``remove_stale_temporaries``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from codegen.exc import BadOutput, OutputExists
from codegen.render import string_array
from schemas.batch import batch_schema

FORMATS = ("parquet", "csv")
# zstd level 1, chosen by measurement (10 M rows of codes and GS1 URLs, one
# core): ~6 M rows/s at ~24 bytes/code. Level 3 halves the speed for a *larger*
# file (random digits leave the match finder nothing to find), negative levels
# store the digits raw (~52 bytes/code), lz4 and snappy likewise (35-40 bytes/code).
ZSTD_LEVEL = 1
# 256 Ki rows (~6 MB compressed) per row group, chosen by measurement
# (benchmarks/bench_mint.py, 10 M codes, 2 workers): 4.17 / 4.05 / 4.06 M codes/s
# at 256 Ki / 512 Ki / 1 Mi rows, but the rendered text of two row groups sits
# in shared memory (one being written, the next being rendered), so peak RSS
# summed over the processes is 340 / 444 / 644 MB. Readers are well served:
# DuckDB writes 120 Ki-row groups.
ROW_GROUP_ROWS = 1 << 18
# `url` shares its whole template prefix row to row: DELTA_BYTE_ARRAY strips it
# before zstd sees it (6.2 vs 4.8 M rows/s written); `code` is fixed width, so
# DELTA_LENGTH_BYTE_ARRAY drops the 4-byte length PLAIN puts before each value
# (+10%, -1 byte/code); `seq` counts up by one.
_ENCODINGS = {
    "seq": "DELTA_BINARY_PACKED",
    "code": "DELTA_LENGTH_BYTE_ARRAY",
    "url": "DELTA_BYTE_ARRAY",
}
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.tmp$")
_HASH_BLOCK = 1 << 20


def temporary_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def manifest_path(path: Path) -> Path:
    return path.with_name(path.name + ".manifest.json")


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Delete temporaries of ``path`` left by killed processes that no longer run."""
    removed = []
    for candidate in path.parent.glob(f".{path.name}.*.tmp"):
        match = _TEMP.match(candidate.name)
        if match and match["name"] == path.name and not _alive(int(match["pid"])):
            candidate.unlink(missing_ok=True)
            removed.append(candidate)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check_output(path: Path, *, force: bool) -> None:
    """Refuse before any work is done: an existing file, or a missing directory."""
    if not path.parent.is_dir():
        raise BadOutput(f"directory {str(path.parent)!r} does not exist")
    if path.exists() and not force:
        raise OutputExists(f"{str(path)!r} exists: use --force to replace it")


class AtomicFile:
    """A file that appears under ``path`` only on ``commit``; deleted on any other exit.

    Write to ``.temp``; ``sync()`` makes it durable, ``commit()`` renames it
    over ``path`` and makes the rename durable too.
    """

    def __init__(self, path: Path, *, force: bool) -> None:
        self.path = path
        self.temp = temporary_path(path)
        self.force = force

    def __enter__(self) -> AtomicFile:
        return self

    def sync(self) -> None:
        with open(self.temp, "rb+") as fh:
            os.fsync(fh.fileno())

    def commit(self) -> None:
        publish(self.temp, self.path, force=self.force)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def __exit__(self, *exc_info: object) -> None:
        self.temp.unlink(missing_ok=True)


def publish(temp: Path, path: Path, *, force: bool) -> None:
    """Rename ``temp`` to ``path``; without ``force`` never replace a file that appeared."""
    if force:
        os.replace(temp, path)
        return
    try:
        os.link(temp, path)  # atomic, and fails if the name exists
    except FileExistsError:
        raise OutputExists(f"{str(path)!r} appeared while minting: use --force") from None
    except OSError:  # a file system without hard links
        if path.exists():
            raise OutputExists(f"{str(path)!r} exists: use --force to replace it") from None
        os.replace(temp, path)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(path: Path, manifest: Mapping[str, object]) -> Path:
    """Write ``<file>.manifest.json`` beside the printer file, atomically too."""
    with AtomicFile(manifest_path(path), force=True) as out:
        out.temp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        out.sync()
        out.commit()
    return out.path


class BatchFile:
    """Write rendered chunks as one batch file; one ``write_group`` per row group."""

    def __init__(self, path: Path, fmt: str, facts: Mapping[str, str]) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}")
        self.schema = batch_schema(facts)
        self._batch_id = pa.array([facts["batch_id"]], pa.string())
        self._sku = pa.array([facts["sku"]], pa.string())
        self._zeros = np.zeros(0, dtype=np.int32)
        if fmt == "parquet":
            self._writer = pq.ParquetWriter(
                str(path),
                self.schema,
                compression="zstd",
                compression_level=ZSTD_LEVEL,
                use_dictionary=["batch_id", "sku"],
                column_encoding=_ENCODINGS,
                write_statistics=["seq", "batch_id", "sku"],
            )
        else:
            self._writer = pacsv.CSVWriter(str(path), self.schema.remove_metadata())

    def record_batch(self, seq: int, code: np.ndarray, url: np.ndarray) -> pa.RecordBatch:
        """Arrow view of one chunk: the text matrices are wrapped, not copied."""
        rows = code.shape[0]
        if self._zeros.shape[0] < rows:
            self._zeros = np.zeros(rows, dtype=np.int32)
        constant = pa.array(self._zeros[:rows])
        columns = [
            pa.array(np.arange(seq, seq + rows, dtype=np.uint64)),
            string_array(code),
            string_array(url),
            pa.DictionaryArray.from_arrays(constant, self._batch_id),
            pa.DictionaryArray.from_arrays(constant, self._sku),
        ]
        return pa.RecordBatch.from_arrays(columns, schema=self.schema)

    def write_group(self, batches: list[pa.RecordBatch]) -> None:
        table = pa.Table.from_batches(batches, schema=self.schema)
        if isinstance(self._writer, pq.ParquetWriter):
            self._writer.write_table(table, row_group_size=table.num_rows)
        else:
            self._writer.write_table(table.replace_schema_metadata(None))

    def close(self) -> None:
        self._writer.close()

    def __enter__(self) -> BatchFile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
