"""CLI commands for tenants, keys and code checks (registered by ``cli.py``)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import click

from codegen.checker import CodeChecker
from codegen.commands.options import Config, pass_config, read_secret, tenant_option

HIDDEN_SETTINGS = ("gateway_secret",)  # sealed; never printed, not even sealed
LIMIT_SETTINGS = ("rate_ip", "rate_phone", "rate_batch", "check_cap")
GATEWAY_SECRET_ENV = "ITEMSEAL_GATEWAY_SECRET"
CHANNEL_SETTINGS = (
    "sms_number", "gateway_secret", "language", "reply_format", "join_keyword", "balance_keyword",
)


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


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
        click.echo(f"{t.tenant_id}\t{t.name}\t{_when(t.created_at)}")


@tenant.command("show")
@click.argument("tenant_id")
@pass_config
def tenant_show(config: Config, tenant_id: str) -> None:
    """Show a tenant's settings."""
    t = config.tenants.get(tenant_id)
    for name, value in sorted(t.settings.items()):
        click.echo(f"{name}\t{'(set)' if name in HIDDEN_SETTINGS else value}")


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
@click.option("--gateway-secret",
              help="Secret the SMS/IVR gateways sign with (>= 16 chars); shows in `ps`:"
                   " prefer --secret-stdin or ITEMSEAL_GATEWAY_SECRET with --secret-env.")
@click.option("--secret-stdin", is_flag=True,
              help="Read the gateway secret from the first line of standard input.")
@click.option("--secret-env", is_flag=True,
              help="Read the gateway secret from the ITEMSEAL_GATEWAY_SECRET variable.")
@click.option("--language", type=click.Choice(["zh", "en"]), help="Replies and pages: zh or en.")
@click.option("--reply-format", type=click.Choice(["text", "twiml"]), help="Twilio SMS replies.")
@click.option("--join-keyword", help="SMS keyword to join as a member (default 888).")
@click.option("--balance-keyword", help="SMS keyword to ask for the balance (default 666).")
@click.option("--rate-ip", help="Checks per client IP: COUNT/SECONDS (e.g. 300/60) or off.")
@click.option("--rate-phone", help="Checks per member phone: COUNT/SECONDS or off.")
@click.option("--rate-batch", help="Codes per client IP on the batch route: COUNT/SECONDS or off.")
@click.option("--check-cap", help="Checks of a code after which answers say limit_reached.")
@click.option(
    "--template", "template_pairs", multiple=True,
    help="NAME=TEXT: a reply template (e.g. join=...); NAME= restores the default.",
)
@pass_config
def tenant_set(
    config: Config, tenant_id: str, template_pairs: tuple[str, ...], secret_stdin: bool,
    secret_env: bool, **settings: str | None
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
      itemseal tenant set ACME --rate-ip off --rate-phone 20/60 --check-cap 5
      printf '%s\n' "$SECRET" | itemseal tenant set ACME --secret-stdin

    The rate limits and the check cap are checked by the parser every worker
    reads them with, and apply within the workers' catalog cache time.
    """
    changes = {k: v for k, v in settings.items() if v is not None}
    secret = read_secret(changes.pop("gateway_secret", None), stdin=secret_stdin,
                         env=GATEWAY_SECRET_ENV if secret_env else None)
    if secret is not None:
        changes["gateway_secret"] = secret
    overrides = dict(_pair(p) for p in template_pairs)
    if not changes and not overrides:
        raise click.UsageError("nothing to set: give at least one option")
    channel = {k: changes.pop(k) for k in CHANNEL_SETTINGS if k in changes}
    limits = {k: changes.pop(k) for k in LIMIT_SETTINGS if k in changes}
    done: list[str] = []
    if limits:
        from verify_api.admin.limits import VerifyLimits  # the verify side reads them

        VerifyLimits(config.redis).update(tenant_id, **limits)
        done += list(limits)
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
@pass_config
def key_list(config: Config, tenant: str) -> None:
    """List keys oldest first: key id, state, created, revoked."""
    config.tenants.get(tenant)
    for k in config.key_store.list(tenant):
        click.echo(f"{k.key_id}\t{k.state}\t{_when(k.created_at)}\t{_when(k.revoked_at)}")


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
