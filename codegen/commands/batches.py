"""CLI commands that mint batches and move them through their lifecycle (see ``cli.py``)."""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import click

from codegen import words
from codegen.batches import ACTIVE, RECALLED, BatchRegistry
from codegen.codes import DEFAULT_PROFILE, PROFILES
from codegen.commands.options import (
    Config,
    echo_json,
    echo_rows,
    iso_time,
    json_option,
    pass_config,
    tenant_option,
)
from codegen.mint import Minter, MintResult
from codegen.writer import FORMATS

workers_option = click.option(
    "--workers",
    type=click.IntRange(min=0),
    help="Processes rendering codes; default one per CPU, 0 renders in this process.",
)
force_option = click.option("--force", is_flag=True, help="Replace the output file if it exists.")


class _Progress:
    """A one-line progress report with codes/s on a terminal; silent otherwise."""

    def __init__(self, total: int, label: str, stream=None) -> None:
        self.total, self.label = total, label
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.started = time.monotonic()
        self._shown = 0.0

    def __call__(self, done: int) -> None:
        now = time.monotonic()
        if not self.enabled or (now - self._shown < 0.2 and done < self.total):
            return
        self._shown = now
        rate = done / max(now - self.started, 1e-9)
        self.stream.write(
            f"\r{self.label} {done:,}/{self.total:,} codes {done / self.total:4.0%}"
            f"  {words.rate(rate)} "
        )
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self._shown:
            self.stream.write("\n")


@contextlib.contextmanager
def _progress(total: int, label: str) -> Iterator[_Progress]:
    """Report progress, and let SIGTERM clean up as Ctrl-C does (no temp file left)."""
    bar = _Progress(total, label)
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield bar
    finally:
        signal.signal(signal.SIGTERM, previous)
        bar.close()



def _report(result: MintResult, verb: str) -> None:
    b = result.batch
    click.echo(
        f"batch {b.batch_id} {verb}: {b.count:,} codes of {b.sku}, serials"
        f" {b.first_serial}-{b.last_serial}, key {b.key_id}, {b.profile.name}"
    )
    click.echo(f"  file      {result.path} ({result.size / 1e6:.1f} MB, sha256 {result.sha256})")
    click.echo(f"  manifest  {result.manifest}")
    click.echo(f"  {result.seconds:.1f} s, {words.rate(result.codes_per_second)}")


@click.command()
@tenant_option
@click.option("--sku", required=True, help="The product the codes are for (`itemseal product`).")
@click.option("--count", "-n", required=True, type=int, help="Number of codes, e.g. 1000000.")
@click.option(
    "--out", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path),
    help="The printer file to write; `<out>.manifest.json` is written beside it.",
)
@click.option(
    "--profile", type=click.Choice(list(PROFILES)), default=DEFAULT_PROFILE.name,
    show_default=True, help="Code length: 24 digits, or the short 20-digit profile.",
)
@workers_option
@click.option(
    "--format", "fmt", type=click.Choice(FORMATS),
    help="File format; default csv for an --out ending in .csv, else parquet.",
)
@force_option
@pass_config
def mint(
    config: Config, tenant: str, sku: str, count: int, out: Path, profile: str,
    workers: int | None, fmt: str | None, force: bool,
) -> None:
    """Mint a batch of signed codes for a product into a printer file.

    Reserves a serial range, writes one row per code (seq, code grouped by
    four, QR URL, batch id, SKU) to zstd Parquet in row groups, or to CSV,
    and registers the batch as `minted`: its codes answer `not_activated`
    until `itemseal batch activate`. The file appears only when complete;
    Ctrl-C leaves nothing behind.

    \b
    Example:
      itemseal mint --tenant ACME --sku LIP-001 --count 1000000 --out lip-001.parquet
      itemseal mint -t ACME --sku LIP-001 -n 50000 --profile numeric-20 -o short.csv
    """
    fmt = fmt or ("csv" if out.suffix.lower() == ".csv" else "parquet")
    minter = Minter(config.redis, config.key_store)
    with _progress(count, "minting") as progress:
        result = minter.mint(
            tenant, sku, count, out, profile=PROFILES[profile], workers=workers, fmt=fmt,
            force=force, progress=progress,
        )
    _report(result, "minted")
    batch_id = result.batch.batch_id
    click.echo(f"  activate it when it ships: itemseal batch activate -t {tenant} {batch_id}")


@click.group()
def batch() -> None:
    """List, inspect, activate, recall and re-export minted batches.

    A batch is minted (its codes answer `not_activated`), then active (codes
    verify `genuine`), and may be recalled (codes answer `recalled`).

    \b
    Example:
      itemseal batch list --tenant ACME
      itemseal batch activate --tenant ACME B000001
    """


@batch.command("list")
@tenant_option
@json_option
@pass_config
def batch_list(config: Config, tenant: str, as_json: bool) -> None:
    """List batches: id, state, SKU, count, serials, profile, key, created (with a header).

    \b
    Example:
      itemseal batch list --tenant ACME
      itemseal batch list --tenant ACME --json
    """
    batches = BatchRegistry(config.redis, tenant).list()
    if as_json:
        echo_json({"batches": [
            {"batch_id": b.batch_id, "state": b.state, "sku": b.sku, "count": b.count,
             "first_serial": b.first_serial, "last_serial": b.last_serial,
             "profile": b.profile.name, "key_id": b.key_id, "created_at": iso_time(b.created_at)}
            for b in batches
        ]})
        return
    echo_rows(
        ("batch", "state", "sku", "count", "serials", "profile", "key_id", "created_at"),
        [(b.batch_id, b.state, b.sku, b.count, f"{b.first_serial}-{b.last_serial}",
          b.profile.name, b.key_id, iso_time(b.created_at)) for b in batches],
    )


def _transition(config: Config, tenant: str, batch_id: str, target: str) -> None:
    before, after = BatchRegistry(config.redis, tenant).transition(batch_id, target)
    note = " (already)" if before == target else ""
    click.echo(f"batch {batch_id}: {before} -> {after.state}{note}")


@batch.command("activate")
@tenant_option
@click.argument("batch_id")
@pass_config
def batch_activate(config: Config, tenant: str, batch_id: str) -> None:
    """Release a minted batch: its codes verify `genuine` from now on.

    \b
    Example:
      itemseal batch activate --tenant ACME B000001
    """
    _transition(config, tenant, batch_id, ACTIVE)


@batch.command("recall")
@tenant_option
@click.argument("batch_id")
@pass_config
def batch_recall(config: Config, tenant: str, batch_id: str) -> None:
    """Recall a batch: its codes answer `recalled` and credit no points.

    \b
    Example:
      itemseal batch recall --tenant ACME B000001
    """
    _transition(config, tenant, batch_id, RECALLED)


@batch.command("export")
@tenant_option
@click.argument("batch_id")
@click.option(
    "--format", "fmt", type=click.Choice(FORMATS), default="csv", show_default=True,
    help="File format.",
)
@click.option(
    "--out", "-o", type=click.Path(dir_okay=False, path_type=Path),
    help="Output file; default BATCH.csv (or .parquet) in the current directory.",
)
@workers_option
@force_option
@pass_config
def batch_export(
    config: Config, tenant: str, batch_id: str, fmt: str, out: Path | None,
    workers: int | None, force: bool,
) -> None:
    """Re-create a batch's printer file, e.g. as CSV for a printer that needs it.

    The codes are re-derived from the batch's key and serial range, so the
    rows are exactly those minted; nothing is reserved or registered.

    \b
    Example:
      itemseal batch export --tenant ACME B000001 --format csv --out B000001.csv
    """
    out = out or Path(f"{batch_id}.{fmt}")
    minter = Minter(config.redis, config.key_store)
    count = minter.registry(tenant).get(batch_id).count
    with _progress(count, "exporting") as progress:
        result = minter.export(
            tenant, batch_id, out, fmt=fmt, workers=workers, force=force, progress=progress
        )
    _report(result, "exported")



COMMANDS = (mint, batch)
