"""``itemseal batch void``: codes spoiled at printing answer `revoked` from then on."""

from __future__ import annotations

import sys
from collections import Counter
from typing import TYPE_CHECKING

import click

from verify_api.batch_scans import void_codes

if TYPE_CHECKING:
    from cli import Config


@click.command("void")
@click.option("--tenant", "-t", required=True, help="Tenant id, e.g. ACME.")
@click.argument("batch_id")
@click.argument("codes", nargs=-1, required=True)
@click.pass_obj
def void(config: Config, tenant: str, batch_id: str, codes: tuple[str, ...]) -> None:
    """Void codes spoiled at printing: from now on they answer `revoked`.

    Give the codes as typed or scanned, or `-` to read them one per line
    from standard input. Each must verify and belong to BATCH_ID; one
    tab-separated line per code says `voided` (with the checks it had
    before, if any), `already_voided`, `not_in_batch`, or why it is not a
    code. Exits with status 1 if any code was not voided.

    \b
    Example:
      itemseal batch void --tenant ACME B000001 "2649 2777 8992 6462 7763 2364"
      itemseal batch void --tenant ACME B000001 - < spoiled.txt
    """
    config.tenants.get(tenant)
    lines = (line.strip() for line in sys.stdin) if codes == ("-",) else iter(codes)
    texts = [text for text in lines if text]
    outcomes = void_codes(config.redis, config.key_store, tenant, batch_id, texts)
    for done in outcomes:
        note = f"\tchecked {done.checks_before} times before" if done.checks_before else ""
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
