"""CLI commands for brand managers: admin tokens (``itemseal token``) and reports."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import click
import pyarrow as pa
import pyarrow.parquet as pq

from codegen.commands.options import (
    Config,
    echo_json,
    echo_rows,
    json_option,
    pass_config,
    tenant_option,
)
from codegen.files import file_errors
from codegen.store.audit import AuditLog
from codegen.times import iso
from codegen.words import plural
from verify_api.admin.auth import TokenStore
from verify_api.admin.report_math import Table
from verify_api.admin.reports import BY, SMS_BY, Reports
from verify_api.admin.roles import ROLES, actions_of

FORMATS = ("table", "csv", "parquet")


@click.group()
def token() -> None:
    """Create, list and revoke admin API tokens (operator, manager, support, cashier)."""


@token.command("create")
@tenant_option
@click.option("--role", type=click.Choice(ROLES), required=True, help="What the token may do.")
@click.option("--label", default="", help="Who or what holds it, e.g. 'Li Wei, support'.")
@pass_config
def token_create(config: Config, tenant: str, role: str, label: str) -> None:
    """Create an admin token; it is shown once and stored only as a hash.

    \b
    Example:
      itemseal token create --tenant ACME --role manager --label "brand team"
      curl -H "Authorization: Bearer ist.ACME...." localhost:8080/v1/admin/tenants/ACME/products
    """
    secret, info = TokenStore(config.redis).create(tenant, role, label)
    AuditLog(config.redis, tenant).record("cli", "token.create", f"token/{info.token_id}",
                                          None, {"role": role, "label": label})
    click.echo(f"token {info.token_id} ({role}): {', '.join(actions_of(role))}", err=True)
    click.echo("shown once; keep it secret:", err=True)
    click.echo(secret)


@token.command("list")
@tenant_option
@json_option
@pass_config
def token_list(config: Config, tenant: str, as_json: bool) -> None:
    """List a tenant's tokens: id, role, label, created, revoked (never the token).

    \b
    Example:
      itemseal token list --tenant ACME
    """
    header = ("token_id", "role", "label", "created_at", "revoked_at")
    rows = [(info.token_id, info.role, info.label, iso(info.created_at), iso(info.revoked_at))
            for info in TokenStore(config.redis).list(tenant)]
    if as_json:
        echo_json({"tokens": [dict(zip(header, row, strict=True)) for row in rows]})
    else:
        echo_rows(header, rows)


@token.command("revoke")
@tenant_option
@click.argument("token_id")
@pass_config
def token_revoke(config: Config, tenant: str, token_id: str) -> None:
    """Revoke a token by its id: its next request is refused (401).

    \b
    Example:
      itemseal token revoke --tenant ACME tok_0123456789
    """
    info = TokenStore(config.redis).revoke(tenant, token_id)
    AuditLog(config.redis, tenant).record("cli", "token.revoke", f"token/{token_id}",
                                          None, {"revoked_at": iso(info.revoked_at)})
    click.echo(f"token {token_id} revoked")


# -- reports ---------------------------------------------------------------------------------
@click.group()
def report() -> None:
    """Reports on checks, counterfeits, suspicious codes, members, points and sales.

    Each prints a table, CSV or (with --out) a Parquet file. Days are the
    tenant's, in its time zone (points config --timezone, default Asia/Shanghai
    for a CN tenant): a check at 23:30 UTC counts on the next day in Shanghai.
    """


def output_options(func):
    func = click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
                        help="Write here instead of stdout (required for parquet).")(func)
    return click.option("--format", "fmt", type=click.Choice(FORMATS), default="table",
                        show_default=True, help="Output format.")(func)


def span_options(func):
    func = click.option("--to", "end", help="Last day, YYYY-MM-DD (default today in the "
                        "tenant's time zone, points config --timezone).")(func)
    return click.option("--from", "start", help="First day, YYYY-MM-DD (default 13 days "
                        "before --to).")(func)


def emit(table: Table, fmt: str, out: Path | None) -> None:
    """Print or write a report as an aligned table, CSV or Parquet."""
    if fmt == "parquet":
        if out is None:
            raise click.UsageError("--format parquet needs --out FILE")
        data = pa.Table.from_pylist(table.records(), schema=None) if table.rows else pa.table(
            {c: pa.array([], pa.string()) for c in table.columns})
        with file_errors(out, "write"):
            pq.write_table(data.replace_schema_metadata({"itemseal.report": table.name}),
                           out, compression="zstd")
        click.echo(f"{plural(len(table.rows), 'row')} written to {out}", err=True)
        return
    buffer = io.StringIO()
    if fmt == "csv":
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(table.columns)
        writer.writerows(["" if v is None else v for v in row] for row in table.rows)
    else:
        cells = [list(table.columns)] + [["-" if v is None else str(v) for v in row]
                                         for row in table.rows]
        widths = [max(len(r[i]) for r in cells) for i in range(len(table.columns))]
        for r in cells:
            buffer.write("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
            buffer.write("\n")
    if out is None:
        sys.stdout.write(buffer.getvalue())
    else:
        with file_errors(out, "write"):
            out.write_text(buffer.getvalue())


def _reports(config: Config, tenant: str, with_codes: bool = False,
             with_members: bool = False) -> Reports:
    """Reports that open only the keys they need: codes to re-sign, or the card key to
    walk every member (so a check report runs without the master key)."""
    return Reports(config.redis, tenant, key_store=config.key_store if with_codes else None,
                   master=config.master_key() if with_members else None)


@report.command("checks")
@tenant_option
@span_options
@click.option("--by", type=click.Choice(BY), default="day", show_default=True,
              help="One row per day, or totals per product, region (ISO code and name), channel, "
                   "or region source (declared, member, phone, none).")
@output_options
@pass_config
def report_checks(config: Config, tenant: str, start, end, by: str, fmt: str, out) -> None:
    """Consumer checks per day (by result), or per product, region, channel or region source.

    A check's region comes from the best source: an authenticated caller's
    declared region, else the member's chosen region, else the phone's home
    province (CN-JS 江苏 for +86 139 1234 ...); --by source counts which.

    \b
    Example:
      itemseal report checks --tenant ACME --from 2026-01-01 --to 2026-01-31
      itemseal report checks --tenant ACME --by region --format csv
    """
    reports = _reports(config, tenant)
    first, last = reports.span(start, end)
    emit(reports.checks(first, last, by), fmt, out)


@report.command("sms")
@tenant_option
@span_options
@click.option("--by", type=click.Choice(SMS_BY), default="kind", show_default=True,
              help="Count by day, kind (code, join, balance, redeem, draw, stop, feedback,"
                   " unknown), keyword, outcome (the reply sent) or campaign (replies to it).")
@output_options
@pass_config
def report_sms(config: Config, tenant: str, start, end, by: str, fmt: str, out) -> None:
    """Inbound SMS received (the log keeps `tenant set --sms-log-days`, default 180).

    \b
    Example:
      itemseal report sms --tenant ACME --by keyword
      itemseal report sms --tenant ACME --by campaign --from 2026-03-01
    """
    reports = _reports(config, tenant)
    first, last = reports.span(start, end)
    emit(reports.sms(first, last, by), fmt, out)


@report.command("counterfeits")
@tenant_option
@span_options
@output_options
@pass_config
def report_counterfeits(config: Config, tenant: str, start, end, fmt: str, out) -> None:
    """Counterfeit answers per region, with the share of that region's checks.

    \b
    Example:
      itemseal report counterfeits --tenant ACME --from 2026-01-01
    """
    reports = _reports(config, tenant)
    first, last = reports.span(start, end)
    emit(reports.counterfeits(first, last), fmt, out)


@report.command("suspicious")
@tenant_option
@click.option("--min-checks", type=click.IntRange(min=1), default=2, show_default=True,
              help="Leave out codes checked fewer times.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--codes/--no-codes", default=True, show_default=True,
              help="Print each code's digits (needs the master key).")
@output_options
@pass_config
def report_suspicious(config: Config, tenant: str, min_checks: int, limit: int, codes: bool,
                      fmt: str, out) -> None:
    """Codes checked many times, by several phones or regions: copied labels first.

    \b
    Example:
      itemseal report suspicious --tenant ACME --limit 20
      itemseal report suspicious --tenant ACME --format parquet --out suspects.parquet
    """
    emit(_reports(config, tenant, codes).suspicious(min_checks, limit), fmt, out)


@report.command("tiers")
@tenant_option
@click.option("--members", "members_file", type=click.Path(exists=True, path_type=Path),
              help="Read this `itemseal export members` Parquet file instead of the store.")
@output_options
@pass_config
def report_tiers(config: Config, tenant: str, members_file, fmt: str, out) -> None:
    """Members per tier and status.

    \b
    Example:
      itemseal report tiers --tenant ACME
      itemseal report tiers --tenant ACME --members members.parquet --format csv
    """
    emit(_reports(config, tenant, with_members=members_file is None).tiers(members_file),
         fmt, out)


@report.command("points")
@tenant_option
@click.option("--ledger", "ledger_file", type=click.Path(exists=True, path_type=Path),
              help="Read this `itemseal export ledger` Parquet file instead of the store.")
@output_options
@pass_config
def report_points(config: Config, tenant: str, ledger_file, fmt: str, out) -> None:
    """Points issued per product, and redeemed, adjusted and expired.

    \b
    Example:
      itemseal report points --tenant ACME
      itemseal report points --tenant ACME --ledger ledger.parquet --format parquet --out p.parquet
    """
    emit(_reports(config, tenant, with_members=ledger_file is None).points(ledger_file),
         fmt, out)


@report.command("sales")
@tenant_option
@span_options
@click.option("--by", default="day", show_default=True,
              help="Comma-separated, any of day, shop, product, tier: one row per value.")
@output_options
@pass_config
def report_sales(config: Config, tenant: str, start, end, by: str, fmt: str, out) -> None:
    """Sales and points of purchases (less refunds) by day, shop, product and tier.

    Days are the tenant's (points config --timezone), like the points' "today"
    and the other reports. Amounts are in fen; a purchase's bonuses show as the
    product (bonus).

    \b
    Example:
      itemseal report sales --tenant ACME --from 2026-12-01 --to 2026-12-07 --by day,shop
      itemseal report sales --tenant ACME --by product,tier --format csv
    """
    reports = _reports(config, tenant, with_members=True)
    first, last = reports.span(start, end)
    emit(reports.sales(first, last, by), fmt, out)


COMMANDS = (token, report)
