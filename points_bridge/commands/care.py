"""CLI for customer care: segments, the outbound sender, opt-outs, care runs, draws.

Registered by ``cli.py`` through ``COMMANDS``. Each command parses, calls the
library (``segments.py``, ``outbound.py``, ``care.py``, ``draws.py``) and prints.
"""

from __future__ import annotations

import json
import time

import click

from codegen.commands.options import (
    Config,
    echo_json,
    echo_rows,
    json_option,
    pass_config,
    read_secret,
    tenant_option,
)
from codegen.store.audit import AuditLog
from codegen.times import iso
from codegen.words import plural
from points_bridge.outreach.care import Care
from points_bridge.outreach.draws import Draws
from points_bridge.outreach.segments import Segment, preview
from points_bridge.outreach.sms_campaigns import SmsCampaigns
from points_bridge.sms.optout import OptOuts, phone_of
from points_bridge.sms.outbound import Dispatcher, Outbox
from points_bridge.sms.outbound_config import OutboundSettings


def segment_options(func):
    """The segment filters, shared by ``segment preview`` and ``sender campaign``."""
    options = [
        click.option("--tier", "tiers", multiple=True, help="Member tier (repeatable)."),
        click.option("--region", "regions", multiple=True, help="Region (repeatable)."),
        click.option("--points-min", type=int, help="Balance at least."),
        click.option("--points-max", type=int, help="Balance at most."),
        click.option("--birthday-month", type=click.IntRange(1, 12), help="Birthday month."),
        click.option("--no-check-days", type=int, help="No credited check for N days."),
        click.option("--checked-within-days", type=int, help="A credited check in N days."),
        click.option("--sku", "skus", multiple=True, help="Checked this product (repeatable)."),
        click.option("--attr", "attrs", multiple=True, help="Attribute NAME=VALUE."),
        click.option("--segment-json", help="The whole segment as JSON instead."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def build_segment(kw: dict) -> Segment:
    attrs = {}
    for item in kw.pop("attrs", ()):
        name, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r}: write NAME=VALUE", param_hint="--attr")
        attrs[name] = value
    data = {k: (list(v) if isinstance(v, tuple) else v) for k, v in kw.items()
            if v not in (None, ())}
    return Segment.parse({**data, "attributes": attrs})


def _segment(kw: dict) -> Segment:
    raw = kw.get("segment_json")
    if raw:
        try:
            return Segment.parse(json.loads(raw))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--segment-json") from None
    kw.pop("segment_json", None)
    return build_segment(kw)


@click.group()
def segment() -> None:
    """Member segments: count and sample members before anything is sent."""


@segment.command("preview")
@tenant_option
@segment_options
@click.option("--sample", default=10, show_default=True, help="Members to show.")
@json_option
@pass_config
def segment_preview(config: Config, tenant: str, sample: int, as_json: bool, **kw) -> None:
    """Count the members in a segment and show a sample; nothing is sent.

    \b
    Example:
      itemseal segment preview --tenant ACME --tier gold --region Zhejiang --no-check-days 90
    """
    seg = _segment(kw)
    count, kept = preview(config.redis, tenant, seg, int(time.time()), sample,
                           master=config.master_key())
    rows = [(m.card, m.phone, m.tier, m.balance) for m in kept]
    header = ("card", "phone", "tier", "balance")
    if as_json:
        echo_json({"count": count, "sample": [dict(zip(header, r, strict=True)) for r in rows]})
        return
    click.echo(plural(count, "member"))
    if rows:
        echo_rows(header, rows)


@click.group()
def sender() -> None:
    """The outbound SMS sender: settings, credit, campaigns, the send loop, reports."""


@sender.command("set")
@tenant_option
@click.option("--sender", "kind", type=click.Choice(["file", "http"]), help="Sender kind.")
@click.option("--url", help="HTTP gateway URL.")
@click.option("--template", help="JSON payload template ({phone} {text} {id} {tenant}).")
@click.option("--id-field", help="Field of the gateway's answer with its message id.")
@click.option("--auth-header",
              help="'Name: value' sent to the gateway (sealed at rest; value >= 16 chars)."
                   " Shows in `ps`: prefer --secret-stdin or --secret-env.")
@click.option("--secret-stdin", is_flag=True, help="Read the auth header from standard input.")
@click.option("--secret-env", is_flag=True,
              help="Read the auth header from the ITEMSEAL_SENDER_AUTH variable.")
@click.option("--path", help="JSONL file of the file sender.")
@click.option("--rate", type=int, help="Messages per second (all runners together).")
@click.option("--quiet", help="Quiet hours HH:MM-HH:MM, tenant time; '' for none.")
@click.option("--cost", type=int, help="Credit units one message costs.")
@pass_config
def sender_set(config: Config, tenant: str, kind, auth_header, secret_stdin: bool,
               secret_env: bool, **kw) -> None:
    """Change a tenant's outbound settings; print them (never the auth header).

    \b
    Example:
      printf '%s\\n' "Authorization: Bearer $TOKEN" | itemseal sender set --tenant ACME \\
        --sender http --url https://sms.example/send --secret-stdin --rate 20 \\
        --quiet 21:00-08:00 --cost 5
    """
    if secret_stdin or secret_env:
        auth_header = read_secret(auth_header, stdin=secret_stdin,
                                  env="ITEMSEAL_SENDER_AUTH" if secret_env else None)
    changes = {k: v for k, v in kw.items() if v is not None}
    if kind:
        changes["sender"] = kind
    settings = OutboundSettings(config.redis, tenant, config.master_key())
    done = settings.update(changes, auth=auth_header)
    AuditLog(config.redis, tenant).record("cli", "sender.set", "sender", None, done.public())
    click.echo(json.dumps(done.public(), ensure_ascii=False))


@sender.command("credit")
@tenant_option
@click.option("--add", type=int, default=0, help="Units to add (negative takes away).")
@pass_config
def sender_credit(config: Config, tenant: str, add: int) -> None:
    """Show or top up a tenant's SMS credit (units, e.g. fen).

    A top-up queues again the messages refused earlier for lack of credit.

    \b
    Example:
      itemseal sender credit --tenant ACME --add 10000
    """
    settings = OutboundSettings(config.redis, tenant)
    if add:
        left = settings.top_up(add)
        AuditLog(config.redis, tenant).record("cli", "sender.credit", "credit", None,
                                              {"added": add, "credit": left})
        if add > 0:
            requeued = Outbox(config.redis, tenant).requeue_no_credit()
            if requeued:
                click.echo(f"{requeued} messages refused for lack of credit queued again",
                           err=True)
    click.echo(settings.credit())


@sender.command("campaign")
@tenant_option
@segment_options
@click.option("--text", required=True, help="The SMS; {card} {balance} {tier} are filled.")
@click.option("--key", help="Idempotency key: the same key never sends twice.")
@pass_config
def sender_campaign(config: Config, tenant: str, text: str, key, **kw) -> None:
    """Queue an SMS campaign to a segment (preview it first with segment preview).

    \b
    Example:
      itemseal sender campaign --tenant ACME --tier gold --no-check-days 90 \\
        --text "We miss you: double points this week" --key spring-2026
    """
    campaigns = SmsCampaigns(config.redis, tenant, master=config.master_key())
    campaign = campaigns.send(_segment(kw), text, key)
    if not campaign.duplicate:
        AuditLog(config.redis, tenant).record("cli", "sms_campaign.send",
                                              f"sms_campaign/{campaign.campaign_id}", None,
                                              campaign.to_json())
    click.echo(json.dumps(campaign.to_json(), ensure_ascii=False))


@sender.command("status")
@tenant_option
@click.argument("campaign_id")
@pass_config
def sender_status(config: Config, tenant: str, campaign_id: str) -> None:
    """Show a campaign's counts: queued, sent, delivered, failed, skipped, spent.

    \b
    Example:
      itemseal sender status --tenant ACME sc1a2b3c4d5e6
    """
    click.echo(json.dumps(SmsCampaigns(config.redis, tenant).get(campaign_id).to_json(),
                          ensure_ascii=False))


@sender.command("report")
@tenant_option
@pass_config
def sender_report(config: Config, tenant: str) -> None:
    """Report sent, failed and spent, in total and per campaign or kind, and the credit.

    \b
    Example:
      itemseal sender report --tenant ACME
    """
    click.echo(json.dumps(Outbox(config.redis, tenant).report(), ensure_ascii=False))


@sender.command("run")
@tenant_option
@click.option("--every", type=float, help="Keep polling every N seconds (a daemon).")
@click.option("--max", "max_messages", type=int, help="Stop after N messages.")
@pass_config
def sender_run(config: Config, tenant: str, every, max_messages) -> None:
    """Send the tenant's queued messages at its rate (safe to run on several hosts).

    \b
    Example:
      itemseal sender run --tenant ACME            # until the queues are empty
      itemseal sender run --tenant ACME --every 1  # as a service
    """
    settings = OutboundSettings(config.redis, tenant, config.master_key()).get()
    dispatcher = Dispatcher(config.redis, tenant, settings.build(config.home), settings)
    done = dispatcher.run(max_messages=max_messages, idle_seconds=every)
    click.echo(json.dumps(done))


@click.group()
def optout() -> None:
    """Phones that asked not to be texted (TD/STOP), per tenant."""


@optout.command("add")
@tenant_option
@click.argument("phone")
@pass_config
def optout_add(config: Config, tenant: str, phone: str) -> None:
    """Opt a phone out of every message of the tenant.

    \b
    Example:
      itemseal optout add --tenant ACME 13812345678
    """
    e164 = phone_of(config.redis, tenant, phone)
    OptOuts(config.redis, tenant).opt_out(e164)
    AuditLog(config.redis, tenant).record("cli", "optout.add", f"phone/{e164}")
    click.echo(f"{e164} opted out")


@optout.command("remove")
@tenant_option
@click.argument("phone")
@pass_config
def optout_remove(config: Config, tenant: str, phone: str) -> None:
    """Opt a phone back in (the consumer asked; texting the join keyword does it too).

    \b
    Example:
      itemseal optout remove --tenant ACME 13812345678
    """
    e164 = phone_of(config.redis, tenant, phone)
    found = OptOuts(config.redis, tenant).opt_in(e164)
    AuditLog(config.redis, tenant).record("cli", "optout.remove", f"phone/{e164}")
    click.echo(f"{e164} opted in" if found else f"{e164} was not opted out")


@optout.command("list")
@tenant_option
@json_option
@pass_config
def optout_list(config: Config, tenant: str, as_json: bool) -> None:
    """List the opted-out phones and when they opted out (with a header line).

    \b
    Example:
      itemseal optout list --tenant ACME
    """
    rows = [(phone, iso(at)) for phone, at in sorted(OptOuts(config.redis, tenant).all().items())]
    if as_json:
        echo_json({"optouts": [{"phone": phone, "at": at} for phone, at in rows]})
    else:
        echo_rows(("phone", "opted_out_at"), rows)


@click.group()
def care() -> None:
    """Automatic care: birthday, reminder, tier and expiry messages."""


@care.command("set")
@tenant_option
@click.option("--json", "raw", required=True, help='e.g. {"birthday": {"on": true}}')
@pass_config
def care_set(config: Config, tenant: str, raw: str) -> None:
    """Change the care settings (JSON, per kind: on, text, days).

    \b
    Example:
      itemseal care set --tenant ACME --json '{"reminder": {"on": true, "days": 60}}'
    """
    try:
        changes = json.loads(raw)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--json") from None
    done = Care(config.redis, tenant).configure(changes)
    AuditLog(config.redis, tenant).record("cli", "care.set", "care", None, done)
    click.echo(json.dumps(done, ensure_ascii=False))


@care.command("run")
@tenant_option
@click.option("--every", type=click.FloatRange(min=1),
              help="Run again every N seconds (a service).")
@pass_config
def care_run(config: Config, tenant: str, every: float | None) -> None:
    """Queue the care messages due now; safe on several hosts at once (each sent once).

    \b
    Example:
      itemseal care run --tenant ACME && itemseal sender run --tenant ACME
      itemseal care run --tenant ACME --every 3600     # as a service
    """
    care = Care(config.redis, tenant, master=config.master_key())
    while True:
        click.echo(json.dumps(care.run()))
        if every is None:
            return
        time.sleep(every)


@click.group()
def draw() -> None:
    """Keyword draws: members text KEYWORD#ANSWER; a seeded, reproducible pick."""


@draw.command("open")
@tenant_option
@click.option("--keyword", required=True, help="What entrants text before '#', e.g. cj.")
@click.option("--answer", required=True, help="The right answer.")
@click.option("--winners", default=1, show_default=True, help="How many win.")
@click.option("--prize", default="", help="The SMS winners get.")
@pass_config
def draw_open(config: Config, tenant: str, keyword, answer, winners, prize) -> None:
    """Open a draw members enter by SMS with KEYWORD#ANSWER.

    \b
    Example:
      itemseal draw open --tenant ACME --keyword cj --answer blue --winners 3 \\
        --prize "You won a gift box: show this SMS at the counter"
    """
    found = Draws(config.redis, tenant).open(keyword, answer, winners, prize)
    AuditLog(config.redis, tenant).record("cli", "draw.open", f"draw/{found.keyword}", None,
                                          found.to_json())
    click.echo(json.dumps(found.to_json(), ensure_ascii=False))


@draw.command("close")
@tenant_option
@click.option("--keyword", required=True, help="The draw's keyword.")
@click.option("--seed", help="Seed of the pick (default: random, recorded in the audit log).")
@pass_config
def draw_close(config: Config, tenant: str, keyword: str, seed) -> None:
    """Pick the winners among the right answers and text them; the seed is audited.

    \b
    Example:
      itemseal draw close --tenant ACME --keyword cj
    """
    found, record = Draws(config.redis, tenant).close(keyword, seed)
    AuditLog(config.redis, tenant).record("cli", "draw.close", f"draw/{found.keyword}", None,
                                          record)
    click.echo(json.dumps(record, ensure_ascii=False))


@draw.command("show")
@tenant_option
@click.option("--keyword", required=True, help="The draw's keyword.")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON document (what it prints anyway; for scripts' symmetry).")
@pass_config
def draw_show(config: Config, tenant: str, keyword: str, as_json: bool) -> None:
    """Show a draw as one JSON document: status, entries, and after closing seed and winners.

    \b
    Example:
      itemseal draw show --tenant ACME --keyword cj
    """
    click.echo(json.dumps(Draws(config.redis, tenant).get(keyword).to_json(),
                          ensure_ascii=False))


COMMANDS = (segment, sender, optout, care, draw)
