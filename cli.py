"""The ``itemseal`` command: configuration, error handling, and the command groups.

Commands live beside the library they drive (``codegen/commands.py``,
``verify_api/commands.py``, ...); this module only builds the shared
configuration object and turns expected failures into one-line errors.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path

import click
import redis

from codegen import batch_commands, product_commands
from codegen import commands as codegen_commands
from codegen.exc import CodegenError
from codegen.keys import KeyStore, MasterKey, load_master_key
from codegen.tenants import TenantStore
from points_bridge import care_commands
from points_bridge import commands as points_commands
from points_bridge.exc import PointsError
from verify_api import admin_commands, alert_commands
from verify_api import commands as verify_commands
from verify_api.embedded import EmbeddedRedis, connect
from verify_api.exc import VerifyError

HOME_ENV = "ITEMSEAL_HOME"
REDIS_URL_ENV = "ITEMSEAL_REDIS_URL"


class Config:
    """What every command needs, built lazily so ``--help`` touches nothing."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.env = dict(os.environ if env is None else env)
        self.home = Path(self.env.get(HOME_ENV) or ".itemseal").absolute()
        self.redis_url = self.env.get(REDIS_URL_ENV) or None

    @property
    def embedded(self) -> EmbeddedRedis:
        return EmbeddedRedis(self.home, binary=self.env.get("ITEMSEAL_REDIS_SERVER"))

    @cached_property
    def redis(self) -> redis.Redis:
        return connect(self.home, self.redis_url)

    def master_key(self, *, create: bool = False) -> MasterKey:
        return load_master_key(self.home, self.env, create=create)

    @cached_property
    def key_store(self) -> KeyStore:
        return KeyStore(self.redis, self.master_key())

    @cached_property
    def tenants(self) -> TenantStore:
        return TenantStore(self.redis)


class ItemsealGroup(click.Group):
    """Show expected failures as one line, never a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (CodegenError, PointsError, VerifyError) as exc:
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


for group in (
    *codegen_commands.COMMANDS,
    *product_commands.COMMANDS,
    *batch_commands.COMMANDS,
    *verify_commands.COMMANDS,
    *points_commands.COMMANDS,
    *admin_commands.COMMANDS,
    *care_commands.COMMANDS,
    *alert_commands.COMMANDS,
):
    main.add_command(group)
