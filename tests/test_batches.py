"""Batch lifecycle (minted -> active -> recalled) and the `itemseal batch` commands."""

from __future__ import annotations

import re

import click
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from cli import main
from codegen.batches import ACTIVE, MINTED, RECALLED, BatchRegistry
from codegen.exc import BatchError, UnknownBatch
from codegen.mint import Minter
from codegen.products import ProductStore


@pytest.fixture
def minter(redis_client, key_store_factory) -> Minter:
    keys = key_store_factory("ACME")
    ProductStore(redis_client).add("ACME", "LIP-001", name="Lipstick", points=10)
    return Minter(redis_client, keys, chunk_rows=2048, row_group_rows=8192)


@pytest.fixture
def registry(minter) -> BatchRegistry:
    return minter.registry("ACME")


def test_lifecycle_and_refusals(minter, registry, tmp_path):
    a = minter.mint("ACME", "LIP-001", 1000, tmp_path / "a.parquet").batch
    b = minter.mint("ACME", "LIP-001", 1000, tmp_path / "b.parquet").batch
    assert (a.batch_id, b.batch_id) == ("B000001", "B000002")
    assert b.first_serial == a.last_serial + 1

    assert registry.transition(a.batch_id, ACTIVE)[0] == MINTED
    assert registry.transition(a.batch_id, ACTIVE)[0] == ACTIVE  # again: nothing changes
    assert registry.transition(a.batch_id, RECALLED)[0] == ACTIVE
    assert registry.transition(b.batch_id, RECALLED)[0] == MINTED  # recall before shipping
    with pytest.raises(BatchError, match="recalled: it cannot become active"):
        registry.transition(a.batch_id, ACTIVE)
    with pytest.raises(UnknownBatch):
        registry.transition("B999999", ACTIVE)
    got = registry.get(a.batch_id)
    assert got.state == RECALLED and {"activated_at", "recalled_at"} <= set(got.fields)
    assert [x.state for x in registry.list()] == [RECALLED, RECALLED]


def test_export_recreates_the_minted_file(minter, tmp_path):
    minted = minter.mint("ACME", "LIP-001", 20_000, tmp_path / "m.parquet", workers=2)
    exported = minter.export("ACME", minted.batch.batch_id, tmp_path / "e.parquet",
                             fmt="parquet", workers=1)
    assert pq.read_table(exported.path).equals(pq.read_table(minted.path))
    assert pq.read_schema(exported.path).metadata == pq.read_schema(minted.path).metadata
    assert minter.registry("ACME").list() == [minted.batch]  # export registers nothing


def test_batch_commands(itemseal_env, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def run(*args: str, ok: bool = True) -> str:
        result = runner.invoke(main, list(args), env=itemseal_env)
        assert (result.exit_code == 0) == ok, result.output
        assert "Traceback" not in result.output
        return result.output

    run("tenant", "create", "ACME", "--name", "Acme")
    run("product", "add", "-t", "ACME", "--sku", "LIP-001", "--name", "Lipstick", "--points", "5")
    run("mint", "-t", "ACME", "--sku", "LIP-001", "-n", "2500", "-o", "lip.parquet")
    header, row = run("batch", "list", "-t", "ACME").splitlines()
    assert header.split("\t")[0] == "batch"
    listed = row.split("\t")
    assert listed[:6] == ["B000001", "minted", "LIP-001", "2500", "100000000-100002499",
                          "numeric-24"]
    shown = dict(line.split("\t") for line in run("batch", "show", "-t", "ACME",
                                                  "B000001").splitlines())
    assert shown["state"] == "minted" and shown["codes_minted"] == "2500"
    assert shown["file"] == str(tmp_path / "lip.parquet") and len(shown["sha256"]) == 64

    assert run("batch", "activate", "-t", "ACME", "B000001") == "batch B000001: minted -> active\n"
    assert "B000001 exported: 2,500 codes" in run("batch", "export", "-t", "ACME", "B000001")
    exported = (tmp_path / "B000001.csv").read_text().splitlines()
    minted = pq.read_table(tmp_path / "lip.parquet").to_pydict()
    assert len(exported) == 2501 and exported[1].split(",")[1] == f'"{minted["code"][0]}"'
    assert "exists" in run("batch", "export", "-t", "ACME", "B000001", ok=False)
    run("batch", "export", "-t", "ACME", "B000001", "--force")

    assert "active -> recalled" in run("batch", "recall", "-t", "ACME", "B000001")
    assert "cannot become active" in run("batch", "activate", "-t", "ACME", "B000001", ok=False)
    assert "not to be printed" in run("batch", "export", "-t", "ACME", "B000001", "--force",
                                      ok=False)
    assert "has no batch 'B000009'" in run("batch", "show", "-t", "ACME", "B000009", ok=False)
    assert "unknown tenant" in run("batch", "list", "-t", "NOPE", ok=False)


def test_every_batch_command_has_an_example():
    ctx = click.Context(main)  # through the root: it adds verify_api's batch commands
    mint, batch, product = (main.get_command(ctx, name) for name in ("mint", "batch", "product"))
    for command in [mint, batch, product, *batch.commands.values(), *product.commands.values()]:
        assert re.search(r"\x08\s*Example:\n\s+itemseal ", command.help or ""), command.name
