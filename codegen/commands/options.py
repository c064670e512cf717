"""The options and decorators every command group shares (click ``examples/repo``).

The root group puts a ``codegen.config.Config`` on ``ctx.obj``; commands take
it with ``pass_config``. One ``--tenant`` option, spelled the same everywhere.
"""

from __future__ import annotations

import os
import sys

import click

from codegen.config import Config
from codegen.keys import check_secret

pass_config = click.make_pass_decorator(Config)
tenant_option = click.option("--tenant", "-t", required=True, help="Tenant id, e.g. ACME.")


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
