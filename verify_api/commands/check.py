"""``itemseal check``: what the API would say about codes, without recording a scan.

It lives on the verify side because a code voided at printing (``batch void``)
is marked in the scan state, which is verify_api's: format, check digit and
tag alone (``codegen.checker``) would call such a code ``valid``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import click

from codegen.batches import BatchRegistry
from codegen.checker import REVOKED, VALID, CodeChecker
from codegen.commands.options import Config, pass_config, tenant_option
from verify_api.check.batch_scans import voided_serials

CHUNK = 1000  # codes decoded and looked up per round trip


@click.command()
@tenant_option
@click.argument("codes", nargs=-1, required=True)
@pass_config
def check(config: Config, tenant: str, codes: tuple[str, ...]) -> None:
    """Check codes offline: format, check digit, tag and voids; no scan is recorded.

    Prints one tab-separated line per code: the code as given, then `valid`
    (or `revoked`: its key is revoked or the code was voided) with key id,
    serial and batch, or `mistyped`, `counterfeit` or `malformed`. Give `-`
    to read codes one per line from standard input. Exits with status 1 if
    any code is not `valid`, so scripts can test it.

    \b
    Example:
      itemseal check --tenant ACME "1234 5678 9012 3456 7890 1234"
      itemseal check --tenant ACME - < codes.txt
    """
    checker = CodeChecker(config.key_store, tenant, max_age=3600)
    find_batch = BatchRegistry(config.redis, tenant).batch_id_of
    lines = (line.rstrip("\r\n") for line in sys.stdin) if codes == ("-",) else iter(codes)
    out = sys.stdout
    all_valid = True
    for chunk in _chunks(text for text in lines if text.strip()):
        decoded = [checker.decode(text) for text in chunk]
        voided = voided_serials(config.redis, tenant, [d.serial for d in decoded
                                                       if d.verdict == VALID])
        for d in decoded:
            verdict = REVOKED if d.serial in voided else d.verdict
            all_valid &= verdict == VALID
            if d.authentic:
                batch = find_batch(d.serial) or "-"
                out.write(f"{d.text}\t{verdict}\t{d.key_id}\t{d.serial}\t{batch}\n")
            else:
                out.write(f"{d.text}\t{verdict}\n")
    out.flush()
    if not all_valid:
        sys.exit(1)


def _chunks(texts: Iterator[str]) -> Iterator[list[str]]:
    chunk: list[str] = []
    for text in texts:
        chunk.append(text)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


COMMANDS = (check,)
