"""The ``batch`` commands that read or write scan state: ``show`` (code counts) and ``void``.

The ``batch`` group is codegen's (minting knows batches); these two need the
verify side's scan records, so ``cli.py`` hangs them on that group from here.
"""

from __future__ import annotations

import sys
from collections import Counter

import click

from codegen.batches import Batch, BatchRegistry
from codegen.commands.options import (
    Config,
    echo_json,
    iso_time,
    json_option,
    pass_config,
    tenant_option,
)
from codegen.words import plural
from verify_api.check.batch_scans import scan_counts, void_codes


@click.command("void")
@tenant_option
@click.argument("batch_id")
@click.argument("codes", nargs=-1, required=True)
@pass_config
def void(config: Config, tenant: str, batch_id: str, codes: tuple[str, ...]) -> None:
    """Void codes spoiled at printing: from now on they answer `revoked`.

    Give the codes as typed or scanned, or `-` to read them one per line
    from standard input. Each must verify and belong to BATCH_ID; one
    tab-separated line per code says `voided` (with the checks it had
    before, if any), `already_voided`, `not_in_batch`, or why it is not a
    code. Exits with status 1 if any code could not be voided; codes voided
    before count as done, so re-running a list after an interruption exits 0.

    \b
    Example:
      itemseal batch void --tenant ACME B000001 "2649 2777 8992 6462 7763 2364"
      itemseal batch void --tenant ACME B000001 - < spoiled.txt
    """
    lines = (line.strip() for line in sys.stdin) if codes == ("-",) else iter(codes)
    texts = [text for text in lines if text]
    outcomes = void_codes(config.redis, config.key_store, tenant, batch_id, texts)
    for done in outcomes:
        note = (f"\tchecked {plural(done.checks_before, 'time')} before" if done.checks_before
                else "")
        click.echo(f"{done.text}\t{done.outcome}{note}")
    tally = Counter(done.outcome for done in outcomes)
    refused = len(outcomes) - tally["voided"] - tally["already_voided"]
    click.echo(
        f"batch {batch_id}: {tally['voided']} voided, {tally['already_voided']} already voided,"
        f" {refused} refused",
        err=True,
    )
    if refused:
        raise SystemExit(1)


def code_counts(config: Config, batch: Batch) -> dict[str, int]:
    """Counts of a batch's codes by fate: minted, then what the scan state says."""
    return {"minted": batch.count, **scan_counts(config.redis, batch.tenant, batch)}


@click.command("show")
@tenant_option
@click.argument("batch_id")
@json_option
@pass_config
def batch_show(config: Config, tenant: str, batch_id: str, as_json: bool) -> None:
    """Show a batch's facts and how many of its codes are minted, scanned, voided.

    \b
    Example:
      itemseal batch show --tenant ACME B000001
    """
    b = BatchRegistry(config.redis, tenant).get(batch_id)
    facts = dict(b.fields, last_serial=str(b.last_serial))
    for name in ("created_at", "activated_at", "recalled_at"):
        if name in facts:
            facts[name] = iso_time(float(facts[name]))
    counts = {f"codes_{name}": value for name, value in code_counts(config, b).items()}
    if as_json:
        echo_json({**dict(sorted(facts.items())), **counts})
        return
    for name, value in [*sorted(facts.items()), *counts.items()]:
        click.echo(f"{name}\t{value}")
