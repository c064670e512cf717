"""The soak benchmark, run short: valid JSON, the store killed and back, no claim lost."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_soak.py"


@pytest.mark.slow
def test_a_short_soak_loses_no_acknowledged_claim():
    args = [sys.executable, str(BENCH), "--minutes", "0.2", "--threads", "6", "--interval", "2",
            "--codes", "100000", "--down", "1.5"]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["lost_claims"] == 0, result["lost_detail"]
    assert result["acknowledged_claims"] > 0 and result["reconciled"]["failed"] == 0
    assert result["killed_at_s"] is not None and result["recovery_seconds"] is not None
    assert result["intervals"] and set(result["by_mix"]) == set(result["mixes"])
    http_errors = {kind for kind in result["errors"] if kind[:1].isdigit()}
    assert http_errors <= {"503 store_unavailable"}, result["errors"]
    assert "503 store_unavailable" in http_errors  # the kill was seen by clients
