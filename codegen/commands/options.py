"""The options and decorators every command group shares (click ``examples/repo``).

The root group puts a ``codegen.config.Config`` on ``ctx.obj``; commands take
it with ``pass_config``. One ``--tenant`` option, spelled the same everywhere;
it checks that the tenant exists, so no command answers an unknown tenant
with an empty success ("0 members") instead of "unknown tenant".
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator

import click

from codegen.config import Config
from codegen.keys import check_secret
from codegen.times import iso

pass_config = click.make_pass_decorator(Config)


def _known_tenant(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None or ctx.resilient_parsing:
        return value
    config = ctx.find_object(Config)
    if config is not None:
        config.tenants.get(value)  # UnknownTenant: one line, exit 1
    return value


tenant_option = click.option(
    "--tenant", "-t", required=True, callback=_known_tenant, help="Tenant id, e.g. ACME."
)
json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON document instead of text."
)


@contextlib.contextmanager
def progress_bar(label: str) -> Iterator[Callable[[int, int], None]]:
    """Yield ``progress(done, total)`` for long work: a bar on standard error when it is a
    terminal (a cron job's log stays clean), finished however the work ends."""
    bar = click.progressbar(length=1, label=label, file=sys.stderr) if sys.stderr.isatty() \
        else None

    def progress(done: int, total: int) -> None:
        if bar is not None:
            bar.length = max(total, done, 1)
            bar.update(done - bar.pos)

    try:
        yield progress
    finally:
        if bar is not None:
            bar.render_finish()


def echo_json(document: object) -> None:
    """Print ``document`` as one JSON document (non-ASCII kept as is)."""
    click.echo(json.dumps(document, ensure_ascii=False, default=str))


def echo_rows(header: tuple[str, ...], rows: list[tuple[object, ...]]) -> None:
    """Print tab-separated rows under a header line, ``-`` for an empty cell."""
    click.echo("\t".join(header))
    for row in rows:
        click.echo("\t".join("-" if v is None or v == "" else str(v) for v in row))


def iso_time(ts: float | str | None) -> str:
    """A unix time as every command prints it: ISO-8601 with its offset, or ``-``.

    ``1767225600`` -> ``2026-01-01T00:00:00+00:00`` (``codegen.times.iso``).
    """
    return iso(ts) or "-"


def read_secret(value: str | None, *, stdin: bool = False, env: str | None = None) -> str | None:
    """The secret a command was given: on the command line (visible in ``ps``), on the
    first line of standard input (``stdin``) or in the environment variable ``env``.

    At most one source; whichever it is, the secret must have ``MIN_SECRET_CHARS``.
    """
    sources = [s for s in (value is not None, stdin, env is not None) if s]
    if len(sources) > 1:
        raise click.UsageError("give the secret one way: the option, --secret-stdin or the env")
    if stdin:
        value = sys.stdin.readline().rstrip("\r\n")
    elif env is not None:
        value = os.environ.get(env)
        if value is None:
            raise click.UsageError(f"{env} is not set")
    if value is not None:
        check_secret(value)
    return value
