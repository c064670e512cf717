"""Benchmark minting end to end against a naive per-code baseline, with peak memory.

Run under the shared lock, the box is small and others benchmark on it too:

    flock /tmp/itemseal-bench.lock .venv/bin/python benchmarks/bench_mint.py --count 10000000

It starts an embedded redis-server in a temporary home, creates a tenant, its
key and a product with a GTIN (so every row carries a GS1 Digital Link, the
longest URL), and mints ``--count`` codes through ``codegen.mint.Minter`` into
zstd Parquet: reserve, render in ``--workers`` processes, write, sha256, fsync,
register, manifest; the clock runs around all of it. A sampler thread records
the peak memory of the mint's process tree meanwhile.

The baseline is what one writes first: per code one ``hmac.new``, the scalar
permutation, f-string digits and a Python Damm loop, ``csv.writer`` rows. It
makes the same codes (checked) and runs on ``min(count, 500k)`` codes in the
same process after the mint. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import csv
import hmac
import json
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy
import psutil
import pyarrow

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.fixtures import machine  # noqa: E402
from codegen.codes import (  # noqa: E402
    NUMERIC_24,
    compose_code,
    group_digits,
    permute_serial,
)
from codegen.keys import KeyStore, MasterKey  # noqa: E402
from codegen.mint import Minter  # noqa: E402
from codegen.products import ProductStore, normalize_gtin  # noqa: E402
from codegen.signing import _TAG_LABEL, TAGS_PER_DIGEST, CodeSigner  # noqa: E402
from codegen.store.embedded import EmbeddedRedis  # noqa: E402
from codegen.tenants import TenantStore  # noqa: E402
from codegen.workers import CHUNK_ROWS  # noqa: E402
from codegen.writer import ROW_GROUP_ROWS, ZSTD_LEVEL  # noqa: E402

TENANT, SKU, GTIN = "BENCH", "SKU-CREAM-50ML", "4006381333931"
MB = 1 << 20


class MemorySampler(threading.Thread):
    """Peak RSS and PSS summed over this process and its children, every ``interval`` s.

    Summed RSS counts the shared-memory slots once per process that touched
    them, so it overstates; PSS splits shared pages between their users.
    """

    def __init__(self, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.peak_rss = self.peak_pss = 0
        self._done = threading.Event()

    def run(self) -> None:
        me = psutil.Process()
        while not self._done.wait(self.interval):
            rss = pss = 0
            for proc in [me, *me.children(recursive=True)]:
                try:
                    info = proc.memory_full_info()
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                rss += info.rss
                pss += getattr(info, "pss", info.rss)
            self.peak_rss = max(self.peak_rss, rss)
            self.peak_pss = max(self.peak_pss, pss)

    def stop(self) -> None:
        self._done.set()
        self.join()


def busy_seconds() -> tuple[float, float]:
    """CPU seconds used so far: by the whole machine, and by this process and its children."""
    machine_times = psutil.cpu_times()
    busy = sum(machine_times) - machine_times.idle - getattr(machine_times, "iowait", 0.0)
    mine = psutil.Process().cpu_times()
    return busy, mine.user + mine.system + mine.children_user + mine.children_system


def naive_baseline(signer: CodeSigner, first: int, count: int, url: str, out: Path) -> float:
    """Mint ``count`` codes the obvious way into CSV; return codes/s."""
    tag_key = hmac.digest(signer.secret, _TAG_LABEL, "sha256")
    prefix = bytes([signer.profile.wire_id, signer.key_id])
    modulus = signer.profile.tag_modulus
    started = time.perf_counter()
    with open(out, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["seq", "code", "url", "batch_id", "sku"])
        for seq, serial in enumerate(range(first, first + count)):
            group, slot = divmod(serial, TAGS_PER_DIGEST)
            digest = hmac.new(tag_key, prefix + group.to_bytes(8, "big"), "sha256").digest()
            tag = int.from_bytes(digest[8 * slot : 8 * slot + 8], "big") % modulus
            permuted = permute_serial(serial, signer.round_keys, signer.profile)
            digits = compose_code(permuted, signer.key_id, tag, signer.profile)
            writer.writerow([seq, group_digits(digits), url + digits, "B000000", SKU])
    seconds = time.perf_counter() - started
    with open(out, newline="") as fh:  # the baseline makes the real codes
        rows = list(zip(range(10), csv.DictReader(fh), strict=False))
    assert all(r["code"] == group_digits(signer.code(first + i)) for i, r in rows)
    return count / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--baseline-count", type=int, default=500_000)
    parser.add_argument("--out-dir", type=Path, help="where the files go (default: a temp dir)")
    parser.add_argument("--row-group-rows", type=int, default=ROW_GROUP_ROWS, help="for tuning")
    parser.add_argument("--chunk-rows", type=int, default=CHUNK_ROWS, help="for tuning")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="isb-", dir="/tmp"))
    out_dir = args.out_dir or home
    server = EmbeddedRedis(home)
    try:
        client = server.client()
        keys = KeyStore(client, MasterKey(os.urandom(32)))
        TenantStore(client).create(TENANT, "Bench", "https://bench.example/v/{code}")
        keys.rotate(TENANT)
        ProductStore(client).add(TENANT, SKU, name="Cream 50 ml", points=10, gtin=GTIN)
        minter = Minter(client, keys, chunk_rows=args.chunk_rows,
                        row_group_rows=args.row_group_rows)

        load_before = os.getloadavg()
        sampler = MemorySampler()
        sampler.start()
        busy_before, mine_before = busy_seconds()
        started = time.perf_counter()
        result = minter.mint(TENANT, SKU, args.count, out_dir / "bench.parquet",
                             workers=args.workers)
        seconds = time.perf_counter() - started
        busy_after, mine_after = busy_seconds()
        sampler.stop()
        load_after = os.getloadavg()
        # cores kept busy by other processes while we minted (other engineers' tests)
        others = max(0.0, (busy_after - busy_before) - (mine_after - mine_before)) / seconds
        maxrss_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        maxrss_worker = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        file_bytes = result.size
        (out_dir / "bench.parquet").unlink()

        baseline_count = min(args.count, args.baseline_count)
        signer = keys.signer(TENANT, 0, NUMERIC_24)
        url = f"https://bench.example/01/{normalize_gtin(GTIN)}/21/"
        baseline = naive_baseline(signer, 10**9 - baseline_count, baseline_count, url,
                                  out_dir / "baseline.csv")
        (out_dir / "baseline.csv").unlink()
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)

    rate = args.count / seconds
    report = {
        "codes_per_s": round(rate),
        "baseline_codes_per_s": round(baseline),
        "ratio": round(rate / baseline, 1),
        "peak_rss_mb": round(sampler.peak_rss / MB),
        "peak_pss_mb": round(sampler.peak_pss / MB),
        "maxrss_parent_mb": round(maxrss_self),
        "maxrss_worker_mb": round(maxrss_worker),
        "file_bytes": file_bytes,
        "bytes_per_code": round(file_bytes / args.count, 2),
        "count": args.count,
        "baseline_count": baseline_count,
        "workers": args.workers,
        "seconds": round(seconds, 2),
        "zstd_level": ZSTD_LEVEL,
        "row_group_rows": args.row_group_rows,
        "chunk_rows": args.chunk_rows,
        "mint_cpu_s": round(mine_after - mine_before, 2),
        "other_busy_cores": round(others, 2),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in load_after],
        "machine": machine(numpy=numpy.__version__, pyarrow=pyarrow.__version__),
    }
    print(f"minted {args.count:,} codes in {seconds:.2f} s: {rate / 1e6:.2f} M codes/s,"
          f" baseline {baseline / 1e6:.3f} M codes/s ({report['ratio']}x)", file=sys.stderr)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
