"""CLI commands for tenants, keys and code checks (registered by ``cli.py``)."""

from __future__ import annotations

import click

from codegen.commands.options import (
    Config,
    echo_json,
    echo_rows,
    iso_time,
    json_option,
    pass_config,
    tenant_option,
)
from codegen.times import iso

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
@json_option
@pass_config
def tenant_list(config: Config, as_json: bool) -> None:
    """List tenants: id, name, created at (tab-separated, with a header line)."""
    rows = [(t.tenant_id, t.name, iso_time(t.created_at)) for t in config.tenants.list()]
    header = ("tenant", "name", "created_at")
    if as_json:
        echo_json({"tenants": [dict(zip(header, row, strict=True)) for row in rows]})
    else:
        echo_rows(header, rows)


@tenant.command("show")
@click.argument("tenant_id")
@json_option
@pass_config
def tenant_show(config: Config, tenant_id: str, as_json: bool) -> None:
    """Show a tenant's settings (secrets as `(set)`), times in ISO-8601."""
    t = config.tenants.get(tenant_id)
    settings = {
        name: "(set)" if name in HIDDEN_SETTINGS else iso_time(value) if name.endswith("_at")
        else value for name, value in sorted(t.settings.items())
    }
    if as_json:
        echo_json(settings)
        return
    for name, value in settings.items():
        click.echo(f"{name}\t{value}")


@click.group()
def key() -> None:
    """List, rotate and revoke a tenant's HMAC keys.

    Every code carries the id of the key that signed it, so rotating never
    breaks old batches; revoking makes that key's codes answer `revoked`.
    """


@key.command("list")
@tenant_option
@json_option
@pass_config
def key_list(config: Config, tenant: str, as_json: bool) -> None:
    """List keys oldest first: key id, state, created, revoked (with a header line)."""
    header = ("key_id", "state", "created_at", "revoked_at")
    rows = [(k.key_id, k.state, iso(k.created_at), iso(k.revoked_at))
            for k in config.key_store.list(tenant)]
    if as_json:
        echo_json({"keys": [dict(zip(header, row, strict=True)) for row in rows]})
    else:
        echo_rows(header, rows)


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


COMMANDS = (tenant, key)
