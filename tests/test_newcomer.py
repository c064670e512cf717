"""A newcomer's first hour (issue 21): the cases that met a traceback, a wrong word or a raw
epoch, each as the user typed it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from configparser import ConfigParser
from pathlib import Path

import pytest
from click.testing import CliRunner
from gunicorn.config import Config as GunicornConfig
from hypothesis import given
from hypothesis import strategies as st
from test_cli_walk import assert_one_line_error

from cli import main
from codegen.codes import NUMERIC_24
from codegen.keys import KeyStore, load_master_key
from codegen.store.embedded import connect
from codegen.words import plural, rate
from points_bridge.outreach.sms_campaigns import progress
from verify_api.gunicorn_conf import ServeLogger

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def cli(itemseal_env, tmp_path, monkeypatch):
    """Run ``itemseal`` in-process with a tenant ACME, a product and an active batch."""
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def run(*args: str, env: dict[str, str] | None = None, input: str | None = None):
        return runner.invoke(main, list(args), env=env or itemseal_env, input=input)

    for args in (
        ["tenant", "create", "ACME", "--name", "Acme"],
        ["product", "add", "-t", "ACME", "--sku", "LIP-001", "--name", "L", "--points", "5"],
        ["mint", "-t", "ACME", "--sku", "LIP-001", "-n", "20", "-o", "m.parquet",
         "--workers", "0"],
        ["batch", "activate", "-t", "ACME", "B000001"],
    ):
        assert run(*args).exit_code == 0
    return run


def _code(env: dict[str, str], serial: int) -> str:
    client = connect(Path(env["ITEMSEAL_HOME"]), env["ITEMSEAL_REDIS_URL"])
    keys = KeyStore(client, load_master_key(Path(env["ITEMSEAL_HOME"]), env))
    return keys.signer("ACME", 0, NUMERIC_24).code(serial)


def test_a_file_that_is_not_parquet_is_one_line(cli, tmp_path):
    (tmp_path / "c.txt").write_text("hello\n")
    line = assert_one_line_error(cli("report", "tiers", "-t", "ACME", "--members", "c.txt"), "")
    assert "not a Parquet file" in line


def test_binary_bytes_to_import_are_one_line(cli, tmp_path):
    (tmp_path / "bin.parquet").write_bytes(bytes(range(128, 256)) * 4)
    line = assert_one_line_error(cli("import", "members", "-t", "ACME", "bin.parquet"), "")
    assert "neither Parquet nor UTF-8 or GBK text" in line


@pytest.mark.parametrize("url", ["bogus://x", "redis://localhost:12x/0"])
def test_a_bogus_store_url_is_one_line(cli, itemseal_env, url):
    result = cli("tenant", "list", env={**itemseal_env, "ITEMSEAL_REDIS_URL": url})
    assert "ITEMSEAL_REDIS_URL is not a Redis URL" in assert_one_line_error(result, url)


@pytest.mark.parametrize("bind", ["127.0.0.1:80x", "[::1"])
def test_a_bad_bind_is_one_line(itemseal_env, bind):
    result = CliRunner().invoke(main, ["serve", "--bind", bind], env=itemseal_env)
    assert "--bind" in assert_one_line_error(result, bind)


def test_check_says_revoked_for_a_voided_code_and_exits_1_unless_all_valid(cli, itemseal_env):
    first, second = (_code(itemseal_env, NUMERIC_24.serial_base + i) for i in (3, 4))
    assert cli("check", "-t", "ACME", first, second).exit_code == 0
    assert cli("batch", "void", "-t", "ACME", "B000001", first).exit_code == 0
    again = cli("batch", "void", "-t", "ACME", "B000001", first)
    assert again.exit_code == 0 and "already_voided" in again.stdout  # a re-run succeeds
    checked = cli("check", "-t", "ACME", first, second)
    assert checked.exit_code == 1
    assert [line.split("\t")[1] for line in checked.stdout.splitlines()] == ["revoked", "valid"]
    assert cli("batch", "void", "-t", "ACME", "B000001", "1234").exit_code == 1


def test_list_commands_have_headers_json_and_iso_times(cli):
    text = cli("tenant", "list").stdout.splitlines()
    assert text[0] == "tenant\tname\tcreated_at" and text[1].startswith("ACME\tAcme\t20")
    (tenant,) = json.loads(cli("tenant", "list", "--json").stdout)["tenants"]
    assert tenant["created_at"].endswith("+00:00")
    shown = dict(line.split("\t") for line in cli("tenant", "show", "ACME").stdout.splitlines())
    assert shown["created_at"].endswith("+00:00")  # not 1796166583.228
    assert cli("optout", "add", "-t", "ACME", "13812345678").exit_code == 0
    header, row = cli("optout", "list", "-t", "ACME").stdout.splitlines()
    assert header == "phone\topted_out_at" and row.endswith("+00:00")
    (optout,) = json.loads(cli("optout", "list", "-t", "ACME", "--json").stdout)["optouts"]
    assert optout["phone"] == "+8613812345678"
    batches = json.loads(cli("batch", "list", "-t", "ACME", "--json").stdout)["batches"]
    assert batches[0]["batch_id"] == "B000001" and batches[0]["state"] == "active"


def test_counts_read_right():
    assert [plural(n, "member") for n in (0, 1, 2)] == ["0 members", "1 member", "2 members"]
    assert plural(1, "member row") == "1 member row"
    assert rate(8_500) == "8,500 codes/s" and rate(4_170_000) == "4.17 M codes/s"


@given(st.dictionaries(st.sampled_from(["queued", "sent", "failed", "skipped"]),
                       st.integers(0, 5)))
def test_a_campaign_is_done_only_when_nothing_is_left_queued(counters):
    status = progress("queued", counters)
    assert (status == "done") == (counters.get("queued", 0) == 0)
    assert progress("queuing", counters) == "queuing"


def test_serve_logs_the_address_it_listens_on_with_a_socket_per_worker(caplog):
    config = GunicornConfig()
    config.set("bind", ["127.0.0.1:8080"])
    config.set("reuse_port", True)
    logger = ServeLogger(config)
    logger.error_log.propagate = True
    logger.info("Listening at: %s (%s)", "", 4242)
    assert "Listening at: http://127.0.0.1:8080 (a socket per worker) (4242)" in caplog.text


def test_setup_declares_the_pythons_test_pythons_runs_and_every_lua_folder():
    setup = ConfigParser()
    setup.read(ROOT / "setup.cfg")
    classifiers = setup["metadata"]["classifiers"]
    declared = {v for v in ("3.11", "3.12", "3.13") if f"Python :: {v}" in classifiers}
    script = (ROOT / "scripts" / "test-pythons.sh").read_text()
    assert declared == {"3.11", "3.12", "3.13"} and "3.11 3.12 3.13" in script
    data = setup["options.package_data"]
    for folder in sorted(ROOT.glob("*/lua")):
        assert data.get(f"{folder.parent.name}.lua") == "*.lua", folder


@pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="not a Debian system")
def test_ensure_debs_is_silent_when_installed_and_loud_when_it_cannot_install():
    script = str(ROOT / "scripts" / "ensure-debs.sh")
    quiet = subprocess.run(["sh", script, "dpkg"], capture_output=True, text=True, timeout=60)
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")
    env = {**os.environ, "ITEMSEAL_APT_GET": "itemseal-no-apt-get"}  # as if apt were not there
    missing = subprocess.run(["sh", script, "itemseal-no-such-package"], env=env,
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 0 and "WILL BE SKIPPED" in missing.stderr
