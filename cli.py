"""The ``itemseal`` command: the root group, its error handling, and the command groups.

Commands live in a ``commands/`` subpackage beside the library they drive
(``codegen/commands/``, ``points_bridge/commands/``, ``verify_api/commands/``);
this module only builds the shared ``codegen.config.Config`` and turns every
expected failure (an ``ItemsealError``) into one line on standard error.
"""

from __future__ import annotations

import click
import redis

from codegen.commands import batches, products, tenants
from codegen.config import Config
from codegen.exc import ItemsealError
from points_bridge.commands import care, members, points, purchases
from points_bridge.commands import rewards as reward_commands
from verify_api.commands import admin, alerts, check, server, staff
from verify_api.commands import batches as verify_batches
from verify_api.commands import tenants as verify_tenants


class ItemsealGroup(click.Group):
    """Show expected failures as one line, never a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ItemsealError as exc:
            raise click.ClickException(str(exc)) from exc
        except redis.ConnectionError as exc:
            raise click.ClickException(f"cannot reach the store: {exc}") from exc


@click.group(cls=ItemsealGroup)
@click.version_option(package_name="itemseal")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Mint signed product codes, verify them, and credit member points.

    Configuration comes from the environment: ITEMSEAL_HOME (default
    ./.itemseal) holds the embedded redis-server and the master key file;
    ITEMSEAL_REDIS_URL points at an external Redis instead (nothing is
    started then; redis+cluster://HOST:PORT for a Redis Cluster);
    ITEMSEAL_MASTER_KEY (32 bytes, base64) overrides the key
    file.

    \b
    Example:
      itemseal tenant create ACME --name "Acme Cosmetics"
      itemseal check --tenant ACME "1234 5678 9012 3456 7890 1234"
    """
    ctx.obj = Config()


for module in (tenants, check, products, batches, server, points, members, admin, care, alerts,
               reward_commands, staff, purchases):
    for command in module.COMMANDS:
        main.add_command(command)
# The batch and tenant groups are codegen's; voiding reads and writes scan state, and the
# channel settings are sealed and indexed by the channels, which are verify_api's.
batches.batch.add_command(verify_batches.void)
batches.batch.add_command(verify_batches.batch_show)
tenants.tenant.add_command(verify_tenants.tenant_set)
# Purchases' commands that belong to the points, member and import groups.
points.points.add_command(purchases.rate)
points.import_group.add_command(purchases.import_purchases_command)
members.member.add_command(purchases.member_topup)
members.member.add_command(purchases.member_stored_adjust)
