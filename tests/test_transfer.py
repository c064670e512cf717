"""Export to Parquet/CSV and import of members, against a real redis-server."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from points_bridge.exc import BadInput
from points_bridge.ledger import Ledger
from points_bridge.members import MemberStore
from points_bridge.settings import SettingsStore
from points_bridge.transfer import export, import_members
from schemas.points import LEDGER_SCHEMA, MEMBERS_SCHEMA
from tests.helpers.master import TEST_MASTER

CSV_WITH_BAD_ROWS = """phone,birthday,points,skin_type
13812345678,1990-05-01,100,dry
not a phone,,,
+86 139 1234 5678,,50,
13712345678,1990-02-30,,
13612345678,,-5,oily
13512345678,,,
"""


@pytest.fixture
def tenant(redis_client, points_tenant) -> str:
    tenant = points_tenant()
    SettingsStore(redis_client).declare_attributes(tenant, [("skin_type", "str")])
    return tenant


@pytest.fixture
def populated(redis_client, tenant) -> list[str]:
    members = MemberStore(redis_client, tenant, master=TEST_MASTER)
    ledger = Ledger(redis_client, tenant)
    cards = []
    for i in range(3):
        member, _ = members.join(f"+86138123456{i:02d}", attributes={"skin_type": "dry"})
        ledger.adjust(member.card, 10 * (i + 1), reason="welcome")
        cards.append(member.card)
    ledger.redeem(cards[0], 5, reason="sample")
    return cards


def test_members_export_to_parquet_with_the_schema(redis_client, tenant, populated):
    sink = pa.BufferOutputStream()
    assert export(redis_client, tenant, "members", "parquet", sink, master=TEST_MASTER) == 3
    table = pq.read_table(pa.BufferReader(sink.getvalue()))
    assert table.schema.remove_metadata() == MEMBERS_SCHEMA
    assert table.schema.metadata[b"itemseal.tenant"] == b"ACME"
    rows = {r["card"]: r for r in table.to_pylist()}
    assert set(rows) == set(populated)
    assert rows[populated[0]]["balance"] == 5
    assert json.loads(rows[populated[1]]["attributes"]) == {"skin_type": "dry"}


def test_ledger_export_to_csv(redis_client, tenant, populated, tmp_path):
    out = tmp_path / "ledger.csv"
    assert export(redis_client, tenant, "ledger", "csv", out, master=TEST_MASTER) == 4
    table = pacsv.read_csv(out, convert_options=pacsv.ConvertOptions(
        column_types=LEDGER_SCHEMA))
    kinds = [(r["card"], r["kind"], r["delta"]) for r in table.to_pylist()]
    assert (populated[0], "redeem", -5) in kinds
    assert sum(kind == "adjust" for _, kind, _ in kinds) == 3


def test_export_refuses_an_unknown_format(redis_client, tenant, tmp_path):
    with pytest.raises(BadInput, match="format"):
        export(redis_client, tenant, "members", "xlsx", tmp_path / "m.xlsx", master=TEST_MASTER)


def test_import_reports_bad_rows_by_line_and_keeps_the_good(redis_client, tenant, tmp_path):
    path = tmp_path / "members.csv"
    path.write_text(CSV_WITH_BAD_ROWS)
    report = import_members(redis_client, tenant, path, master=TEST_MASTER)
    assert [where for where, _ in report.errors] == ["line 3", "line 5", "line 6"]
    assert "not a phone" in report.errors[0][1] and "birthday" in report.errors[1][1]
    assert (report.created, report.updated) == (3, 0)
    members = MemberStore(redis_client, tenant, master=TEST_MASTER)
    first = members.find(phone="13812345678")
    assert (first.balance, first.birthday, first.attributes, first.source) == (
        100, "1990-05-01", {"skin_type": "dry"}, "import"
    )
    assert members.find(phone="13912345678").balance == 50
    with pytest.raises(Exception, match="no member"):
        members.find(phone="13712345678")  # the bad row wrote nothing

    again = import_members(redis_client, tenant, path,
                           master=TEST_MASTER)  # a re-run duplicates nothing
    assert (again.created, again.updated, len(again.errors)) == (0, 3, 3)
    assert members.find(phone="13812345678").balance == 100


def test_a_different_opening_balance_is_refused_before_any_write(redis_client, tenant, tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("phone,points,skin_type\n13812345678,100,dry\n")
    import_members(redis_client, tenant, path, master=TEST_MASTER)
    path.write_text("phone,points,skin_type\n13812345678,120,oily\n")
    report = import_members(redis_client, tenant, path, master=TEST_MASTER)
    assert report.errors == [("line 2", "points=120: opening balance already 100")]
    member = MemberStore(redis_client, tenant).find(phone="13812345678")
    assert (member.balance, member.attributes) == (100, {"skin_type": "dry"})


def test_import_from_parquet_and_an_export_round_trip(redis_client, tenant, populated, tmp_path):
    out = tmp_path / "members.parquet"
    export(redis_client, tenant, "members", "parquet", out, master=TEST_MASTER)
    redis_client.flushall()
    from codegen.tenants import TenantStore

    TenantStore(redis_client).create(tenant, "Acme")
    SettingsStore(redis_client).declare_attributes(tenant, [("skin_type", "str")])
    report = import_members(redis_client, tenant, Path(out), master=TEST_MASTER)
    assert (report.created, report.errors) == (3, [])
    member = MemberStore(redis_client, tenant).find(phone="+8613812345600")
    assert member.attributes == {"skin_type": "dry"}


def test_a_file_with_unknown_columns_is_refused_whole(redis_client, tenant, tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("phone,shoe_size\n13812345678,42\n")
    with pytest.raises(BadInput, match="unknown columns shoe_size"):
        import_members(redis_client, tenant, path, master=TEST_MASTER)
