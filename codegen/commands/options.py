"""The options and decorators every command group shares (click ``examples/repo``).

The root group puts a ``codegen.config.Config`` on ``ctx.obj``; commands take
it with ``pass_config``. One ``--tenant`` option, spelled the same everywhere.
"""

from __future__ import annotations

import click

from codegen.config import Config

pass_config = click.make_pass_decorator(Config)
tenant_option = click.option("--tenant", "-t", required=True, help="Tenant id, e.g. ACME.")
