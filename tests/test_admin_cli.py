"""`itemseal token` and `itemseal report` as a user runs them."""

from __future__ import annotations

import csv
import io

import pyarrow.parquet as pq
from helpers.cli_runner import run

from codegen.store.audit import AuditLog


def test_token_create_list_revoke(itemseal_env, redis_client):
    env = itemseal_env
    run(env, "tenant", "create", "ACME", "--name", "Acme")
    made = run(env, "token", "create", "--tenant", "ACME", "--role", "support", "--label", "Li")
    token = made.stdout.strip()
    assert token.startswith("ist.ACME.") and "shown once" in made.stderr
    listed = run(env, "token", "list", "--tenant", "ACME").stdout.splitlines()
    assert listed[0] == "token_id\trole\tlabel\tcreated_at\trevoked_at"
    token_id, role, label, _, revoked = listed[1].split("\t")
    assert (role, label, revoked) == ("support", "Li", "-")
    assert token not in run(env, "token", "list", "--tenant", "ACME").stdout
    run(env, "token", "revoke", "--tenant", "ACME", token_id)
    assert run(env, "token", "list", "--tenant", "ACME").stdout.split("\t")[-1].strip() != "-"
    bad = run(env, "token", "create", "--tenant", "NOPE", "--role", "manager", ok=False)
    assert bad.returncode != 0 and "unknown tenant" in bad.stderr
    actions = [e.action for e in AuditLog(redis_client, "ACME").entries()]
    assert actions == ["token.revoke", "token.create"]


def test_report_formats(itemseal_env, tmp_path):
    env = itemseal_env
    run(env, "tenant", "create", "ACME", "--name", "Acme")
    span = ("--from", "2026-01-01", "--to", "2026-01-03")
    table = run(env, "report", "checks", "--tenant", "ACME", *span).stdout.splitlines()
    assert table[0].split()[:3] == ["day", "checks", "genuine"] and len(table) == 4
    rows = list(csv.reader(io.StringIO(
        run(env, "report", "checks", "--tenant", "ACME", *span, "--format", "csv").stdout)))
    assert rows[1][:2] == ["2026-01-01", "0"]
    for name in ("checks", "counterfeits", "suspicious", "tiers", "points"):
        out = tmp_path / f"{name}.parquet"
        run(env, "report", name, "--tenant", "ACME", "--format", "parquet", "--out", str(out))
        assert pq.read_metadata(out).metadata[b"itemseal.report"] == name.encode()
    read = pq.read_table(tmp_path / "checks.parquet").to_pylist()
    assert len(read) == 14 and {r["checks"] for r in read} == {0}  # the last 14 days
    no_out = run(env, "report", "tiers", "--tenant", "ACME", "--format", "parquet", ok=False)
    assert "--out" in no_out.stderr
