"""The `itemseal` command as a user runs it, on a real redis-server.

In this process through click's ``CliRunner`` (``helpers.cli_runner.run``); the
help of the installed script is run as a real process, a smoke test of the entry point.
"""

from __future__ import annotations

import gc
import importlib
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

from helpers.cli_runner import run, run_process

from codegen.codes import NUMERIC_20, NUMERIC_24, group_digits
from codegen.keys import KeyStore, load_master_key
from codegen.store.embedded import connect


def test_main_help_lists_the_groups(itemseal_env):
    out = run_process(itemseal_env, "--help").stdout
    for name in ("tenant", "key", "check", "store"):
        assert re.search(rf"^\s+{name}\s", out, re.M), name


def test_tenant_keys_and_check(itemseal_env):
    env = itemseal_env
    assert "created with key 0" in run(env, "tenant", "create", "ACME", "--name", "Acme").stdout
    assert "already exists" in run(env, "tenant", "create", "ACME", "--name", "x", ok=False).stderr
    assert run(env, "key", "rotate", "--tenant", "ACME").stdout.strip().endswith("signing key")
    keys = run(env, "key", "list", "--tenant", "ACME").stdout.splitlines()
    assert [line.split("\t")[:2] for line in keys] == [
        ["key_id", "state"], ["0", "active"], ["1", "active"]
    ]

    store = _key_store(env)
    good = store.signer("ACME", 1, NUMERIC_24).code(NUMERIC_24.serial_base + 42)
    short = store.signer("ACME", 0, NUMERIC_20).code(7)
    slipped = good[:3] + str((int(good[3]) + 1) % 10) + good[4:]
    lines = run(env, "check", "--tenant", "ACME", group_digits(good), short, slipped, "hello",
                ok=False)
    assert lines.returncode == 1  # some line is not valid: scripts can tell
    assert run(env, "check", "--tenant", "ACME", good, short).returncode == 0
    rows = [line.split("\t") for line in lines.stdout.splitlines()]
    assert rows == [
        [group_digits(good), "valid", "1", str(NUMERIC_24.serial_base + 42), "-"],
        [short, "valid", "0", "7", "-"],
        [slipped, "mistyped"],
        ["hello", "malformed"],
    ]
    run(env, "key", "revoke", "--tenant", "ACME", "1")
    revoked = run(env, "check", "--tenant", "ACME", good, ok=False)
    assert "\trevoked\t" in revoked.stdout and revoked.returncode == 1


def test_check_reads_thousands_from_stdin(itemseal_env):
    run(itemseal_env, "tenant", "create", "ACME", "--name", "Acme")
    signer = _key_store(itemseal_env).signer("ACME", 0, NUMERIC_24)
    codes = ["".join(map(str, r)) for r in signer.code_matrix(NUMERIC_24.serial_base, 5000)]
    out = run(itemseal_env, "check", "--tenant", "ACME", "-", stdin="\n".join(codes) + "\n")
    verdicts = [line.split("\t")[1] for line in out.stdout.splitlines()]
    assert verdicts == ["valid"] * 5000


def test_without_the_master_key_nothing_verifies(itemseal_env):
    run(itemseal_env, "tenant", "create", "ACME", "--name", "Acme")
    (Path(itemseal_env["ITEMSEAL_HOME"]) / "master.key").unlink()
    proc = run(itemseal_env, "check", "--tenant", "ACME", "1" * 24, ok=False)
    assert proc.returncode == 1
    assert "no master key" in proc.stderr and "Traceback" not in proc.stderr


def test_unknown_tenant_is_one_line(itemseal_env):
    proc = run(itemseal_env, "key", "list", "--tenant", "NOPE", ok=False)
    assert proc.stderr.strip() == (
        "Error: unknown tenant 'NOPE': create it with `itemseal tenant create NOPE`"
    )


def test_embedded_store_starts_once_and_stops(short_home):
    env = {"ITEMSEAL_HOME": str(short_home), "PATH": os.environ["PATH"]}
    try:
        run(env, "tenant", "create", "ACME", "--name", "Acme")  # starts the store on demand
        first = run(env, "store", "status").stdout
        assert first.startswith("store running (pid ")
        pid = re.search(r"pid (\d+)", first).group(1)
        assert f"(pid {pid}, nice " in run(env, "store", "start").stdout, "reused, not restarted"
        assert "ACME" in run(env, "tenant", "list").stdout
        assert (short_home / "redis" / "data").is_dir()
    finally:
        assert run(env, "store", "stop").stdout.strip() == "store stopped"
    assert run(env, "store", "status", ok=False).returncode == 3
    run(env, "store", "start")
    try:
        assert "ACME" in run(env, "tenant", "list").stdout, "data survives a restart (AOF)"
    finally:
        run(env, "store", "stop")


def test_redis_url_means_nothing_is_started(itemseal_env):
    out = run(itemseal_env, "store", "start").stdout
    assert "nothing to manage" in out
    assert not (Path(itemseal_env["ITEMSEAL_HOME"]) / "redis").exists()


def _key_store(env: dict[str, str]) -> KeyStore:

    home = Path(env["ITEMSEAL_HOME"])
    return KeyStore(connect(home, env["ITEMSEAL_REDIS_URL"]), load_master_key(home, {}))


def test_every_top_level_command_is_loaded_from_the_module_that_defines_it():
    import cli

    named: dict[str, set[str]] = {}
    for name, module in cli.LAZY_COMMANDS.items():
        named.setdefault(module, set()).add(name)
    for module, names in named.items():
        assert {c.name for c in importlib.import_module(module).COMMANDS} == names, module


def test_a_command_imports_only_its_own_module():
    """The start-up win of loading commands when used: ``import cli`` loads none of them."""
    probe = ("import sys, cli; from click.testing import CliRunner; "
             "CliRunner().invoke(cli.main, ['tenant', '--help']); "
             "print(sorted(m for m in sys.modules if '.commands.' in m))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True, cwd=Path(__file__).resolve().parent.parent).stdout
    assert "codegen.commands.tenants" in loaded and "verify_api.commands.tenants" in loaded
    assert "points_bridge.commands.care" not in loaded
    assert "verify_api.commands.server" not in loaded


def test_a_command_leaves_no_store_connection_to_the_garbage_collector(itemseal_env):
    """The store client is closed when the command ends, not left to the collector.

    ``CliRunner`` keeps a command's exit in a reference cycle; collected later,
    the client's socket warned ``unclosed`` in whichever test the collection fell
    (an order-dependent failure of the suite, which turns warnings into errors).
    """
    run(itemseal_env, "tenant", "create", "ACME", "--name", "Acme")
    gc.collect()
    unraisable: list = []
    before, sys.unraisablehook = sys.unraisablehook, unraisable.append
    try:
        with warnings.catch_warnings(record=True) as warned:
            warnings.simplefilter("always")
            for _ in range(3):
                run(itemseal_env, "tenant", "list")
            gc.collect()
    finally:
        sys.unraisablehook = before
    found = [str(w.message) for w in warned] + [repr(u.exc_value) for u in unraisable]
    assert not found, found
