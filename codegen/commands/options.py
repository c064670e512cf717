"""The options and decorators every command group shares (click ``examples/repo``).

The root group puts a ``codegen.config.Config`` on ``ctx.obj``; commands take
it with ``pass_config``. One ``--tenant`` option, spelled the same everywhere.
"""

from __future__ import annotations

from datetime import UTC, datetime

import click

from codegen.config import Config

pass_config = click.make_pass_decorator(Config)
tenant_option = click.option("--tenant", "-t", required=True, help="Tenant id, e.g. ACME.")


def iso_time(ts: float | None) -> str:
    """A unix time as every command prints it: ISO-8601 in UTC, with its offset, or ``-``.

    ``1767225600`` -> ``2026-01-01T00:00:00+00:00``.
    """
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")
