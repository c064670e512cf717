"""CLI commands for tenants, keys and code checks (registered by ``cli.py``)."""

from __future__ import annotations

import sys

import click

from codegen.checker import CodeChecker
from codegen.commands.options import Config, iso_time, pass_config, tenant_option

HIDDEN_SETTINGS = ("gateway_secret",)  # sealed; never printed, not even sealed


@click.group()
def tenant() -> None:
    """Create and configure tenants (the brands this deployment serves)."""


@tenant.command("create")
@click.argument("tenant_id")
@click.option("--name", required=True, help="The brand's display name.")
@click.option(
    "--verify-url",
    help="URL template for the QR code, with {tenant} and {code};"
    " default http://localhost:8080/t/{tenant}/v/{code}.",
)
@pass_config
def tenant_create(config: Config, tenant_id: str, name: str, verify_url: str | None) -> None:
    """Create a tenant with its first HMAC key.

    The first call on a machine also creates the master key file (mode 0600)
    in ITEMSEAL_HOME unless ITEMSEAL_MASTER_KEY is set: back it up, every
    tenant key is encrypted under it.

    \b
    Example:
      itemseal tenant create ACME --name "Acme Cosmetics"
    """
    config.master_key(create=True)
    created = config.tenants.create(tenant_id, name, verify_url)
    key = config.key_store.rotate(tenant_id)
    click.echo(f"tenant {created.tenant_id} ({created.name}) created with key {key.key_id}")


@tenant.command("list")
@pass_config
def tenant_list(config: Config) -> None:
    """List tenants: id, name, created at."""
    for t in config.tenants.list():
        click.echo(f"{t.tenant_id}\t{t.name}\t{iso_time(t.created_at)}")


@tenant.command("show")
@click.argument("tenant_id")
@pass_config
def tenant_show(config: Config, tenant_id: str) -> None:
    """Show a tenant's settings."""
    t = config.tenants.get(tenant_id)
    for name, value in sorted(t.settings.items()):
        click.echo(f"{name}\t{'(set)' if name in HIDDEN_SETTINGS else value}")


@click.group()
def key() -> None:
    """List, rotate and revoke a tenant's HMAC keys.

    Every code carries the id of the key that signed it, so rotating never
    breaks old batches; revoking makes that key's codes answer `revoked`.
    """


@key.command("list")
@tenant_option
@pass_config
def key_list(config: Config, tenant: str) -> None:
    """List keys oldest first: key id, state, created, revoked."""
    config.tenants.get(tenant)
    for k in config.key_store.list(tenant):
        click.echo(f"{k.key_id}\t{k.state}\t{iso_time(k.created_at)}\t{iso_time(k.revoked_at)}")


@key.command("rotate")
@tenant_option
@pass_config
def key_rotate(config: Config, tenant: str) -> None:
    """Add a new key; batches minted from now on are signed with it."""
    config.tenants.get(tenant)
    k = config.key_store.rotate(tenant)
    click.echo(f"tenant {tenant}: key {k.key_id} is now the signing key")


@key.command("revoke")
@tenant_option
@click.argument("key_id", type=click.IntRange(0, 9))
@pass_config
def key_revoke(config: Config, tenant: str, key_id: int) -> None:
    """Revoke a compromised key: its codes answer `revoked`, it signs nothing more."""
    config.tenants.get(tenant)
    config.key_store.revoke(tenant, key_id)
    click.echo(f"tenant {tenant}: key {key_id} revoked")


@click.command()
@tenant_option
@click.argument("codes", nargs=-1, required=True)
@pass_config
def check(config: Config, tenant: str, codes: tuple[str, ...]) -> None:
    """Check codes offline: format, check digit and tag, no scan is recorded.

    Prints one tab-separated line per code: the code as given, then `valid`
    (or `revoked`) with key id, serial and batch, or `mistyped`,
    `counterfeit` or `malformed`. Give `-` to read codes one per line from
    standard input.

    \b
    Example:
      itemseal check --tenant ACME "1234 5678 9012 3456 7890 1234"
      itemseal check --tenant ACME - < codes.txt
    """
    config.tenants.get(tenant)
    checker = CodeChecker(config.key_store, tenant, max_age=3600)
    find_batch = _batch_finder(config, tenant)
    lines = (line.rstrip("\r\n") for line in sys.stdin) if codes == ("-",) else iter(codes)
    out = sys.stdout
    for text in lines:
        if not text.strip():
            continue
        decoded = checker.decode(text)
        if decoded.authentic:
            batch = find_batch(decoded.serial) or "-"
            out.write(f"{text}\t{decoded.verdict}\t{decoded.key_id}\t{decoded.serial}\t{batch}\n")
        else:
            out.write(f"{text}\t{decoded.verdict}\n")


def _batch_finder(config: Config, tenant: str):
    """Return serial -> batch id (or None) for the tenant."""
    from codegen.batches import BatchRegistry

    return BatchRegistry(config.redis, tenant).batch_id_of


COMMANDS = (tenant, key, check)
