"""CLI commands for shops, purchases, earn rates and stored value.

``itemseal shop add|list|set``, ``itemseal purchase add|refund|list``,
``itemseal points rate``, ``itemseal member topup|stored-adjust`` and
``itemseal import purchases`` (the last three hung on their groups by
``cli.py``). Each parses, calls ``points_bridge/purchases.py`` and prints.
"""

from __future__ import annotations

from pathlib import Path

import click

from codegen.amounts import yuan
from codegen.commands.options import (
    Config,
    echo_json,
    echo_rows,
    iso_time,
    json_option,
    pass_config,
    progress_bar,
    tenant_option,
)
from codegen.words import plural
from points_bridge.purchase_import import import_purchases
from points_bridge.purchase_rules import Line
from points_bridge.purchases import EarnRateStore, PurchaseDesk, PurchaseRequest
from points_bridge.settings import SettingsStore
from points_bridge.shops import ShopStore

key_option = click.option(
    "--key", required=True,
    help="Idempotency key (e.g. the till's receipt number): the same key again does nothing"
         " more and prints the first result.")


# -- shops ----------------------------------------------------------------------------------
@click.group()
def shop() -> None:
    """The brand's shops (outlets), where purchases are made.

    A shop's region is what region-scoped campaigns match for its purchases.
    """


@shop.command("add")
@tenant_option
@click.argument("shop_id")
@click.option("--name", required=True, help="Shop name, e.g. 'Jinan Quancheng Rd'.")
@click.option("--region", default="", help="Region, e.g. Shandong (campaign scope, reports).")
@pass_config
def shop_add(config: Config, tenant: str, shop_id: str, name: str, region: str) -> None:
    """Add a shop.

    \b
    Example:
      itemseal shop add --tenant ACME JN-01 --name "Jinan Quancheng Rd" --region Shandong
    """
    added = ShopStore(config.redis, tenant).add(shop_id, name=name, region=region)
    click.echo(f"shop {added.shop_id} added: {added.name} ({added.region or 'no region'})")


@shop.command("list")
@tenant_option
@json_option
@pass_config
def shop_list(config: Config, tenant: str, as_json: bool) -> None:
    """List the tenant's shops.

    \b
    Example:
      itemseal shop list --tenant ACME
    """
    shops = ShopStore(config.redis, tenant).list()
    if as_json:
        echo_json([{"shop_id": s.shop_id, "name": s.name, "region": s.region,
                    "created_at": iso_time(s.created_at)} for s in shops])
        return
    echo_rows(("shop", "name", "region", "created"),
              [(s.shop_id, s.name, s.region, iso_time(s.created_at)) for s in shops])


@shop.command("set")
@tenant_option
@click.argument("shop_id")
@click.option("--name", help="New name.")
@click.option("--region", help="New region (purchases already made keep theirs).")
@pass_config
def shop_set(config: Config, tenant: str, shop_id: str, name: str | None,
             region: str | None) -> None:
    """Change a shop's name or region.

    \b
    Example:
      itemseal shop set --tenant ACME JN-01 --region Shandong
    """
    if name is None and region is None:
        raise click.UsageError("give --name, --region or both")
    changed = ShopStore(config.redis, tenant).set(shop_id, name=name, region=region)
    click.echo(f"shop {changed.shop_id}: {changed.name} ({changed.region or 'no region'})")


# -- purchases ------------------------------------------------------------------------------
def _line(text: str) -> Line:
    parts = text.split(":")
    if len(parts) == 2:
        parts.insert(1, "1")
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        raise click.BadParameter(f"{text!r}: write SKU:AMOUNT or SKU:QTY:AMOUNT, amount in"
                                 " fen (e.g. LIP-001:2:15800)")
    return Line(parts[0], int(parts[1]), int(parts[2]))


def _print_result(document: dict, as_json: bool) -> None:
    if as_json:
        document = {**document, "at": iso_time(document["at"])}
        echo_json(document)
        return
    what = document["kind"]
    again = " (already recorded: nothing changed)" if document["duplicate"] else ""
    click.echo(f"{what} {document['purchase_id']}{again}")
    for line in document.get("lines", []):
        click.echo(f"  line {line['line']}\t{line['sku']}\tx{line['qty']}"
                   f"\t{yuan(line['amount'])}\t{line['points']:+d} points")
    if document.get("bonus_points"):
        click.echo(f"  bonuses\t{document['bonus_points']:+d} points")
    click.echo(f"points {document['points']:+d}, paid with points"
               f" {document['paid_with_points']}, paid with stored value"
               f" {yuan(document['paid_with_stored_value'])}")
    discount = document.get("discount")
    if discount and discount["rate_bp"]:
        click.echo(f"tier {discount['tier']} discount {discount['rate_bp'] / 100:g}%:"
                   f" {yuan(discount['amount'])}")
    balances = document["balances"]
    click.echo(f"balance {balances['points']} points, stored value"
               f" {yuan(balances['stored_value'])}, tier {document['tier']}")


@click.group()
def purchase() -> None:
    """Record purchases at a shop and refund them; each earns points by the rules.

    Amounts are integer fen (1/100 of the currency unit). Earn rates:
    `itemseal points rate`; tiers with discounts: `itemseal points config --tiers`.
    """


@purchase.command("add")
@tenant_option
@click.option("--member", required=True, help="The member's phone or card number.")
@click.option("--shop", "shop_id", required=True, help="Shop id (itemseal shop list).")
@click.option("--line", "lines", multiple=True, required=True,
              help="SKU:QTY:AMOUNT (or SKU:AMOUNT), the line's total in fen; repeat per line.")
@click.option("--paid-with-points", type=click.IntRange(min=0), default=0, show_default=True,
              help="Points the member pays with.")
@click.option("--paid-with-stored-value", type=click.IntRange(min=0), default=0,
              show_default=True, help="Stored value (fen) the member pays with.")
@key_option
@json_option
@pass_config
def purchase_add(config: Config, tenant: str, member: str, shop_id: str, lines: tuple[str, ...],
                 paid_with_points: int, paid_with_stored_value: int, key: str,
                 as_json: bool) -> None:
    """Record one purchase; prints the points per line, the tier discount and balances.

    \b
    Example:
      itemseal purchase add --tenant ACME --member 13812345678 --shop JN-01 \\
        --line LIP-001:2:15800 --line CRM-002:1:9900 --key R-20261201-0042
    """
    request = PurchaseRequest(member=member, shop=shop_id, lines=tuple(map(_line, lines)),
                              idempotency_key=key, paid_with_points=paid_with_points,
                              paid_with_stored_value=paid_with_stored_value)
    _print_result(PurchaseDesk(config.redis, tenant).record(request).to_json(), as_json)


@purchase.command("refund")
@tenant_option
@click.argument("purchase_id")
@click.option("--line", "lines", type=click.IntRange(min=1), multiple=True,
              help="Line number to refund (1 is the first); repeat; none: the whole purchase.")
@click.option("--key", help="Idempotency key (default: the purchase and the lines).")
@json_option
@pass_config
def purchase_refund(config: Config, tenant: str, purchase_id: str, lines: tuple[int, ...],
                    key: str | None, as_json: bool) -> None:
    """Refund a purchase, whole or some lines: each line is refunded once.

    \b
    Example:
      itemseal purchase refund --tenant ACME 230074578089-1764583800000-0 --line 2
    """
    result = PurchaseDesk(config.redis, tenant).refund(
        purchase_id, list(lines) or None, idempotency_key=key)
    _print_result(result.to_json(), as_json)


@purchase.command("list")
@tenant_option
@click.option("--member", required=True, help="The member's phone or card number.")
@click.option("--count", type=click.IntRange(1, 1000), default=20, show_default=True)
@json_option
@pass_config
def purchase_list(config: Config, tenant: str, member: str, count: int, as_json: bool) -> None:
    """A member's purchases, refunds and stored-value movements, newest first.

    \b
    Example:
      itemseal purchase list --tenant ACME --member 13812345678
    """
    found = PurchaseDesk(config.redis, tenant).history(member, count)
    if as_json:
        echo_json([{**d, "at": iso_time(d["at"])} for d in found])
        return
    echo_purchases(found)


def echo_purchases(found: list[dict]) -> None:
    echo_rows(("at", "kind", "purchase", "shop", "amount", "points", "stored value after"),
              [(iso_time(d["at"]), d["kind"], d["purchase_id"], d["shop"],
                yuan(d["amount"]), f"{d['points']:+d}",
                yuan(d["balances"]["stored_value"])) for d in found])


# -- earn rates -----------------------------------------------------------------------------
@click.group("rate")
def rate() -> None:
    """Purchase earn rates: points per currency unit per SKU or category.

    A SKU's own rate wins over its category's, which wins over the tenant
    default (`itemseal points config --earn-rate`, 1 point per unit unless set).
    """


@rate.command("set")
@tenant_option
@click.argument("points_per_unit")
@click.option("--sku", help="The SKU the rate is for.")
@click.option("--category", help="The category the rate is for.")
@pass_config
def rate_set(config: Config, tenant: str, points_per_unit: str, sku: str | None,
             category: str | None) -> None:
    """Set the points one currency unit earns for a SKU or a category (e.g. 2 or 0.5).

    \b
    Example:
      itemseal points rate set --tenant ACME --category lipstick 2
      itemseal points rate set --tenant ACME --sku LIP-001 3
    """
    bp = EarnRateStore(config.redis, tenant).set_rate(sku=sku, category=category,
                                                     rate=points_per_unit)
    click.echo(f"{'sku ' + sku if sku else 'category ' + str(category)} earns"
               f" {bp / 10_000:g} points per unit")


@rate.command("category")
@tenant_option
@click.argument("sku")
@click.argument("category", default="")
@pass_config
def rate_category(config: Config, tenant: str, sku: str, category: str) -> None:
    """Put a SKU in a category (no CATEGORY: take it out of its category).

    \b
    Example:
      itemseal points rate category --tenant ACME LIP-001 lipstick
    """
    EarnRateStore(config.redis, tenant).set_category(sku, category)
    click.echo(f"{sku} is in category {category}" if category else f"{sku} has no category")


@rate.command("list")
@tenant_option
@json_option
@pass_config
def rate_list(config: Config, tenant: str, as_json: bool) -> None:
    """Show the default rate, the rates per category and SKU, and the SKUs' categories.

    \b
    Example:
      itemseal points rate list --tenant ACME
    """
    default = SettingsStore(config.redis).get(tenant).earn_rate_bp
    rates = EarnRateStore(config.redis, tenant).rates(default)
    if as_json:
        echo_json({"default_bp": rates.default_bp, "by_sku": dict(rates.by_sku),
                   "by_category": dict(rates.by_category),
                   "category_of": dict(rates.category_of)})
        return
    rows = [("default", "", f"{rates.default_bp / 10_000:g}")]
    rows += [("category", c, f"{bp / 10_000:g}") for c, bp in sorted(rates.by_category.items())]
    rows += [("sku", s, f"{bp / 10_000:g}") for s, bp in sorted(rates.by_sku.items())]
    rows += [("sku in", f"{s} -> {c}", "") for s, c in sorted(rates.category_of.items())]
    echo_rows(("scope", "name", "points per unit"), rows)


# -- stored value ---------------------------------------------------------------------------
@click.command("topup")
@tenant_option
@click.option("--member", required=True, help="The member's phone or card number.")
@click.option("--amount", type=click.IntRange(min=1), required=True, help="Amount in fen.")
@click.option("--payment-ref", required=True, help="The payment's reference (receipt, txn id).")
@key_option
@json_option
@pass_config
def member_topup(config: Config, tenant: str, member: str, amount: int, payment_ref: str,
                 key: str, as_json: bool) -> None:
    """Add stored value (prepaid balance) paid for outside itemseal.

    \b
    Example:
      itemseal member topup --tenant ACME --member 13812345678 --amount 50000 \\
        --payment-ref WX-4200001234 --key topup-WX-4200001234
    """
    result = PurchaseDesk(config.redis, tenant).topup(member, amount, payment_ref=payment_ref,
                                                      idempotency_key=key)
    _print_result(result.to_json(), as_json)


@click.command("stored-adjust")
@tenant_option
@click.option("--member", required=True, help="The member's phone or card number.")
@click.option("--amount", type=int, required=True, help="Fen; negative removes (never below 0).")
@click.option("--reason", required=True, help="Why (kept in the ledger).")
@key_option
@json_option
@pass_config
def member_stored_adjust(config: Config, tenant: str, member: str, amount: int, reason: str,
                         key: str, as_json: bool) -> None:
    """Correct a member's stored value, with a reason.

    \b
    Example:
      itemseal member stored-adjust --tenant ACME --member 13812345678 --amount -500 \\
        --reason "double top-up" --key fix-1
    """
    result = PurchaseDesk(config.redis, tenant).adjust_stored(member, amount, reason=reason,
                                                              idempotency_key=key)
    _print_result(result.to_json(), as_json)


# -- import ---------------------------------------------------------------------------------
@click.command("purchases")
@tenant_option
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_config
def import_purchases_command(config: Config, tenant: str, file: Path) -> None:
    """Import a till's purchases (CSV or Parquet), once: a re-run changes nothing.

    One row per line: receipt, member (phone or card), shop, sku, qty, amount
    (the line's total in fen), and optionally at (ISO time with offset),
    paid_with_points, paid_with_stored_value. Rows of one receipt are one
    purchase. A bad row is reported with its line number and its receipt is
    left out; the rest goes in. Exit status 1 if a row failed.

    \b
    Example:
      itemseal import purchases --tenant ACME till-JN-01-20261201.csv
    """
    with progress_bar("purchases") as progress:
        report = import_purchases(config.redis, tenant, file, progress=progress)
    for where, reason in report.errors:
        click.echo(f"{file}: {where}: {reason}", err=True)
    click.echo(f"posted {plural(report.posted, 'purchase')} ({report.points} points),"
               f" already in {report.duplicates}, rejected {len(report.errors)}")
    if report.errors:
        raise SystemExit(1)


COMMANDS = (shop, purchase)
