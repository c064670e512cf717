"""The allow matrix, exhaustively: every role against every action."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from verify_api.admin import roles

EXPECTED = {
    "operator": {"products.read", "batches.read", "batches.activate"},
    "manager": {"products.read", "products.write", "points.read", "points.write",
                "campaigns.read", "campaigns.write", "tiers.read", "tiers.write",
                "limits.read", "limits.write", "batches.read", "batches.recall",
                "members.read", "reports.read", "shops.read", "shops.write",
                "purchases.read", "members.balance",
                "audit.read", "segments.read", "outbound.read", "outbound.write",
                "care.read", "care.write", "draws.read", "draws.write", "alerts.read",
                "alerts.write", "feedback.read", "rewards.read", "rewards.write",
                "coupons.read", "staff.read", "staff.write"},
    "support": {"products.read", "points.read", "campaigns.read", "tiers.read",
                "members.read", "members.write", "outbound.read", "feedback.read",
                "feedback.answer", "rewards.read", "coupons.read", "shops.read",
                "purchases.refund", "purchases.read", "members.balance", "stored.adjust"},
    "cashier": {"coupons.read", "coupons.redeem", "purchases.write", "purchases.refund",
                "members.balance", "stored.topup"},
}


@pytest.mark.parametrize("role", roles.ROLES)
@pytest.mark.parametrize("action", sorted(roles.ACTIONS))
def test_matrix(role, action):
    assert roles.allowed(role, action) == (action in EXPECTED[role])


def test_actions_of_is_the_matrix_row():
    for role in roles.ROLES:
        assert set(roles.actions_of(role)) == EXPECTED[role]


def test_jobs_are_split_as_the_issue_says():
    assert not roles.allowed("operator", "batches.recall")
    assert not roles.allowed("manager", "batches.activate")
    assert not roles.allowed("support", "products.write")
    assert not roles.allowed("operator", "members.read")


def test_the_cashier_works_the_till_only():
    assert set(roles.actions_of("cashier")) == {
        "purchases.write", "purchases.refund", "members.balance", "stored.topup",
        "coupons.read", "coupons.redeem"}
    assert not roles.allowed("cashier", "members.read")
    assert not roles.allowed("manager", "purchases.write")


@given(st.text(max_size=12))
def test_an_unknown_role_may_do_nothing(role):
    if role in roles.ROLES:
        return
    assert not any(roles.allowed(role, action) for action in roles.ACTIONS)
    with pytest.raises(ValueError):
        roles.check_role(role)


@given(st.text(max_size=20).filter(lambda a: a not in roles.ACTIONS))
def test_an_unknown_action_is_a_bug_not_a_yes(action):
    with pytest.raises(roles.UnknownAction):
        roles.allowed("manager", action)
