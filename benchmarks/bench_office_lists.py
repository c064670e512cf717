"""Benchmark the office's sorted lists on a full store: what one page view of each costs.

Run under the shared lock (the box is small and others benchmark on it too):

    flock /tmp/itemseal-bench.lock .venv/bin/python benchmarks/bench_office_lists.py

It starts an embedded redis-server in a temporary home and fills one tenant's
audit log and feedback inbox to their caps (``--entries`` each, 100,000 by
default). Then, ``--repeat`` times, it does what ``/office/T/audit?sort=actor``
and ``/office/T/feedback?sort=phone`` do before rendering: read the newest
10,000 (``AUDIT_SCAN``, ``FEEDBACK_SCAN``), sort them all, cut out one page.
The last line is one JSON object: the median and the worst milliseconds of each.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.fixtures import machine  # noqa: E402
from codegen.store.audit import AuditLog  # noqa: E402
from codegen.store.embedded import EmbeddedRedis  # noqa: E402
from codegen.store.keyspace import TenantKeys  # noqa: E402
from codegen.tenants import TenantStore  # noqa: E402
from verify_api.admin.listing import list_page  # noqa: E402
from verify_api.channels.feedback import FeedbackInbox, feedback_entry  # noqa: E402
from verify_api.resources.office_care import FEEDBACK_SCAN, FEEDBACK_SORTING  # noqa: E402
from verify_api.resources.office_manage import (  # noqa: E402
    AUDIT_PAGE,
    AUDIT_SCAN,
    AUDIT_SORTING,
)

TENANT = "BENCH"


def fill(client, entries: int) -> None:
    audit = TenantKeys(TENANT).audit
    inbox = FeedbackInbox(client, TENANT)
    for start in range(0, entries, 5_000):
        pipe = client.pipeline(transaction=False)
        for i in range(start, min(start + 5_000, entries)):
            pipe.xadd(audit, {"actor": f"staff:user{i % 97}", "action": "member.adjust",
                              "target": f"member/{i:012d}", "before": '{"balance": 1}',
                              "after": '{"balance": 2, "entry": {"delta": 1}}',
                              "at": repr(1_767_225_600.0 + i)})
            pipe.xadd(inbox.stream, feedback_entry(f"1390{i % 9973:07d}", "where to buy?",
                                                   "sms", 1_767_225_600 + i))
        pipe.execute()


def timed(run, repeat: int) -> dict[str, float]:
    spent = []
    for _ in range(repeat):
        began = time.perf_counter()
        run()
        spent.append((time.perf_counter() - began) * 1000)
    return {"median_ms": round(statistics.median(spent), 1), "max_ms": round(max(spent), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=15)
    opts = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="iso-", dir="/tmp"))
    store = EmbeddedRedis(home)
    try:
        store.start()
        client = store.client()
        TenantStore(client).create(TENANT, "Bench brand")
        fill(client, opts.entries)
        params = {"sort": "actor", "dir": "asc", "page": "37"}

        def audit_page() -> None:
            entries = AuditLog(client, TENANT).entries(AUDIT_SCAN)
            assert len(list_page(entries, AUDIT_SORTING, params, size=AUDIT_PAGE).rows)

        def feedback_page() -> None:
            found = FeedbackInbox(client, TENANT).list(FEEDBACK_SCAN)
            assert len(list_page(found, FEEDBACK_SORTING, {**params, "sort": "phone"}).rows)

        print(json.dumps({
            "benchmark": "office_lists", "stream_entries": opts.entries,
            "sorted_among": AUDIT_SCAN, "repeat": opts.repeat,
            "audit_sorted_page": timed(audit_page, opts.repeat),
            "feedback_sorted_page": timed(feedback_page, opts.repeat),
            "machine": machine(),
        }))
    finally:
        store.stop()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    os.environ.pop("ITEMSEAL_REDIS_URL", None)
    main()
