"""``itemseal tenant set``: a tenant's settings, its channel settings among them.

It hangs on codegen's ``tenant`` group (``cli.py``) but lives here, because
the channel settings (SMS number, sealed gateway secret, templates) are the
verify side's (``verify_api/channels/config.py``).
"""

from __future__ import annotations

import click

from codegen.commands.options import Config, pass_config
from verify_api.channels.config import ChannelStore

CHANNEL_SETTINGS = (
    "sms_number", "gateway_secret", "language", "reply_format", "join_keyword", "balance_keyword",
)


@click.command("set")
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
