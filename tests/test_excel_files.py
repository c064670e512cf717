"""CSV as Excel writes and reads it: GBK from a Chinese Excel, a BOM and digits kept as text."""

from __future__ import annotations

import csv
import json

import pytest
from click.testing import CliRunner

from cli import main
from points_bridge.transfer import excel_text, excel_unwrap


@pytest.fixture
def run(itemseal_env):
    runner = CliRunner()

    def invoke(*args: str, ok: bool = True):
        result = runner.invoke(main, list(args), env=itemseal_env, catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output
        return result

    invoke("tenant", "create", "ACME", "--name", "Acme")
    invoke("points", "config", "--tenant", "ACME", "--attribute", "skin_type:str")
    return invoke


def test_a_gbk_csv_from_chinese_excel_imports(run, tmp_path):
    """Excel on a Chinese Windows saves "CSV" in GBK, without a BOM."""
    path = tmp_path / "会员.csv"
    path.write_bytes("phone,skin_type,points\r\n13912345678,油性,10\r\n13912345679,干性,0\r\n"
                     "张三,混合,1\r\n".encode("gbk"))
    result = run("import", "members", "--tenant", "ACME", str(path), ok=False)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "line 4: " in result.output and "created 2, updated 0, rejected 1" in result.output
    shown = json.loads(run("member", "show", "--tenant", "ACME", "--phone", "13912345678",
                           "--json").output)
    assert shown["attributes"] == {"skin_type": "油性"} and shown["balance"] == 10
    utf8 = tmp_path / "utf8.csv"
    utf8.write_text("phone,skin_type\n13912345670,干性\n", encoding="utf-8-sig")
    assert "created 1" in run("import", "members", "--tenant", "ACME", str(utf8)).output
    latin = tmp_path / "latin.csv"
    latin.write_bytes("phone,skin_type\n13912345671,sèche\n".encode("latin-1"))
    assert "created 1" in run("import", "members", "--tenant", "ACME", str(latin),
                              "--encoding", "latin-1").output


def test_an_excel_export_has_a_bom_and_keeps_card_numbers_whole(run, tmp_path):
    run("member", "join", "--tenant", "ACME", "--phone", "13812345678")
    out = tmp_path / "members.csv"
    run("export", "members", "--tenant", "ACME", "--format", "csv", "--excel", "--out", str(out))
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # Excel reads UTF-8 only with its BOM
    with out.open(encoding="utf-8-sig", newline="") as fh:
        row = next(csv.DictReader(fh))
    card = excel_unwrap(row["card"])
    assert len(card) >= 12 and card.isdigit() and row["card"] == f'="{card}"'
    assert row["phone"] == '="+8613812345678"'
    again = run("import", "members", "--tenant", "ACME", str(out)).output
    assert "created 0, updated 1, rejected 0" in again  # the file reads back as it was
    plain = tmp_path / "plain.csv"
    run("export", "members", "--tenant", "ACME", "--format", "csv", "--out", str(plain))
    assert not plain.read_bytes().startswith(b"\xef\xbb\xbf") and '="' not in plain.read_text()
    assert run("export", "members", "--tenant", "ACME", "--excel", "--format", "parquet",
               "--out", str(tmp_path / "x.parquet"), ok=False).exit_code != 0


def test_excel_text_wraps_digit_strings_only():
    assert excel_text("100000000001") == '="100000000001"' and excel_text("gold") == "gold"
    assert excel_text(12) == 12 and excel_unwrap('="0123"') == "0123"
    assert excel_unwrap('="=cmd|x"') == '="=cmd|x"'
