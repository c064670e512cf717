"""``itemseal tenant set``: a tenant's settings, its channel settings among them.

It hangs on codegen's ``tenant`` group (``cli.py``) but lives here, because
the channel settings (SMS number, sealed gateway secret, templates) are the
verify side's (``verify_api/channels/config.py``).
"""

from __future__ import annotations

import click

from codegen.commands.options import Config, pass_config, read_secret
from verify_api.admin.limits import VerifyLimits
from verify_api.channels.config import ChannelStore

LIMIT_SETTINGS = ("rate_ip", "rate_phone", "rate_batch", "check_cap")
GATEWAY_SECRET_ENV = "ITEMSEAL_GATEWAY_SECRET"
CHANNEL_SETTINGS = (
    "sms_number", "sms_allow_ips", "gateway_secret", "language", "reply_format", "join_keyword",
    "balance_keyword", "sms_log_days",
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
@click.option("--sms-callback-token", type=click.Choice(["new"]),
              help="Make a new secret token for the Aliyun/Tencent callback URLs (the old one"
                   " stops working); the URLs to paste into the consoles are shown once.")
@click.option("--sms-allow-ips", metavar="CIDRS",
              help="Addresses the Aliyun/Tencent callbacks may come from, comma-separated CIDRs"
                   " (\"\" allows any).")
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
@click.option("--sms-log-days", type=click.IntRange(1, 3650),
              help="Days the inbound SMS log keeps a message (default 180).")
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
    secret_env: bool, sms_callback_token: str | None, **settings: str | None
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
      itemseal tenant set ACME --sms-callback-token new --sms-allow-ips 203.0.113.0/24
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
    if not changes and not overrides and not sms_callback_token:
        raise click.UsageError("nothing to set: give at least one option")
    channel = {k: changes.pop(k) for k in CHANNEL_SETTINGS if k in changes}
    limits = {k: changes.pop(k) for k in LIMIT_SETTINGS if k in changes}
    done: list[str] = []
    if limits:
        VerifyLimits(config.redis).update(tenant_id, **limits)
        done += list(limits)
    if channel or overrides:
        store = ChannelStore(config.redis, config.master_key())
        done += store.update(tenant_id, templates_=overrides, **channel)
    if changes:
        config.tenants.update(tenant_id, **changes)
    token = None
    if sms_callback_token:
        token = ChannelStore(config.redis, config.master_key()).new_callback_token(tenant_id)
        done.append("sms_callback_token")
    click.echo(f"tenant {tenant_id} updated: {', '.join(sorted([*changes, *done]))}")
    if token is not None:
        base = _site(config.tenants.get(tenant_id).verify_url)
        click.echo(f"SMS callback token (shown once, keep it secret): {token}")
        click.echo(f"  Aliyun (上行短信 HTTP 批量推送):  {base}/v1/sms/aliyun/{token}")
        click.echo(f"  Tencent Cloud (回复短信回调):     {base}/v1/sms/tencent/{token}")


def _site(verify_url: str) -> str:
    """The scheme and host of the tenant's verify URL: where its server answers."""
    from urllib.parse import urlsplit

    parts = urlsplit(verify_url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else "https://HOST"


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
