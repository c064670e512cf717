"""A ledger entry's own fields as short phrases staff can read, for the member page.

The ledger keeps what each kind of entry needs as flat strings, some of
them JSON written for machines (a purchase's ``lines``, the ``rules`` that
made a credit's points, a campaign budget's ``spend``). Support staff
answering a member ("why only 25 points?") need "LIP-001 × 2 — 256.00" and
"base LIP-001 +256, birthday multiplier +256", not the JSON. The member
page must open whatever a ledger holds (an entry of an older release, a
hand-repaired stream), so a field that does not read as expected is shown
as its raw text instead, never an error; the template escapes every phrase.
Pure: the words come in through ``t`` (``office_text.translator``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping

from codegen.amounts import yuan
from points_bridge.purchase_rules import TIER_MULTIPLIER
from points_bridge.rules import (
    BASE,
    BIRTHDAY_BONUS,
    BIRTHDAY_MULTIPLIER,
    CAMPAIGN_BONUS,
    CAMPAIGN_MULTIPLIER,
    DAILY_CAP,
)

Translate = Callable[[str], str]
WHOLE = re.compile(r"-?[0-9]{1,30}")  # ASCII digits only: int() takes other scripts' too

LABELS = {  # a field's label, in the order the page lists them; a field not here shows its name
    "action": "Action", "from": "From", "to": "To", "pin": "Tier floor", "reason": "Reason",
    "item": "Item", "lines": "Items", "amount": "Total", "discount": "Discount",
    "paid_points": "Paid with points", "paid_stored": "Paid with stored value",
    "stored_delta": "Stored value change", "stored": "Stored value", "points": "Points",
    "bonus": "Bonus points", "rules": "Rules", "serial": "Serial", "sku": "Product",
    "shop": "Shop", "channel": "Channel", "region": "Region", "refund_of": "Refund of",
    "tier_before": "Tier before", "next_tier": "Next tier", "to_next": "Points to next tier",
    "note": "Note",
}
HIDDEN = frozenset({  # the member's own card, day buckets, and what another field already says
    "card", "day", "purchase_day", "spend", "discount_tier", "discount_bp"})
MONEY = frozenset({  # in fen, shown in yuan
    "amount", "discount", "paid_stored", "stored", "stored_delta"})
TRANSLATED = frozenset({"action", "from", "to"})  # may be the office's own words (frozen)
RULE_NAMES = {
    BASE: "base", TIER_MULTIPLIER: "tier multiplier",
    CAMPAIGN_MULTIPLIER: "campaign multiplier", BIRTHDAY_MULTIPLIER: "birthday multiplier",
    BIRTHDAY_BONUS: "birthday bonus", CAMPAIGN_BONUS: "campaign bonus", DAILY_CAP: "daily cap",
}
LIMITED = "limited by its budget"
PHRASES = frozenset({*LABELS.values(), *RULE_NAMES.values(), LIMITED})
"""Every word this module shows; ``office_text.ZH`` has each in Chinese (a test says so)."""


def _whole(value: object) -> int | None:
    """An int, or a string of one, as the ledger writes them; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and WHOLE.fullmatch(value.strip()):
        return int(value)
    return None


def _json_list(text: str) -> list | None:
    try:
        found = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return found if isinstance(found, list) else None


def lines_text(text: str) -> str | None:
    """``[{"sku": "LIP-001", "qty": 2, "amount": 25600, ...}]`` as
    ``LIP-001 × 2 — 256.00``; None when it is not such a list."""
    found = _json_list(text)
    if not found:
        return None
    items = []
    for line in found:
        if not isinstance(line, dict) or not isinstance(line.get("sku"), str):
            return None
        qty, amount = _whole(line.get("qty")), _whole(line.get("amount"))
        if qty is None or amount is None:
            return None
        items.append(f"{line['sku']} × {qty} — {yuan(amount)}")
    return ", ".join(items)


def rules_text(text: str, t: Translate) -> str | None:
    """``[{"kind": "base", "name": "base", "delta": 100, "limited": false}, ...]`` as
    ``base +100, campaign bonus spring +15``: the rule, what it names when that is not
    the rule itself (a campaign, a product, a tier), its points; None when not such a list."""
    found = _json_list(text)
    if found is None:
        return None
    items = []
    for rule in found:
        if not isinstance(rule, dict) or not isinstance(rule.get("kind"), str):
            return None
        delta = _whole(rule.get("delta"))
        name = rule.get("name")
        if delta is None or not isinstance(name, str):
            return None
        kind = rule["kind"]
        words = [t(RULE_NAMES[kind]) if kind in RULE_NAMES else kind]
        if name and name != kind:
            words.append(name)
        words.append(f"{delta:+d}")
        if rule.get("limited") is True:
            words.append(f"({t(LIMITED)})")
        items.append(" ".join(words))
    return ", ".join(items) if items else None


def _discount(fields: Mapping[str, str], fen: int) -> str:
    rate = _whole(fields.get("discount_bp", ""))
    tier = fields.get("discount_tier", "")
    why = ", ".join(w for w in (tier, f"{rate / 100:g}%" if rate else "") if w)
    return f"{yuan(fen)} ({why})" if why else yuan(fen)


def _value(name: str, raw: str, fields: Mapping[str, str], t: Translate) -> str | None:
    """The readable value of one field; "" leaves out a zero that says nothing (no bonus,
    nothing paid by stored value); None when the field does not read as it should."""
    if name == "lines":
        return lines_text(raw)
    if name == "rules":
        return rules_text(raw, t)
    if name in MONEY:
        fen = _whole(raw)
        if fen is None:
            return None
        if fen == 0 and name != "amount":
            return ""
        return _discount(fields, fen) if name == "discount" else yuan(fen)
    if name in ("paid_points", "bonus") and _whole(raw) == 0:
        return ""
    if name in TRANSLATED:
        return t(raw)
    return raw


def entry_details(fields: Mapping[str, str], t: Translate) -> list[tuple[str, str]]:
    """(label, value) of each field worth showing: known fields in ``LABELS`` order, then
    any other by name; a value that does not read as its field should is its raw text."""
    known = [name for name in LABELS if name in fields]
    others = sorted(name for name in fields if name not in LABELS and name not in HIDDEN)
    shown = []
    for name in (*known, *others):
        raw = fields[name]
        if raw.strip() in ("", "[]", "{}"):
            continue
        value = _value(name, raw, fields, t)
        if value == "":
            continue
        label = t(LABELS[name]) if name in LABELS else name
        shown.append((label, raw if value is None else value))
    return shown
