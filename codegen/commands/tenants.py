"""CLI commands for tenants, keys and code checks (registered by ``cli.py``)."""

from __future__ import annotations

import click

from codegen.commands.options import (
    Config,
    echo_json,
    echo_rows,
    json_option,
    pass_config,
    tenant_option,
)
from codegen.times import iso

HIDDEN_SETTINGS = ("gateway_secret",)  # sealed; never printed, not even sealed
CHANNEL_SETTINGS = (
    "sms_number", "gateway_secret", "language", "reply_format", "join_keyword", "balance_keyword",
)


def _when(ts: float | str | None) -> str:
    return iso(ts) or "-"


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
    rows = [(t.tenant_id, t.name, _when(t.created_at)) for t in config.tenants.list()]
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
        name: "(set)" if name in HIDDEN_SETTINGS else _when(value) if name.endswith("_at")
        else value for name, value in sorted(t.settings.items())
    }
    if as_json:
        echo_json(settings)
        return
    for name, value in settings.items():
        click.echo(f"{name}\t{value}")


@tenant.command("set")
@click.argument("tenant_id")
@click.option("--name", help="The brand's display name.")
@click.option("--verify-url", help="URL template for the QR code, with {tenant} and {code}.")
@click.option(
    "--region",
    callback=lambda ctx, param, value: _phone_region(value),
    help="Phone region (e.g. CN, the default) for member numbers typed without +CC.",
)
@click.option("--sms-number", help="The brand's SMS number or sub-port, digits (\"\" removes it).")
@click.option("--gateway-secret", help="Secret the SMS/IVR gateways sign with (>= 16 chars).")
@click.option("--language", type=click.Choice(["zh", "en"]), help="Replies and pages: zh or en.")
@click.option("--reply-format", type=click.Choice(["text", "twiml"]), help="Twilio SMS replies.")
@click.option("--join-keyword", help="SMS keyword to join as a member (default 888).")
@click.option("--balance-keyword", help="SMS keyword to ask for the balance (default 666).")
@click.option(
    "--template", "template_pairs", multiple=True,
    help="NAME=TEXT: a reply template (e.g. join=...); NAME= restores the default.",
)
@pass_config
def tenant_set(
    config: Config, tenant_id: str, template_pairs: tuple[str, ...], **settings: str | None
) -> None:
    """Change a tenant's settings, channel settings included.

    The SMS number maps inbound messages to the tenant (a gateway may append
    sub-port digits); the gateway secret checks the gateways' signatures and
    is stored sealed under the master key, never shown. Templates must fit
    one SMS at their fields' widest and use only their own fields.

    \b
    Example:
      itemseal tenant set ACME --verify-url "https://acme.example/t/{tenant}/v/{code}"
      itemseal tenant set ACME --region CN
      itemseal tenant set ACME --sms-number 106570216001 --gateway-secret SECRET --language zh
      itemseal tenant set ACME --template "join=Welcome! Card {card}."
    """
    changes = {k: v for k, v in settings.items() if v is not None}
    overrides = dict(_pair(p) for p in template_pairs)
    if not changes and not overrides:
        raise click.UsageError("nothing to set: give at least one option")
    channel = {k: changes.pop(k) for k in CHANNEL_SETTINGS if k in changes}
    done: list[str] = []
    if channel or overrides:
        from verify_api.channels.config import ChannelStore  # the verify side owns channels

        store = ChannelStore(config.redis, config.master_key())
        done = store.update(tenant_id, templates_=overrides, **channel)
    if changes:
        config.tenants.update(tenant_id, **changes)
    click.echo(f"tenant {tenant_id} updated: {', '.join(sorted([*changes, *done]))}")


def _pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise click.BadParameter(f"{text!r}: write NAME=TEXT", param_hint="--template")
    return name.strip(), value


def _phone_region(value: str | None) -> str | None:
    import phonenumbers

    if value is not None and value.upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise click.BadParameter(f"{value!r} is not a phone region such as CN or US")
    return None if value is None else value.upper()


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
