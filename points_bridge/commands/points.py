"""CLI commands for points: campaigns, settings, reconcile, the CRM bridge, files.

Registered by ``cli.py`` through ``COMMANDS``; the member commands live in
``members.py``.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import click

from codegen.commands.options import (
    Config,
    echo_json,
    echo_rows,
    json_option,
    pass_config,
    progress_bar,
    read_secret,
    tenant_option,
)
from codegen.store.keyspace import PointsKeys
from codegen.words import plural
from points_bridge.archiving import DEFAULT_DAYS, archive_ledger
from points_bridge.campaigns import CampaignStore
from points_bridge.campaigns import to_json as campaign_json
from points_bridge.counters import recount
from points_bridge.crm import Bridge, CrmSecret, Webhook, standard_secret
from points_bridge.ledger import Ledger
from points_bridge.members import MemberStore
from points_bridge.reconcile import Reconciler
from points_bridge.rules import Campaign, multiplier_bp
from points_bridge.settings import SettingsStore
from points_bridge.transfer import FORMATS, export, import_members

IMPORT_SWITCH_INTERVAL = 0.0005
"""Seconds a thread holds the GIL while another waits, during ``import members``."""


# -- campaigns ---------------------------------------------------------------------------
@click.group()
def campaign() -> None:
    """Add, list and end a tenant's points campaigns (multipliers and bonuses).

    Rules and their precedence are in schemas/points-rules.md; a change
    applies to the next claim, without a restart.
    """


def _moment(text: str, zone) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r}: write 2025-06-01 or 2025-06-01T09:00") from None
    return value if value.tzinfo else value.replace(tzinfo=zone)


def _scope(values: tuple[str, ...]) -> frozenset[str] | None:
    return frozenset(values) if values else None


@campaign.command("add")
@tenant_option
@click.argument("campaign_id")
@click.option("--start", required=True, help="Start, ISO date/time (tenant time zone if none).")
@click.option("--end", required=True, help="End (exclusive), ISO date/time.")
@click.option("--multiplier", default="1", help="Points multiplier, e.g. 2 or 1.5.")
@click.option("--bonus", type=click.IntRange(min=0), default=0, help="Fixed extra points.")
@click.option("--region", "regions", multiple=True, help="Only claims from this region.")
@click.option("--tier", "tiers", multiple=True, help="Only members of this tier.")
@click.option("--sku", "skus", multiple=True, help="Only this product.")
@click.option("--budget", type=click.IntRange(min=0), help="Total extra points it may give.")
@pass_config
def campaign_add(config: Config, tenant: str, campaign_id: str, start, end, multiplier, bonus,
                 regions, tiers, skus, budget) -> None:
    """Add a campaign: a multiplier and/or a bonus in a time window, optionally scoped.

    \b
    Example:
      itemseal campaign add --tenant ACME double-june --start 2025-06-01 \\
        --end 2025-07-01 --multiplier 2 --budget 500000
      itemseal campaign add --tenant ACME sd-gift --start 2025-06-01 \\
        --end 2025-06-08 --bonus 20 --region SD --sku LIP-001
    """
    zone = SettingsStore(config.redis).get(tenant).timezone
    added = CampaignStore(config.redis, tenant).add(Campaign(
        campaign_id, _moment(start, zone), _moment(end, zone), multiplier_bp(multiplier), bonus,
        _scope(regions), _scope(tiers), _scope(skus), budget,
    ))
    click.echo(f"campaign {added.campaign.campaign_id} added")


@campaign.command("list")
@tenant_option
@json_option
@pass_config
def campaign_list(config: Config, tenant: str, as_json: bool) -> None:
    """List campaigns: id, window, multiplier, bonus, spent/budget, scope, ended.

    \b
    Example:
      itemseal campaign list --tenant ACME
      itemseal campaign list --tenant ACME --json
    """
    SettingsStore(config.redis).get(tenant)
    campaigns = CampaignStore(config.redis, tenant).list()
    if as_json:
        echo_json({"campaigns": [
            {**json.loads(campaign_json(c.campaign, c.ended_at)), "spent": c.spent}
            for c in campaigns.values()
        ]})
        return
    click.echo("campaign\tstarts_at\tends_at\tmultiplier\tbonus\tspent/budget\tscope\tended")
    for cid, c in campaigns.items():
        rule = c.campaign
        scope = " ".join(
            f"{name}={','.join(sorted(values))}"
            for name, values in (("region", rule.regions), ("tier", rule.tiers),
                                 ("sku", rule.skus)) if values
        )
        budget = "unlimited" if rule.budget is None else str(rule.budget)
        ended = f"ended {c.ended_at.isoformat()}" if c.ended_at else ""
        click.echo(
            f"{cid}\t{rule.starts_at.isoformat()}\t{rule.ends_at.isoformat()}"
            f"\tx{rule.multiplier_bp / 10_000:g}\t+{rule.bonus}\t{c.spent}/{budget}"
            f"\t{scope or '-'}\t{ended or '-'}"
        )


@campaign.command("end")
@tenant_option
@click.argument("campaign_id")
@pass_config
def campaign_end(config: Config, tenant: str, campaign_id: str) -> None:
    """End a campaign now; claims from this moment on no longer get it.

    \b
    Example:
      itemseal campaign end --tenant ACME double-june
    """
    ended = CampaignStore(config.redis, tenant).end(campaign_id)
    click.echo(f"campaign {campaign_id} ended at {ended.ended_at.isoformat()}")


# -- points settings and maintenance --------------------------------------------------------
@click.group()
def points() -> None:
    """Tenant points settings, and the jobs that keep points right."""


SETTING_OPTIONS = {
    "tiers": "Tier ladder, lowest first: silver:0,gold:1000,diamond:5000; each tier may add"
             " its till discount in percent and its purchase earn multiplier:"
             " silver:0,gold:1000:5,diamond:5000:12:1.5.",
    "tier_basis": "lifetime, trailing:DAYS (points earned in the last DAYS), or spend"
                  " (whole currency units spent on purchases, less refunds).",
    "earn_rate": "Purchase points per currency unit (default for every SKU), e.g. 1 or 0.5;"
                 " per SKU or category: itemseal points rate.",
    "daily_cap": "Points a member may earn per day; empty for no cap.",
    "birthday_multiplier": "Birthday multiplier, e.g. 2.",
    "birthday_bonus": "Fixed birthday points.",
    "expiry_months": "Points expire N months after the month earned; 0 = never.",
    "timezone": "IANA time zone of days (points, every report) and birthdays, e.g. Asia/Shanghai.",
    "restore": "On restoring a cancelled member: keep or forfeit the balance.",
}


def _setting_options(func):
    for name, text in reversed(SETTING_OPTIONS.items()):
        func = click.option(f"--{name.replace('_', '-')}", name, help=text)(func)
    return func


@points.command("config")
@tenant_option
@_setting_options
@click.option("--attribute", "attributes", multiple=True,
              help="Declare member attributes as NAME:TYPE (str, int, bool, date); replaces all.")
@json_option
@pass_config
def points_config(config: Config, tenant: str, attributes: tuple[str, ...], as_json: bool,
                  **settings) -> None:
    """Show or change a tenant's points settings; the next claim uses them.

    \b
    Example:
      itemseal points config --tenant ACME
      itemseal points config --tenant ACME --tiers silver:0,gold:2000 --daily-cap 500 \\
        --expiry-months 12 --attribute skin_type:str --attribute kids:int
    """
    store = SettingsStore(config.redis)
    changes = {k: v for k, v in settings.items() if v is not None}
    if changes:
        store.update(tenant, **changes)
    if attributes:
        declared = [tuple(a.split(":", 1)) if ":" in a else (a, "str") for a in attributes]
        store.declare_attributes(tenant, declared)
    shown = {name: value for name, value in sorted(store.raw(tenant).items())
             if name.startswith("points_") or name == "region"}
    if as_json:
        echo_json(shown)
        return
    for name, value in shown.items():
        click.echo(f"{name}\t{value}")


@points.command("reconcile")
@tenant_option
@click.option("--min-age", type=float, default=30.0, show_default=True,
              help="Leave claims younger than this many seconds to their own request.")
@click.option("--attempts", type=click.IntRange(min=1), default=5, show_default=True,
              help="Tries of a claim that fails for a passing reason (member busy, store"
                   " unreachable) before its segment waits for the next run.")
@pass_config
def points_reconcile(config: Config, tenant: str, min_age: float, attempts: int) -> None:
    """Credit claims a crash left uncredited, from the claims outboxes (idempotent).

    Safe to run at any time and as often as wished, e.g. from cron every
    minute: a claim already credited is not credited again. A passing failure
    is retried with backoff and, if it persists, the segment stops before that
    claim until the next run; a claim that can never be credited as it is
    (e.g. a phone that does not parse) is parked in the dead-letter list
    (`itemseal points dead`, `itemseal points replay`). Claims of members
    frozen when they claimed wait, and are credited once the member is
    unfrozen. Exit status 1 if a claim was parked or left unsettled.

    \b
    Example:
      itemseal points reconcile --tenant ACME
    """
    SettingsStore(config.redis).get(tenant)
    report = Reconciler(config.redis, tenant, min_age=min_age, attempts=attempts,
                        master=config.master_key()).run()
    click.echo(
        f"segments {report.segments}, claims {report.seen}, credited {report.credited}"
        f" ({report.points} points), already credited {report.duplicates},"
        f" waiting for unfreeze {report.pending}, waiting claims credited {report.settled},"
        f" failed {len(report.failed) + len(report.unsettled)} (dead-lettered"
        f" {len(report.failed)}, left for the next run {len(report.unsettled)})"
    )
    for entry_id, reason in report.failed:
        click.echo(f"dead-lettered\t{entry_id}\t{reason}", err=True)
    for entry_id, reason in report.unsettled:
        click.echo(f"unsettled\t{entry_id}\t{reason}", err=True)
    if report.failed or report.unsettled:
        raise SystemExit(1)


@points.command("dead")
@tenant_option
@pass_config
def points_dead(config: Config, tenant: str) -> None:
    """List claims reconcile parked for good: id, serial, outbox entry, parked at, reason.

    \b
    Example:
      itemseal points dead --tenant ACME
    """
    SettingsStore(config.redis).get(tenant)
    for d in Reconciler(config.redis, tenant).dead():
        click.echo(f"{d.dead_id}\t{d.serial}\t{d.outbox_entry}\t{_iso(d.at)}\t{d.reason}")


@points.command("replay")
@tenant_option
@click.argument("dead_ids", nargs=-1)
@pass_config
def points_replay(config: Config, tenant: str, dead_ids: tuple[str, ...]) -> None:
    """Credit parked claims again once the cause is fixed; all of them, or the ids given.

    A credited claim leaves the dead-letter list; one that fails again stays
    there with the new reason. Credits are idempotent by serial, so a claim
    credited meanwhile is not credited twice. Exit status 1 if one failed again.

    \b
    Example:
      itemseal points replay --tenant ACME
      itemseal points replay --tenant ACME 1700000000000-0
    """
    SettingsStore(config.redis).get(tenant)
    report = Reconciler(config.redis, tenant, master=config.master_key()).replay(dead_ids)
    click.echo(f"replayed {report.seen}: credited {report.credited} ({report.points} points),"
               f" already credited {report.duplicates}, waiting for unfreeze {report.pending},"
               f" still dead {len(report.failed)}")
    for dead_id, reason in report.failed:
        click.echo(f"still dead\t{dead_id}\t{reason}", err=True)
    if report.failed:
        raise SystemExit(1)


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


@points.command("expire")
@tenant_option
@pass_config
def points_expire(config: Config, tenant: str) -> None:
    """Remove expired points from every member now (credits and redemptions also do it).

    \b
    Example:
      itemseal points expire --tenant ACME
    """
    members = MemberStore(config.redis, tenant, master=config.master_key())
    members.settings()
    ledger = Ledger(config.redis, tenant)
    total = sum(ledger.expire_due(card) for card in members.cards() if members.get(card))
    click.echo(f"{plural(total, 'point')} expired")


@points.command("recount")
@tenant_option
@pass_config
def points_recount(config: Config, tenant: str) -> None:
    """Rebuild the counters behind `report tiers` and `report points` from every member.

    The scripts that change members and ledgers keep these counters, so the
    reports add up 16 small hashes instead of reading every member. A store
    written by a version before the counters needs one recount (until then
    the reports read every member, as before); run it while nothing else
    writes, e.g. right after the upgrade, before `itemseal serve`. It also
    lists the members an older version imported with a CRM's own card, so
    exports, segments and care runs find them.

    \b
    Example:
      itemseal points recount --tenant ACME
    """
    SettingsStore(config.redis).get(tenant)
    store = MemberStore(config.redis, tenant, master=config.master_key())
    counts = recount(config.redis, tenant, keep_crm_cards=store.keep_crm_cards)
    members = sum(n for field, n in counts.items() if field.startswith("m|"))
    click.echo(f"counted {plural(members, 'member')}")


@points.command("archive")
@tenant_option
@click.option("--older-than", "days", type=click.IntRange(min=0), default=DEFAULT_DAYS,
              show_default=True, metavar="DAYS",
              help="Move the entries posted more than DAYS days ago.")
@click.option("--dir", "directory",
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="An existing folder for the archive files [default: ITEMSEAL_HOME/archive].")
@json_option
@pass_config
def points_archive(config: Config, tenant: str, days: int, directory: Path | None,
                   as_json: bool) -> None:
    """Move old ledger entries out of Redis into Parquet files; history reads both.

    A member's ledger costs Redis ~1.5 KB while it holds entries; once they
    are archived the member costs ~400 B. `member show`, the office, `export
    ledger`, the reports, `points recount` and `store verify` read the files
    too; Redis lists them, so keep the folder where it was written (and in
    your backups). An idempotency key leaves with its entry: a request
    repeated with a key older than DAYS days posts again. Safe to re-run and
    to cut off: nothing is trimmed from Redis before its file is on disk.

    \b
    Example:
      itemseal points archive --tenant ACME --older-than 180
    """
    SettingsStore(config.redis).get(tenant)
    with progress_bar("members") as progress:
        report = archive_ledger(config.redis, tenant, cutoff=time.time() - days * 86400,
                                directory=directory or config.home / "archive",
                                master=config.master_key(), progress=progress)
    if as_json:
        echo_json({"run": report.run.to_json() if report.run else None,
                   "members_seen": report.members_seen,
                   "members_trimmed": report.members_trimmed,
                   "members_changed": report.members_changed})
        return
    if report.run is None:
        click.echo(f"nothing to archive: no entry is older than {plural(days, 'day')}")
        return
    click.echo(f"archived {plural(report.run.entries, 'entry', 'entries')} of"
               f" {plural(report.members_trimmed, 'member')} to {report.run.directory}")
    if report.members_changed:
        click.echo(f"{plural(report.members_changed, 'member')} changed meanwhile and stay"
                   " in Redis until the next run", err=True)


# -- the CRM bridge ------------------------------------------------------------------------
CRM_SECRET_ENV = "ITEMSEAL_CRM_SECRET"

@click.group()
def bridge() -> None:
    """Deliver every ledger entry and member change to the brand's CRM."""


@bridge.command("run")
@tenant_option
@click.option("--webhook", required=True, help="The CRM's URL; each event is POSTed as JSON.")
@click.option("--secret", help="HMAC secret; default the tenant's (`bridge secret`).")
@click.option("--once", is_flag=True, help="Deliver what is there, then exit (tests, cron).")
@click.option("--max-attempts", type=click.IntRange(min=1), default=5, show_default=True,
              help="Attempts before an event goes to the dead-letter stream.")
@click.option("--consumer", help="Consumer name in the group; default bridge-HOSTNAME.")
@pass_config
def bridge_run(config: Config, tenant: str, webhook: str, secret: str | None, once: bool,
               max_attempts: int, consumer: str | None) -> None:
    """Deliver events with a signature and an idempotency key; retry, park poison, resume.

    Each POST carries X-Itemseal-Signature (hex HMAC-SHA256 of the body) and
    Idempotency-Key. Stopped with Ctrl-C or SIGTERM, it resumes where it
    stopped.

    \b
    Example:
      itemseal bridge run --tenant ACME --webhook https://crm.acme.example/hooks/itemseal
      itemseal bridge run --tenant ACME --webhook http://localhost:9000/h --once
    """
    runner = _bridge(config, tenant, webhook, secret, consumer=consumer,
                     max_attempts=max_attempts)
    if once:
        stats = runner.drain()
    else:
        stopping: list[int] = []
        signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
        try:
            stats = runner.run(lambda: bool(stopping))
        except KeyboardInterrupt:
            return
    click.echo(f"delivered {stats.delivered}, retried {stats.retries}, dead-lettered "
               f"{stats.parked}")


@bridge.command("secret")
@tenant_option
@click.option("--set", "value",
              help="Use this secret (>= 16 chars; share it with the CRM). Shows in `ps`:"
                   " prefer --secret-stdin or --secret-env.")
@click.option("--secret-stdin", is_flag=True, help="Set the secret read from standard input.")
@click.option("--secret-env", is_flag=True,
              help=f"Set the secret held in the {CRM_SECRET_ENV} variable.")
@click.option("--new", is_flag=True, help="Make a new random secret.")
@click.option("--standard", is_flag=True,
              help="Show it as Standard Webhooks libraries take it (whsec_ + base64).")
@pass_config
def bridge_secret(config: Config, tenant: str, value: str | None, secret_stdin: bool,
                  secret_env: bool, new: bool, standard: bool) -> None:
    """Show, set or renew the tenant's webhook signing secret (made on first use).

    Deliveries are signed the Standard Webhooks way (webhook-id,
    webhook-timestamp, webhook-signature) and with X-Itemseal-Signature; a
    receiver using a Standard Webhooks library takes the --standard form.

    \b
    Example:
      itemseal bridge secret --tenant ACME
      itemseal bridge secret --tenant ACME --new
      itemseal bridge secret --tenant ACME --standard
      printf '%s\\n' "$CRM_SECRET" | itemseal bridge secret --tenant ACME --secret-stdin
    """
    value = read_secret(value, stdin=secret_stdin, env=CRM_SECRET_ENV if secret_env else None)
    SettingsStore(config.redis).get(tenant)
    store = CrmSecret(config.redis, tenant, config.master_key())
    secret = store.set(value.encode() if value else None) if value or new else store.ensure()
    click.echo(standard_secret(secret) if standard else secret.decode())


@bridge.command("dead")
@tenant_option
@json_option
@pass_config
def bridge_dead(config: Config, tenant: str, as_json: bool) -> None:
    """List events parked in the dead-letter stream: id, key, reason (with a header line).

    \b
    Example:
      itemseal bridge dead --tenant ACME
    """
    header = ("entry_id", "idempotency_key", "reason")
    rows = [(entry_id.decode(), f[b"idempotency_key"].decode(), f[b"reason"].decode())
            for entry_id, f in config.redis.xrange(PointsKeys(tenant).dead_letter)]
    if as_json:
        echo_json({"dead": [dict(zip(header, row, strict=True)) for row in rows]})
    else:
        echo_rows(header, rows)


@bridge.command("replay")
@tenant_option
@click.argument("entry_ids", nargs=-1)
@click.option("--webhook", required=True, help="The CRM's URL, as for `bridge run`.")
@click.option("--secret", help="HMAC secret; default the tenant's (`bridge secret`).")
@pass_config
def bridge_replay(config: Config, tenant: str, entry_ids: tuple[str, ...], webhook: str,
                  secret: str | None) -> None:
    """Send dead-lettered events again, once the CRM is fixed; all of them, or the ids given.

    Each keeps its idempotency key. A delivered event leaves the dead-letter
    stream; one refused again stays there with the new reason.

    \b
    Example:
      itemseal bridge replay --tenant ACME --webhook https://crm.acme.example/hooks/itemseal
      itemseal bridge replay --tenant ACME --webhook http://localhost:9000/h 1700000000000-0
    """
    stats = _bridge(config, tenant, webhook, secret).replay_dead(entry_ids)
    click.echo(f"delivered {stats.delivered}, still dead {stats.parked}")


def _bridge(config: Config, tenant: str, webhook: str, secret: str | None, **kw) -> Bridge:
    SettingsStore(config.redis).get(tenant)
    if secret is not None:
        read_secret(secret)
    key = secret.encode() if secret else CrmSecret(config.redis, tenant, config.master_key()).get()
    if not key:
        raise click.UsageError(
            f"no webhook secret: pass --secret or run `itemseal bridge secret --tenant {tenant}`"
        )
    return Bridge(config.redis, tenant, Webhook(webhook, key), **kw)


# -- files -------------------------------------------------------------------------------
@click.group("export")
def export_group() -> None:
    """Export members or the ledger to Parquet or CSV (schemas/points.py)."""


def _export_command(what: str, example: str) -> click.Command:
    @tenant_option
    @click.option("--format", "fmt", type=click.Choice(FORMATS), default=None,
                  help="File format [default: parquet; csv with --excel].")
    @click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
                  help="File to write.")
    @click.option("--excel", is_flag=True,
                  help="CSV for Excel: a UTF-8 BOM, and card and phone numbers as text"
                       ' (="..."), not 1E+11.')
    @pass_config
    def command(config: Config, tenant: str, fmt: str | None, out: Path, excel: bool) -> None:
        fmt = fmt or ("csv" if excel else "parquet")
        rows = export(config.redis, tenant, what, fmt, out, excel=excel,
                      master=config.master_key())
        click.echo(f"{plural(rows, what.removesuffix('s') + ' row')} written to {out}")

    command.__doc__ = f"Export the tenant's {what} to one file.\n\n\b\nExample:\n  {example}\n"
    return export_group.command(what)(command)


_export_command("members", "itemseal export members --tenant ACME --format csv --excel"
                           " --out m.csv")
_export_command("ledger", "itemseal export ledger --tenant ACME --out ledger.parquet")


@click.group("import")
def import_group() -> None:
    """Import members from the CRM, or a till's purchases (CSV or Parquet)."""


@import_group.command("members")
@tenant_option
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--encoding", help="The CSV file's encoding [default: found: a BOM, else UTF-8,"
                                 " else GBK as Chinese Excel saves it].")
@pass_config
def import_members_command(config: Config, tenant: str, file: Path, encoding: str | None,
                           ) -> None:
    """Create or update members from a file; bad rows are reported by line and skipped.

    Columns: phone (required), birthday, points (opening balance, once per
    member), attributes (a JSON object) and the tenant's declared attributes.
    A re-run of the same file changes nothing. Exit status 1 if a row failed.
    Rows go in batches of 2,000 (a progress bar shows on a terminal).
    CSV from Excel works as saved: "CSV UTF-8", or plain "CSV" (GBK on a
    Chinese Windows), and the ="..." cells of `export members --excel`.

    \b
    Example:
      itemseal import members --tenant ACME crm-members.csv
    """
    # The import's writer thread (member_import.BatchWriter) waits on redis-server while
    # this thread checks rows; at the default 5 ms switch interval it waited that long for
    # the GIL after each reply, and the server idled: ~15% of the rate
    # (benchmarks/bench_members.py). Restored for a caller in the same process (tests).
    interval = sys.getswitchinterval()
    sys.setswitchinterval(IMPORT_SWITCH_INTERVAL)
    try:
        with progress_bar("members") as progress:
            report = import_members(config.redis, tenant, file, encoding, progress=progress,
                                    master=config.master_key())
    finally:
        sys.setswitchinterval(interval)
    for where, reason in report.errors:
        click.echo(f"{file}: {where}: {reason}", err=True)
    click.echo(f"created {report.created}, updated {report.updated},"
               f" rejected {len(report.errors)}")
    if report.errors:
        raise SystemExit(1)


COMMANDS = (campaign, points, bridge, export_group, import_group)
