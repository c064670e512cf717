"""The card key at rest: sealed under the master key, like the tenant's signing keys.

The key permutes the card counter into card numbers, so a copy of Redis (a
backup, a replica) must not carry it in clear, and a key an older version
stored raw must keep its permutation (else new cards could collide with old
ones) while it is sealed in place.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from cli import main
from codegen.exc import MasterKeyError
from codegen.keys import MasterKey, load_master_key
from codegen.store.keyspace import PointsKeys
from points_bridge.cards import SEALED_PREFIX, card_number, open_card_key, seal_card_key
from points_bridge.credit import BlockingCrediter
from points_bridge.exc import UnknownMember
from points_bridge.members import MemberStore
from tests.helpers.master import TEST_MASTER

PHONE = "+8613812345678"
OTHER = "+8613912345678"


def stored_key(client, tenant: str) -> bytes:
    return client.get(PointsKeys(tenant).card_secret)


def opened(client, tenant: str, master: MasterKey = TEST_MASTER) -> bytes:
    key, raw = open_card_key(master, tenant, stored_key(client, tenant))
    assert not raw
    return key


def test_a_claim_over_http_stores_the_card_key_sealed(api_world, redis_client):
    api, code_of, _ = api_world
    member = api.verify({"code": code_of(1), "phone": PHONE}).json["member"]
    stored = stored_key(redis_client, "ACME")
    assert stored.startswith(SEALED_PREFIX)
    key = opened(redis_client, "ACME")
    assert key not in stored and len(key) == 32
    assert member["card"] == card_number(0, key)


def test_the_cli_stores_it_sealed_under_the_home_master_key(itemseal_env, redis_client):
    def run(*args: str) -> str:
        result = CliRunner().invoke(main, list(args), env=itemseal_env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    run("tenant", "create", "ACME", "--name", "Acme")
    card = run("member", "join", "--tenant", "ACME", "--phone", "13812345678").split("\t")[1]
    master = load_master_key(Path(itemseal_env["ITEMSEAL_HOME"]), itemseal_env)
    assert stored_key(redis_client, "ACME").startswith(SEALED_PREFIX)
    assert card == card_number(0, opened(redis_client, "ACME", master))
    with pytest.raises(MasterKeyError):  # the suite's key is not the home's
        opened(redis_client, "ACME")


def test_a_raw_key_of_an_older_version_keeps_its_cards_and_is_sealed(redis_client, points_tenant):
    tenant = points_tenant()
    raw = os.urandom(32)
    redis_client.set(PointsKeys(tenant).card_secret, raw)  # as versions before sealing wrote it
    first, _ = MemberStore(redis_client, tenant, master=TEST_MASTER).ensure(PHONE)
    assert first.card == card_number(0, raw)
    assert stored_key(redis_client, tenant).startswith(SEALED_PREFIX)
    assert opened(redis_client, tenant) == raw
    second, _ = MemberStore(redis_client, tenant, master=TEST_MASTER).ensure(OTHER)
    assert second.card == card_number(1, raw), "the permutation never changes"


def test_the_claim_path_seals_a_raw_key_too(redis_client, points_tenant):
    tenant = points_tenant()
    raw = os.urandom(32)
    redis_client.set(PointsKeys(tenant).card_secret, raw)
    BlockingCrediter(redis_client, master=TEST_MASTER).credit_claim(tenant, PHONE, 1, "-", "sms")
    card = MemberStore(redis_client, tenant).find(phone=PHONE).card
    assert card == card_number(0, raw) and opened(redis_client, tenant) == raw


def test_a_store_without_the_master_key_finds_members_but_issues_no_card(
    redis_client, points_tenant
):
    tenant = points_tenant()
    made, _ = MemberStore(redis_client, tenant, master=TEST_MASTER).ensure(PHONE)
    reader = MemberStore(redis_client, tenant)
    assert reader.find(phone=PHONE).card == made.card
    with pytest.raises(MasterKeyError) as refused:
        reader.ensure(OTHER)
    assert refused.value.status == 503
    with pytest.raises(MasterKeyError):  # a wrong master key opens nothing
        MemberStore(redis_client, tenant, master=MasterKey(os.urandom(32))).ensure(OTHER)
    with pytest.raises(UnknownMember):
        reader.find(phone=OTHER)


@given(key=st.binary(min_size=16, max_size=64), tenant=st.text(min_size=1, max_size=12),
       other=st.text(min_size=1, max_size=12))
def test_a_sealed_key_opens_only_for_its_tenant(key, tenant, other):
    stored = seal_card_key(TEST_MASTER, tenant, key, os.urandom(12))
    assert open_card_key(TEST_MASTER, tenant, stored) == (key, False)
    if other != tenant:
        with pytest.raises(MasterKeyError):
            open_card_key(TEST_MASTER, other, stored)
