"""Minting into printer files: codes, metadata, manifest, refusals, interruption, concurrency."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers.cli_runner import ITEMSEAL, run

from codegen.batches import BatchRegistry
from codegen.codes import NUMERIC_20, NUMERIC_24, ParsedCode, group_digits, parse_code
from codegen.commands.batches import _Progress
from codegen.exc import (
    BadOutput,
    KeyRevoked,
    MintError,
    OutputExists,
    SerialsExhausted,
    UnknownProduct,
    UnknownTenant,
    WorkerFailed,
)
from codegen.mint import Minter
from codegen.products import ProductStore
from codegen.render import TextLayout
from codegen.signing import CodeSigner
from codegen.tenants import TenantStore
from codegen.workers import ChunkProducer
from codegen.writer import manifest_path, temporary_path
from schemas.batch import BATCH_SCHEMA, FACTS, read_facts

VERIFY_URL = "https://acme.example/t/{tenant}/v/{code}"
GTIN14 = "04006381333931"


@pytest.fixture
def minter(redis_client, key_store_factory) -> Minter:
    """A Minter for tenant ACME with products LIP-001 (no GTIN) and GT-1 (GTIN)."""
    keys = key_store_factory("ACME")
    TenantStore(redis_client).update("ACME", verify_url=VERIFY_URL)
    products = ProductStore(redis_client)
    products.add("ACME", "LIP-001", name="Velvet lipstick", points=10)
    products.add("ACME", "GT-1", name="Night cream", points=5, gtin="4006381333931")
    # small chunks and row groups so that small batches cover every path
    return Minter(redis_client, keys, chunk_rows=4096, row_group_rows=16384)


def read_rows(path: Path) -> dict[str, list]:
    if path.suffix == ".csv":
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        return {name: [r[name] for r in rows] for name in BATCH_SCHEMA.names}
    return pq.read_table(path).to_pydict()


def digits_of(code: str) -> str:
    return code.replace(" ", "")


@pytest.mark.slow
def test_every_code_parses_verifies_and_belongs_to_its_batch(minter, tmp_path):
    out = tmp_path / "lip.parquet"
    result = minter.mint("ACME", "LIP-001", 50_000, out, workers=2)
    batch = result.batch
    assert (batch.count, batch.state, batch.first_serial) == (50_000, "minted", 10**8)
    rows = read_rows(out)
    assert rows["seq"] == list(range(50_000))
    assert len(set(rows["code"])) == 50_000
    signer = minter.key_store.signer("ACME", batch.key_id, NUMERIC_24)
    serials = []
    for code in rows["code"]:
        parsed = parse_code(code)
        assert isinstance(parsed, ParsedCode) and code == group_digits(parsed.digits)
        serials.append(signer.verify(parsed))
    assert sorted(serials) == list(range(batch.first_serial, batch.last_serial + 1))
    registry = minter.registry("ACME")
    for serial in [*random.sample(serials, 200), batch.first_serial, batch.last_serial]:
        assert registry.batch_id_of(serial) == batch.batch_id
    assert registry.batch_id_of(batch.last_serial + 1) is None
    assert set(rows["batch_id"]) == {batch.batch_id} and set(rows["sku"]) == {"LIP-001"}
    assert rows["url"] == [
        VERIFY_URL.format(tenant="ACME", code=digits_of(c)) for c in rows["code"]
    ]


def test_file_facts_manifest_and_row_groups(minter, tmp_path):
    out = tmp_path / "gt.parquet"
    result = minter.mint("ACME", "GT-1", 50_000, out, profile=NUMERIC_20, workers=1)
    meta = pq.read_metadata(out)
    assert meta.num_rows == 50_000 and meta.num_row_groups == 4  # 16 Ki rows per group
    assert all(meta.row_group(0).column(i).compression == "ZSTD" for i in range(5))
    schema = pq.read_schema(out)
    assert schema.remove_metadata().equals(BATCH_SCHEMA)
    facts = read_facts(schema.metadata)
    assert set(facts) == set(FACTS)
    assert facts["batch_id"] == result.batch.batch_id
    assert facts["profile"] == "numeric-20" and facts["first_serial"] == "0"
    assert (facts["count"], facts["last_serial"]) == ("50000", "49999")
    assert facts["url_template"] == f"https://acme.example/01/{GTIN14}/21/{{code}}"

    manifest = json.loads(manifest_path(out).read_text())
    sha256 = hashlib.sha256(out.read_bytes()).hexdigest()
    assert manifest["sha256"] == sha256 == result.sha256
    assert manifest["bytes"] == out.stat().st_size
    assert manifest["file"] == "gt.parquet" and manifest["row_groups"] == 4
    assert {k: str(manifest[k]) for k in FACTS} == facts
    registered = result.batch.fields
    assert registered["sha256"] == sha256 and registered["file"] == str(out)

    rows = read_rows(out)
    assert all(len(digits_of(c)) == 20 for c in rows["code"])
    assert rows["url"][:3] == [
        f"https://acme.example/01/{GTIN14}/21/{digits_of(c)}" for c in rows["code"][:3]
    ]


@pytest.mark.slow
def test_csv_and_parquet_agree_and_exports_are_deterministic(minter, tmp_path):
    parquet = minter.mint("ACME", "LIP-001", 20_000, tmp_path / "b.parquet", workers=2)
    batch_id = parquet.batch.batch_id
    as_csv = minter.export("ACME", batch_id, tmp_path / "b.csv", fmt="csv", workers=0)
    expected = {k: [str(v) for v in vs] for k, vs in read_rows(parquet.path).items()}
    assert read_rows(as_csv.path) == expected
    again = minter.export("ACME", batch_id, tmp_path / "again.parquet", fmt="parquet", workers=3)
    assert pq.read_table(again.path).equals(pq.read_table(parquet.path))

    direct = minter.mint("ACME", "LIP-001", 5_000, tmp_path / "d.csv", fmt="csv", workers=2)
    rows = read_rows(direct.path)
    assert rows["seq"] == [str(i) for i in range(5_000)]
    assert json.loads(manifest_path(direct.path).read_text())["file_format"] == "csv"
    assert not set(rows["code"]) & set(expected["code"])


def test_refusals_reserve_no_serials(minter, tmp_path, redis_client):
    out = tmp_path / "x.parquet"
    with pytest.raises(UnknownTenant):
        minter.mint("NOPE", "LIP-001", 10, out)
    with pytest.raises(UnknownProduct):
        minter.mint("ACME", "NOPE", 10, out)
    for count in (0, -5):
        with pytest.raises(MintError, match="positive"):
            minter.mint("ACME", "LIP-001", count, out)
    with pytest.raises(MintError, match="unknown file format 'xlsx'"):
        minter.mint("ACME", "LIP-001", 10, out, fmt="xlsx")
    with pytest.raises(BadOutput, match="does not exist"):
        minter.mint("ACME", "LIP-001", 10, tmp_path / "missing" / "x.parquet")
    with pytest.raises(SerialsExhausted, match="100,000,000 numeric-20 serials left"):
        minter.mint("ACME", "LIP-001", NUMERIC_20.serial_space + 1, out, profile=NUMERIC_20)
    for template in ("https://acme.example/verify", "https://acme.example/{serial}/{code}"):
        TenantStore(redis_client).update("ACME", verify_url=template)
        with pytest.raises(MintError, match="needs {code}"):
            minter.mint("ACME", "LIP-001", 10, out)
    TenantStore(redis_client).update("ACME", verify_url=VERIFY_URL)
    out.write_bytes(b"someone else's file")
    with pytest.raises(OutputExists, match="--force"):
        minter.mint("ACME", "LIP-001", 10, out)
    assert out.read_bytes() == b"someone else's file"
    assert minter.registry("ACME").list() == []

    first = minter.mint("ACME", "LIP-001", 10, out, force=True)
    assert first.batch.first_serial == NUMERIC_24.serial_base  # nothing was burnt before
    assert pq.read_metadata(out).num_rows == 10

    minter.key_store.revoke("ACME", 0)
    with pytest.raises(KeyRevoked, match="rotate"):
        minter.mint("ACME", "LIP-001", 10, tmp_path / "y.parquet")
    with pytest.raises(MintError, match="revoked: the codes of batch B000001 answer"):
        minter.export("ACME", first.batch.batch_id, tmp_path / "y.csv")
    minter.key_store.rotate("ACME")
    assert minter.mint("ACME", "LIP-001", 10, tmp_path / "y.parquet").batch.key_id == 1
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_a_file_that_appears_meanwhile_is_not_replaced(minter, tmp_path):
    out = tmp_path / "race.parquet"

    def another_mint_finishes_first(done: int) -> None:
        out.write_bytes(b"written by a concurrent mint")

    with pytest.raises(OutputExists, match="appeared.*B000001 is registered all the same"):
        minter.mint("ACME", "LIP-001", 100, out, progress=another_mint_finishes_first)
    assert out.read_bytes() == b"written by a concurrent mint"
    assert not temporary_path(out).exists() and not manifest_path(out).exists()


def test_progress_is_shown_only_on_a_terminal():
    class Terminal:
        def __init__(self, tty: bool) -> None:
            self.tty, self.text = tty, ""

        def isatty(self) -> bool:
            return self.tty

        def write(self, text: str) -> None:
            self.text += text

        def flush(self) -> None:
            pass

    quiet, shown = Terminal(False), Terminal(True)
    for stream in (quiet, shown):
        progress = _Progress(1000, "minting", stream)
        progress(500)
        progress(1000)
        progress.close()
    assert quiet.text == ""
    assert "1,000/1,000 codes" in shown.text and "M codes/s" in shown.text
    assert shown.text.endswith("\n")


# -- the command, and real processes to interrupt --------------------------------------


def cli(env: dict[str, str], *args: str) -> str:
    return run(env, *args).stdout


@pytest.fixture
def cli_tenant(itemseal_env) -> dict[str, str]:
    """The CLI environment with tenant ACME and product LIP-001 created."""
    cli(itemseal_env, "tenant", "create", "ACME", "--name", "Acme")
    cli(itemseal_env, "product", "add", "-t", "ACME", "--sku", "LIP-001", "--name", "Lipstick",
        "--points", "10")
    return itemseal_env


@pytest.mark.slow
def test_concurrent_mint_processes_never_overlap(cli_tenant, tmp_path, redis_client):
    outs = [tmp_path / f"m{i}.parquet" for i in range(3)]
    procs = [
        subprocess.Popen(
            [ITEMSEAL, "mint", "-t", "ACME", "--sku", "LIP-001", "-n", "200000", "-o", str(out),
             "--workers", "1"],
            env=cli_tenant, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for out in outs
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    ranges = sorted(
        (int(f["first_serial"]), int(f["last_serial"]))
        for f in (read_facts(pq.read_schema(out).metadata) for out in outs)
    )
    assert ranges == [(10**8 + i * 200_000, 10**8 + (i + 1) * 200_000 - 1) for i in range(3)]
    codes = [set(pq.read_table(out, columns=["code"])["code"].to_pylist()) for out in outs]
    assert sum(map(len, codes)) == len(set().union(*codes)) == 600_000
    batches = BatchRegistry(redis_client, "ACME").list()
    assert len({b.batch_id for b in batches}) == 3


def _start_big_mint(env: dict[str, str], out: Path) -> tuple[subprocess.Popen, list]:
    proc = subprocess.Popen(
        [ITEMSEAL, "mint", "-t", "ACME", "--sku", "LIP-001", "-n", "200000000", "-o", str(out)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    temp = out.with_name(f".{out.name}.{proc.pid}.tmp")
    deadline = time.monotonic() + 60
    while not (temp.exists() and temp.stat().st_size > 0):  # rows are being written
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the mint never started writing"
        time.sleep(0.05)
    return proc, psutil.Process(proc.pid).children(recursive=True)


def _gone(procs: list, timeout: float = 10) -> bool:
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    return not alive


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_mint_leaves_nothing(cli_tenant, tmp_path, redis_client, how):
    out = tmp_path / "big.parquet"
    proc, workers = _start_big_mint(cli_tenant, out)
    assert workers, "the mint forks workers"
    proc.send_signal(how)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode != 0 and "Traceback" not in err, err
    assert os.listdir(tmp_path) == []  # no file, no manifest, no temporary
    assert _gone(workers)
    assert BatchRegistry(redis_client, "ACME").list() == []


@pytest.mark.slow
def test_a_killed_mint_leaves_no_file_and_no_workers(cli_tenant, tmp_path, redis_client):
    out = tmp_path / "big.parquet"
    proc, workers = _start_big_mint(cli_tenant, out)
    proc.kill()
    proc.communicate(timeout=30)
    assert not out.exists() and not manifest_path(out).exists()
    assert _gone(workers), "workers notice their parent died and exit"
    assert BatchRegistry(redis_client, "ACME").list() == []
    # the temporary it could not remove is cleaned by the next mint into that folder
    cli(cli_tenant, "mint", "-t", "ACME", "--sku", "LIP-001", "-n", "1000", "-o", str(out))
    assert sorted(os.listdir(tmp_path)) == ["big.parquet", "big.parquet.manifest.json"]
    assert pq.read_metadata(out).num_rows == 1000


def test_mint_command_prints_the_batch_and_files(cli_tenant, tmp_path):
    out = tmp_path / "lip.csv"
    text = cli(cli_tenant, "mint", "-t", "ACME", "--sku", "LIP-001", "-n", "3000", "-o", str(out))
    assert "batch B000001 minted: 3,000 codes of LIP-001" in text
    assert str(out) in text and str(manifest_path(out)) in text
    assert read_rows(out)["seq"][-1] == "2999"  # format taken from the .csv suffix
    refused = run(cli_tenant, "mint", "-t", "ACME", "--sku", "LIP-001", "-n", "0", "-o", str(out),
                  ok=False)
    assert refused.returncode == 1
    assert refused.stderr == "Error: count must be a positive number of codes, got 0\n"


def test_schema_is_the_declared_one():
    assert BATCH_SCHEMA.field("seq").type == pa.uint64()
    assert pa.types.is_dictionary(BATCH_SCHEMA.field("batch_id").type)
    assert BATCH_SCHEMA.names == ["seq", "code", "url", "batch_id", "sku"]


def test_a_worker_that_dies_fails_the_run_clearly():
    signer = CodeSigner(bytes(32), 0, NUMERIC_24)
    layout = TextLayout(NUMERIC_24, "https://x.example/{code}")
    producer = ChunkProducer(signer, layout, 10**8, 10**7, workers=2, chunk_rows=1024)
    with producer, pytest.raises(WorkerFailed, match="died"):
        for chunk in producer:
            if chunk.index == 0:
                os.kill(producer.pids[1], signal.SIGKILL)
            producer.release(chunk)
    assert producer.pids == []
