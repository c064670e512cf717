"""Who may do what in the admin API: the allow matrix, pure.

Four roles, one job each (``itemseal token create --role``):

* ``operator`` — the factory line: lists batches and activates them when they ship.
* ``manager`` — the brand manager: products, points rules, campaigns, tiers, check limits,
  recalls, reports and the audit trail; also reads members.
* ``support`` — customer service: reads and edits members (status, phone,
  adjustments, redemptions), reads and answers consumers' feedback.
* ``cashier`` — a shop's till (POS): records purchases and refunds them, tops up
  stored value, reads a member's balance and redeems coupons; nothing else.

Rewards: the catalogue is the manager's (support reads it); redeeming and
cancelling for a member is support's ``members.write``; using a coupon at a
till is the cashier's.
Office staff accounts (``staff.py``: add, disable, reset) are the manager's.

Customer care (segments, SMS campaigns, care, draws, alerts) is the manager's;
support also reads campaign status and the SMS report.

Every admin responder names one action; ``allowed`` is the only place that
decides, so the matrix below is the whole policy and its test is exhaustive.
"""

from __future__ import annotations

from verify_api.exc import UnknownAction

OPERATOR, MANAGER, SUPPORT, CASHIER = "operator", "manager", "support", "cashier"
ROLES = (OPERATOR, MANAGER, SUPPORT, CASHIER)

ACTIONS: dict[str, frozenset[str]] = {
    "products.read": frozenset({OPERATOR, MANAGER, SUPPORT}),
    "products.write": frozenset({MANAGER}),
    "points.read": frozenset({MANAGER, SUPPORT}),
    "points.write": frozenset({MANAGER}),
    "campaigns.read": frozenset({MANAGER, SUPPORT}),
    "campaigns.write": frozenset({MANAGER}),
    "tiers.read": frozenset({MANAGER, SUPPORT}),
    "tiers.write": frozenset({MANAGER}),
    "limits.read": frozenset({MANAGER}),
    "limits.write": frozenset({MANAGER}),
    "batches.read": frozenset({OPERATOR, MANAGER}),
    "batches.activate": frozenset({OPERATOR}),
    "batches.recall": frozenset({MANAGER}),
    "members.read": frozenset({MANAGER, SUPPORT}),
    "members.write": frozenset({SUPPORT}),
    "reports.read": frozenset({MANAGER}),
    "audit.read": frozenset({MANAGER}),
    "segments.read": frozenset({MANAGER}),
    "outbound.read": frozenset({MANAGER, SUPPORT}),
    "outbound.write": frozenset({MANAGER}),
    "care.read": frozenset({MANAGER}),
    "care.write": frozenset({MANAGER}),
    "draws.read": frozenset({MANAGER}),
    "draws.write": frozenset({MANAGER}),
    "alerts.read": frozenset({MANAGER}),
    "alerts.write": frozenset({MANAGER}),
    "feedback.read": frozenset({MANAGER, SUPPORT}),
    "feedback.answer": frozenset({SUPPORT}),
    "rewards.read": frozenset({MANAGER, SUPPORT}),
    "rewards.write": frozenset({MANAGER}),
    "coupons.read": frozenset({MANAGER, SUPPORT, CASHIER}),
    "coupons.redeem": frozenset({CASHIER}),
    "staff.read": frozenset({MANAGER}),
    "staff.write": frozenset({MANAGER}),
    "shops.read": frozenset({MANAGER, SUPPORT}),
    "shops.write": frozenset({MANAGER}),
    "purchases.write": frozenset({CASHIER}),
    "purchases.refund": frozenset({CASHIER, SUPPORT}),
    "purchases.read": frozenset({MANAGER, SUPPORT}),
    "members.balance": frozenset({CASHIER, SUPPORT, MANAGER}),
    "stored.topup": frozenset({CASHIER}),
    "stored.adjust": frozenset({SUPPORT}),
}


def check_role(role: str) -> str:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    return role


def allowed(role: str, action: str) -> bool:
    """Tell whether ``role`` may do ``action``; unknown roles may do nothing."""
    try:
        return role in ACTIONS[action]
    except KeyError:
        raise UnknownAction(action) from None


def actions_of(role: str) -> list[str]:
    """The actions a role may do, sorted (``itemseal token list`` and the docs)."""
    return sorted(action for action, roles in ACTIONS.items() if role in roles)
