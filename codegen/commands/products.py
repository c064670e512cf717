"""CLI commands for a tenant's products (registered by ``cli.py``)."""

from __future__ import annotations

import json

import click

from codegen.commands.options import (
    Config,
    echo_json,
    echo_rows,
    json_option,
    pass_config,
    tenant_option,
)
from codegen.products import Product, ProductStore
from codegen.times import iso

sku_option = click.option("--sku", required=True, help="Stock-keeping unit, e.g. LIP-001.")


def _store(config: Config) -> ProductStore:
    return ProductStore(config.redis)


def _fields(**options: object) -> dict[str, object]:
    return {k: v for k, v in options.items() if v is not None}


@click.group()
def product() -> None:
    """Add and change the products a tenant mints codes for.

    A product carries the points a member earns with its first genuine
    check, and optionally a GTIN: its codes' QR URLs are then GS1 Digital
    Links (https://HOST/01/GTIN/21/CODE) on the host of the tenant's verify URL.

    \b
    Example:
      itemseal product add --tenant ACME --sku LIP-001 --name "Velvet lipstick" --points 10
      itemseal product list --tenant ACME
    """


@product.command("add")
@tenant_option
@sku_option
@click.option("--name", required=True, help="Display name, e.g. \"Velvet lipstick\".")
@click.option("--points", required=True, help="Points for the first genuine check (>= 0).")
@click.option("--gtin", help="GTIN-8, -12, -13 or -14 with its check digit; stored as 14 digits.")
@click.option("--description", help="Free text shown on the verify page.")
@click.option("--usage", help="How to use the product, shown on the verify page.")
@pass_config
def product_add(config: Config, tenant: str, sku: str, name: str, points: str, **extra) -> None:
    """Add a product to a tenant.

    \b
    Example:
      itemseal product add --tenant ACME --sku LIP-001 --name "Velvet lipstick" \\
          --points 10 --gtin 4006381333931
    """
    added = _store(config).add(tenant, sku, name=name, points=points, **_fields(**extra))
    gtin = f", GTIN {added.gtin}" if added.gtin else ""
    click.echo(f"product {added.sku} ({added.name}) added: {added.points} points{gtin}")


@product.command("list")
@tenant_option
@json_option
@pass_config
def product_list(config: Config, tenant: str, as_json: bool) -> None:
    """List products: SKU, points, GTIN, name (tab-separated, with a header line).

    \b
    Example:
      itemseal product list --tenant ACME
      itemseal product list --tenant ACME --json
    """
    products = _store(config).list(tenant)
    if as_json:
        echo_json({"products": [_record(p) for p in products]})
        return
    echo_rows(("sku", "points", "gtin", "name"),
              [(p.sku, p.points, p.gtin, p.name) for p in products])


@product.command("show")
@tenant_option
@click.argument("sku")
@json_option
@pass_config
def product_show(config: Config, tenant: str, sku: str, as_json: bool) -> None:
    """Show one product.

    \b
    Example:
      itemseal product show --tenant ACME LIP-001
    """
    p = _store(config).get(tenant, sku)
    if as_json:
        echo_json(_record(p))
        return
    for name, value in _rows(p):
        click.echo(f"{name}\t{value}")


def _record(p: Product) -> dict[str, object]:
    """The product as a client reads it: the stored record, times in ISO-8601."""
    record = json.loads(p.to_json())
    for stamp in ("created_at", "updated_at"):
        record[stamp] = iso(record[stamp])
    return record


def _rows(p: Product) -> list[tuple[str, object]]:
    record = _record(p)
    return [(k, "-" if record[k] in (None, "") else record[k]) for k in sorted(record)]


@product.command("set")
@tenant_option
@click.argument("sku")
@click.option("--name", help="Display name.")
@click.option("--points", help="Points for the first genuine check (>= 0).")
@click.option("--gtin", help="GTIN with its check digit; an empty string removes it.")
@click.option("--description", help="Free text shown on the verify page.")
@click.option("--usage", help="How to use the product.")
@pass_config
def product_set(config: Config, tenant: str, sku: str, **changes) -> None:
    """Change a product. Batches minted before keep the URLs they were printed with.

    \b
    Example:
      itemseal product set --tenant ACME LIP-001 --points 20
    """
    fields = _fields(**changes)
    if not fields:
        raise click.UsageError("nothing to set: give at least one option")
    _store(config).update(tenant, sku, **fields)
    click.echo(f"product {sku} updated: {', '.join(sorted(fields))}")


@product.command("set-points")
@tenant_option
@sku_option
@click.option("--points", required=True, help="Points for the first genuine check (>= 0).")
@pass_config
def product_set_points(config: Config, tenant: str, sku: str, points: str) -> None:
    """Set the points a product's first genuine check earns; the next claim uses them.

    \b
    Example:
      itemseal product set-points --tenant ACME --sku LIP-001 --points 20
    """
    changed = _store(config).update(tenant, sku, points=points)
    click.echo(f"product {sku}: {changed.points} points")


COMMANDS = (product,)
