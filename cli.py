"""The ``itemseal`` command: the root group, its error handling, and the command groups.

Commands live in a ``commands/`` subpackage beside the library they drive
(``codegen/commands/``, ``points_bridge/commands/``, ``verify_api/commands/``);
this module only builds the shared ``codegen.config.Config``, turns every
expected failure (an ``ItemsealError``) into one line on standard error, and
imports a command's module only when that command is asked for.
"""

from __future__ import annotations

import importlib

import click
import redis

from codegen.config import Config
from codegen.exc import ItemsealError

# Each top-level command and the module whose COMMANDS define it. A command's module is imported
# when the command runs (or a help page lists it): importing them all took ~350 ms of every
# command's start-up (`python -X importtime -c "import cli"`), most of a report's time.
LAZY_COMMANDS = {
    "tenant": "codegen.commands.tenants", "key": "codegen.commands.tenants",
    "product": "codegen.commands.products",
    "mint": "codegen.commands.batches", "batch": "codegen.commands.batches",
    "check": "verify_api.commands.check",
    "store": "verify_api.commands.server", "serve": "verify_api.commands.server",
    "campaign": "points_bridge.commands.points", "points": "points_bridge.commands.points",
    "bridge": "points_bridge.commands.points", "export": "points_bridge.commands.points",
    "import": "points_bridge.commands.points",
    "member": "points_bridge.commands.members",
    "token": "verify_api.commands.admin", "report": "verify_api.commands.admin",
    "segment": "points_bridge.commands.care", "sender": "points_bridge.commands.care",
    "optout": "points_bridge.commands.care", "care": "points_bridge.commands.care",
    "draw": "points_bridge.commands.care",
    "alerts": "verify_api.commands.alerts",
    "reward": "points_bridge.commands.rewards", "coupon": "points_bridge.commands.rewards",
    "staff": "verify_api.commands.staff",
    "shop": "points_bridge.commands.purchases", "purchase": "points_bridge.commands.purchases",
}  # fmt: skip


def _join_groups(module: str) -> None:
    """Add the subcommands other layers give a group, once its module is loaded."""
    if module == "codegen.commands.batches":  # voiding reads and writes scan state: verify_api's
        from codegen.commands import batches
        from verify_api.commands import batches as verify_batches

        batches.batch.add_command(verify_batches.void)
        batches.batch.add_command(verify_batches.batch_show)
    elif module == "codegen.commands.tenants":  # channel settings are sealed by the channels
        from codegen.commands import tenants
        from verify_api.commands import tenants as verify_tenants

        tenants.tenant.add_command(verify_tenants.tenant_set)
    elif module in ("points_bridge.commands.points", "points_bridge.commands.members"):
        # Purchases' commands that belong to the points, member and import groups.
        from points_bridge.commands import members, points, purchases

        points.points.add_command(purchases.rate)
        points.import_group.add_command(purchases.import_purchases_command)
        members.member.add_command(purchases.member_topup)
        members.member.add_command(purchases.member_stored_adjust)


class ItemsealGroup(click.Group):
    """Show expected failures as one line, never a traceback; load commands when used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands and name in LAZY_COMMANDS:
            module = LAZY_COMMANDS[name]
            for command in importlib.import_module(module).COMMANDS:
                self.add_command(command)
            _join_groups(module)
        return super().get_command(ctx, name)

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
    ctx.call_on_close(ctx.obj.close)


