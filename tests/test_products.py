"""Products: GTIN and points validation, the store, and the `itemseal product` commands."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from cli import main
from codegen.exc import ProductError, ProductExists, UnknownProduct, UnknownTenant
from codegen.products import (
    ProductStore,
    check_points,
    check_sku,
    gs1_check_digit,
    normalize_gtin,
)
from codegen.store.keyspace import TenantKeys

gtin_bodies = st.sampled_from([7, 11, 12, 13]).flatmap(
    lambda n: st.text("0123456789", min_size=n, max_size=n)
)


@pytest.fixture
def products(redis_client, key_store_factory) -> ProductStore:
    key_store_factory("ACME")
    return ProductStore(redis_client, clock=lambda: 1_700_000_000.0)


@pytest.mark.parametrize(
    "gtin, expected",
    [
        ("4006381333931", "04006381333931"),  # GTIN-13
        ("036000291452", "00036000291452"),  # GTIN-12 (UPC-A)
        ("96385074", "00000096385074"),  # GTIN-8
        ("10012345678902", "10012345678902"),  # GTIN-14
        (" 4006-3813-33931 ", "04006381333931"),
    ],
)
def test_gtin_is_normalised_to_14_digits(gtin, expected):
    assert normalize_gtin(gtin) == expected


@given(gtin_bodies)
def test_every_valid_gtin_round_trips(body):
    gtin = body + str(gs1_check_digit(body))
    assert normalize_gtin(gtin) == gtin.zfill(14)
    assert normalize_gtin(gtin.zfill(14)) == gtin.zfill(14)  # leading zeros keep it valid


@given(gtin_bodies, st.data())
def test_every_single_digit_slip_in_a_gtin_is_refused(body, data):
    gtin = body + str(gs1_check_digit(body))
    pos = data.draw(st.integers(0, len(gtin) - 1))
    wrong = data.draw(st.sampled_from([d for d in "0123456789" if d != gtin[pos]]))
    with pytest.raises(ProductError, match="check digit"):
        normalize_gtin(gtin[:pos] + wrong + gtin[pos + 1 :])


@pytest.mark.parametrize("gtin", ["", "1234567", "123456789", "40063813339310", "4006381333A31",
                                  "４００６３８１３３３９３１"])
def test_bad_gtins_are_refused(gtin):
    with pytest.raises(ProductError, match="GTIN"):
        normalize_gtin(gtin)


@pytest.mark.parametrize("points, expected", [(0, 0), (10, 10), ("25", 25), (" 7 ", 7)])
def test_points_are_whole_and_not_negative(points, expected):
    assert check_points(points) == expected


@pytest.mark.parametrize("points", [-1, "-3", "1.5", "ten", "", None, True])
def test_bad_points_are_refused(points):
    with pytest.raises(ProductError, match="points"):
        check_points(points)


@pytest.mark.parametrize("sku", ["", " LIP", "LIP 001", "-LIP", "x" * 65, "LIP\n"])
def test_bad_skus_are_refused(sku):
    with pytest.raises(ProductError, match="SKU"):
        check_sku(sku)


def test_add_get_list(products, redis_client):
    added = products.add("ACME", "LIP-001", name="Velvet lipstick", points=10,
                         gtin="4006381333931", usage="Apply to lips")
    assert products.get("ACME", "LIP-001") == added
    assert added.gtin == "04006381333931" and added.points == 10
    products.add("ACME", "CRM-1", name="Cream", points="0")
    assert [p.sku for p in products.list("ACME")] == ["CRM-1", "LIP-001"]
    stored = json.loads(redis_client.hget(TenantKeys("ACME").products, "LIP-001"))
    assert stored == {
        "sku": "LIP-001", "name": "Velvet lipstick", "points": 10, "gtin": "04006381333931",
        "description": "", "usage": "Apply to lips", "created_at": 1_700_000_000.0,
        "updated_at": 1_700_000_000.0,
    }


def test_refusals(products):
    products.add("ACME", "LIP-001", name="Lipstick", points=10)
    with pytest.raises(ProductExists):
        products.add("ACME", "LIP-001", name="Again", points=1)
    with pytest.raises(UnknownProduct, match="NOPE"):
        products.get("ACME", "NOPE")
    with pytest.raises(UnknownProduct):
        products.update("ACME", "NOPE", points=1)
    with pytest.raises(UnknownTenant):
        products.add("OTHER", "LIP-001", name="Lipstick", points=10)
    with pytest.raises(UnknownTenant):
        products.get("OTHER", "LIP-001")
    with pytest.raises(ProductError, match="unknown product fields"):
        products.update("ACME", "LIP-001", colour="red")
    with pytest.raises(ProductError, match="name"):
        products.add("ACME", "X-1", name="  ", points=1)


def test_update_changes_only_what_is_given(products):
    products.add("ACME", "LIP-001", name="Lipstick", points=10, gtin="4006381333931")
    changed = products.update("ACME", "LIP-001", points="20", description="Matte")
    assert (changed.name, changed.points, changed.description) == ("Lipstick", 20, "Matte")
    assert changed.gtin == "04006381333931"
    assert products.update("ACME", "LIP-001", gtin="").gtin is None
    assert products.get("ACME", "LIP-001") == products.update("ACME", "LIP-001")


def test_product_commands(itemseal_env):
    runner = CliRunner()

    def run(*args: str, ok: bool = True):
        result = runner.invoke(main, list(args), env=itemseal_env)
        assert (result.exit_code == 0) == ok, result.output
        return result.output

    run("tenant", "create", "ACME", "--name", "Acme")
    out = run("product", "add", "--tenant", "ACME", "--sku", "LIP-001", "--name",
              "Velvet lipstick", "--points", "10", "--gtin", "4006381333931")
    assert "GTIN 04006381333931" in out
    assert run("product", "list", "-t", "ACME") == (
        "sku\tpoints\tgtin\tname\nLIP-001\t10\t04006381333931\tVelvet lipstick\n"
    )
    run("product", "set", "-t", "ACME", "LIP-001", "--points", "20", "--usage", "Twist up")
    shown = dict(line.split("\t") for line in run("product", "show", "-t", "ACME",
                                                  "LIP-001").splitlines())
    assert shown["points"] == "20" and shown["usage"] == "Twist up"
    record = json.loads(run("product", "show", "-t", "ACME", "LIP-001", "--json"))
    assert record["points"] == 20
    bad = run("product", "add", "-t", "ACME", "--sku", "X-1", "--name", "x", "--points", "-1",
              ok=False)
    assert "points must be a whole number" in bad and "Traceback" not in bad
    assert "check digit" in run("product", "set", "-t", "ACME", "LIP-001", "--gtin",
                                "4006381333932", ok=False)
    assert "nothing to set" in run("product", "set", "-t", "ACME", "LIP-001", ok=False)
