"""The points commands as a manager uses them, against a real redis-server."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from cli import main
from points_bridge.credit import BlockingCrediter
from tests.helpers.master import TEST_MASTER

PHONE = "13812345678"


@pytest.fixture
def run(itemseal_env):
    runner = CliRunner()

    def invoke(*args: str, ok: bool = True):
        result = runner.invoke(main, list(args), env=itemseal_env, catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output
        return result

    invoke("tenant", "create", "ACME", "--name", "Acme")
    invoke("product", "add", "--tenant", "ACME", "--sku", "LIP-001", "--name", "Lip",
           "--points", "100")
    return invoke


def test_member_lifecycle(run, redis_client):
    assert run("member", "join", "--tenant", "ACME", "--phone", PHONE).output.startswith("created")
    who = ("--tenant", "ACME", "--phone", PHONE)
    added = run("member", "adjust", *who, "--points", "200", "--reason", "welcome", "--key", "w1")
    assert added.output == "adjust +200: balance 200\n"
    assert "repeat" in run("member", "adjust", *who, "--points", "200", "--reason", "welcome",
                           "--key", "w1").output
    run("member", "freeze", *who, "--reason", "lost card")
    refused = run("member", "redeem", *who, "--points", "10", ok=False)
    assert refused.exit_code == 1 and "is frozen: cannot redeem" in refused.output
    run("member", "unfreeze", *who)
    over = run("member", "redeem", *who, "--points", "201", ok=False)
    assert "has 200 points: cannot take 201" in over.output
    assert "balance 150" in run("member", "redeem", *who, "--points", "50").output
    assert "tier gold" in run("member", "pin-tier", *who, "gold").output
    run("member", "rebind", *who, "--new-phone", "13912345678")
    shown = json.loads(run("member", "show", "--tenant", "ACME", "--phone", "139 1234 5678",
                           "--json").output)
    assert (shown["balance"], shown["tier"], shown["phone"]) == (150, "gold", "+8613912345678")
    assert [e["kind"] for e in shown["history"]][-2:] == ["pin", "rebind"]
    text = run("member", "show", "--tenant", "ACME", "--card", shown["card"]).output
    assert "status\tactive" in text and "next tier\t5000 to diamond" in text
    run("member", "cancel", "--tenant", "ACME", "--card", shown["card"])
    restored = run("member", "restore", "--tenant", "ACME", "--card", shown["card"]).output
    assert "balance of 150 points kept" in restored
    missing = run("member", "show", "--tenant", "ACME", "--phone", "13700000000", ok=False)
    assert "has no member '+8613700000000'" in missing.output


def test_settings_campaigns_and_points(run, redis_client):
    run("tenant", "set", "ACME", "--region", "cn")
    assert run("tenant", "set", "ACME", "--region", "XX", ok=False).exit_code == 2
    out = run("points", "config", "--tenant", "ACME", "--tiers", "silver:0,gold:150",
              "--daily-cap", "1000", "--attribute", "skin_type:str").output
    assert "points_tiers\tsilver:0,gold:150" in out and "region\tCN" in out
    assert run("points", "config", "--tenant", "ACME", "--tiers", "gold:5", ok=False).exit_code
    run("product", "set-points", "--tenant", "ACME", "--sku", "LIP-001", "--points", "80")
    run("campaign", "add", "--tenant", "ACME", "double", "--start", "2020-01-01",
        "--end", "2100-01-01", "--multiplier", "2", "--budget", "100")
    crediter = BlockingCrediter(redis_client, master=TEST_MASTER)
    result = crediter.credit_claim("ACME", PHONE, 1, "LIP-001", "sms")
    assert (result.points, result.tier) == (160, "gold")
    assert "\tx2\t+0\t80/100\t" in run("campaign", "list", "--tenant", "ACME").output
    run("campaign", "end", "--tenant", "ACME", "double")
    credit = crediter.credit_claim("ACME", PHONE, 2, "LIP-001", "sms")
    assert credit.points == 80
    history = run("member", "show", "--tenant", "ACME", "--phone", PHONE).output
    assert 'spend={"double": 80}' in history and "spend={}" not in history  # no empty fields
    bad = run("campaign", "add", "--tenant", "ACME", "x", "--start", "2020-01-01", "--end",
              "2021-01-01", "--multiplier", "1.00001", ok=False)
    assert "basis points" in bad.output


def test_reconcile_export_import(run, redis_client, tmp_path):
    assert "claims 0" in run("points", "reconcile", "--tenant", "ACME", "--min-age", "0").output
    run("member", "join", "--tenant", "ACME", "--phone", PHONE)
    out = tmp_path / "members.csv"
    assert "1 member row written" in run("export", "members", "--tenant", "ACME", "--format", "csv",
                                   "--out", str(out)).output
    run("export", "ledger", "--tenant", "ACME", "--out", str(tmp_path / "l.parquet"))
    bad = tmp_path / "in.csv"
    bad.write_text("phone,points\n13912345678,10\nnope,1\n")
    result = run("import", "members", "--tenant", "ACME", str(bad), ok=False)
    assert result.exit_code == 1
    assert "line 3: " in result.output and "created 1, updated 0, rejected 1" in result.output


def test_bridge_run_once(run, receiver):
    crm, url = receiver
    run("member", "join", "--tenant", "ACME", "--phone", PHONE)
    secret = run("bridge", "secret", "--tenant", "ACME").output.strip()
    assert len(secret) == 48
    crm.script = [503]
    done = run("bridge", "run", "--tenant", "ACME", "--webhook", url, "--once")
    assert done.stdout.strip() == "delivered 1, retried 1, dead-lettered 0"
    assert [json.loads(b)["type"] for _, b in crm.accepted] == ["member.created"]
    assert run("bridge", "dead", "--tenant", "ACME").output == "entry_id\tidempotency_key\treason\n"
