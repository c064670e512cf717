"""`itemseal batch void` and the scan counts of `itemseal batch show`, as a user runs them."""

from __future__ import annotations

from pathlib import Path

from helpers.cli_runner import run

from codegen.batches import BatchRegistry
from codegen.codes import NUMERIC_24
from codegen.keys import KeyStore, load_master_key
from codegen.store.embedded import connect


def test_void_then_show_counts(itemseal_env):
    run(itemseal_env, "tenant", "create", "ACME", "--name", "Acme")
    client = connect(Path("."), itemseal_env["ITEMSEAL_REDIS_URL"])
    master = load_master_key(Path(itemseal_env["ITEMSEAL_HOME"]), {})
    registry = BatchRegistry(client, "ACME")
    first = registry.reserve(NUMERIC_24, 100)
    batch = registry.register(
        "B000001", sku="SKU-1", key_id=0, profile=NUMERIC_24.name, first_serial=first, count=100
    )
    registry.transition(batch.batch_id, "active")
    signer = KeyStore(client, master).signer("ACME", 0, NUMERIC_24)
    spoiled = [signer.code(first + i) for i in range(5)]
    stdin = "\n".join([*spoiled, "", "not a code"]) + "\n"
    out = run(itemseal_env, "batch", "void", "-t", "ACME", "B000001", "-", stdin=stdin, ok=False)
    lines = out.stdout.splitlines()
    assert lines[:5] == [f"{code}\tvoided" for code in spoiled]
    assert lines[5] == "not a code\tmalformed"
    assert "5 voided, 0 already voided, 1 refused" in out.stderr
    again = run(itemseal_env, "batch", "void", "-t", "ACME", "B000001", spoiled[0])
    assert again.stdout == f"{spoiled[0]}\talready_voided\n"
    show = run(itemseal_env, "batch", "show", "-t", "ACME", "B000001").stdout
    assert "codes_voided\t5" in show and "codes_scanned\t0" in show
    assert "codes_claimed\t0" in show and "codes_minted\t100" in show
    client.close()


def test_void_of_an_unknown_batch_is_one_line(itemseal_env):
    run(itemseal_env, "tenant", "create", "ACME", "--name", "Acme")
    out = run(itemseal_env, "batch", "void", "-t", "ACME", "B999999", "1234", ok=False)
    assert "no batch 'B999999'" in out.stderr and "Traceback" not in out.stderr
