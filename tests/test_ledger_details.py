"""A ledger entry's fields as the member page words them: lines, rules, money, and the raw
text of whatever does not read as its field should (never an error)."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from codegen.amounts import yuan
from verify_api.admin import office_text
from verify_api.admin.ledger_details import PHRASES, entry_details, lines_text, rules_text

EN = office_text.translator("en")
ZH = office_text.translator("zh")


def test_purchase_lines_and_rules_read_as_words():
    fields = {
        "card": "123456789012", "shop": "JN-01", "amount": "28650", "points": "286",
        "bonus": "0", "paid_points": "0", "paid_stored": "3000", "discount": "1280",
        "discount_tier": "gold", "discount_bp": "500", "day": "20260101", "spend": "{}",
        "lines": json.dumps([{"line": 1, "sku": "LIP-001", "qty": 2, "amount": 25600},
                             {"line": 2, "sku": "CRM-002", "qty": 1, "amount": 3050}]),
        "rules": json.dumps([{"kind": "base", "name": "LIP-001", "delta": 256, "limited": False},
                             {"kind": "birthday_multiplier", "name": "birthday_multiplier",
                              "delta": 256, "limited": False},
                             {"kind": "campaign_bonus", "name": "spring", "delta": 3,
                              "limited": True},
                             {"kind": "daily_cap", "name": "daily_cap", "delta": -50}]),
    }
    shown = dict(entry_details(fields, EN))
    assert shown == {
        "Items": "LIP-001 × 2 — 256.00, CRM-002 × 1 — 30.50",
        "Total": "286.50",
        "Discount": "12.80 (gold, 5%)",
        "Paid with stored value": "30.00",
        "Points": "286",
        "Rules": "base LIP-001 +256, birthday multiplier +256,"
                 " campaign bonus spring +3 (limited by its budget), daily cap -50",
        "Shop": "JN-01",
    }
    chinese = dict(entry_details(fields, ZH))
    assert chinese["积分规则"].startswith("基础积分 LIP-001 +256, 生日加倍 +256")
    assert chinese["商品"] == shown["Items"]


def test_other_fields_are_label_value_pairs_in_a_fixed_order():
    shown = entry_details({"reason": "goodwill", "zeta": "1", "alpha": "x", "card": "1",
                           "action": "freeze", "to": "frozen"}, EN)
    assert shown == [("Action", "freeze"), ("To", "frozen"), ("Reason", "goodwill"),
                     ("alpha", "x"), ("zeta", "1")]
    assert ("操作", "冻结") in entry_details({"action": "freeze"}, ZH)


def test_garbled_json_shows_its_raw_text():
    for raw in ('[{"sku": "A"', "[1, 2]", '{"sku": "A"}', '[{"sku": "A", "qty": "x",'
                ' "amount": 1}]', '[{"sku": 5, "qty": 1, "amount": 1}]',
                '[{"sku": "A", "qty": 1.5, "amount": 1}]', '"text"', "[" * 5000):
        assert lines_text(raw) is None, raw
        assert dict(entry_details({"lines": raw}, EN)) == {"Items": raw}
    for raw in ('[{"kind": "base"', "[1]", '[{"kind": "base", "delta": "ten", "name": "b"}]',
                '[{"kind": 1, "delta": 1, "name": "b"}]', "null", "[]"):
        assert rules_text(raw, EN) is None, raw
    assert dict(entry_details({"amount": "12.5", "stored": "--5"}, EN)) == {
        "Total": "12.5", "Stored value": "--5"}


@given(st.dictionaries(st.sampled_from(["lines", "rules", "amount", "discount", "discount_bp",
                                        "bonus", "action", "stored", "odd"]),
                       st.one_of(st.text(), st.from_regex(r"-?[0-9٣]{1,40}", fullmatch=True),
                                 st.builds(json.dumps, st.recursive(
                                     st.none() | st.booleans() | st.integers() | st.text(),
                                     lambda inner: st.lists(inner, max_size=3)
                                     | st.dictionaries(st.sampled_from(
                                         ["sku", "qty", "amount", "kind", "name", "delta",
                                          "limited"]), inner, max_size=7),
                                     max_leaves=12)))))
def test_any_fields_give_words_never_an_error(fields):
    for label, value in entry_details(fields, EN):
        assert isinstance(label, str) and isinstance(value, str)


def test_every_phrase_has_its_chinese():
    assert PHRASES and not sorted(PHRASES - set(office_text.ZH))


def test_yuan():
    assert [yuan(f) for f in (0, 5, 12800, -3050)] == ["0.00", "0.05", "128.00", "-30.50"]
