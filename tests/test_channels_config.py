"""Channel settings on a real redis-server: the number index, the sealed secret, the CLI."""

from __future__ import annotations

import os

import pytest
from helpers.cli_runner import run

from codegen.exc import MasterKeyError
from codegen.keys import MasterKey
from codegen.store.keyspace import CHANNEL_NUMBERS as NUMBERS
from codegen.store.keyspace import TenantKeys
from codegen.tenants import TenantStore
from verify_api.channels.config import ChannelStore
from verify_api.channels.feedback import ANSWERED, OPEN, FeedbackInbox, UnknownFeedback
from verify_api.exc import NumberTaken, SettingError

pytestmark = pytest.mark.cluster  # the index and the tenant record sit in different slots


@pytest.fixture
def store(redis_client, master_key):
    for tenant in ("ACME", "BETA"):
        TenantStore(redis_client).create(tenant, tenant)
    return ChannelStore(redis_client, master_key)


def test_the_longest_registered_prefix_wins(store):
    store.update("ACME", sms_number="1065702160")
    store.update("BETA", sms_number="106570216001")
    assert store.tenant_for("+1065702160") == "ACME"
    assert store.tenant_for("106570216099") == "ACME"  # a sub-port of ACME's number
    assert store.tenant_for("10657021600142") == "BETA"  # BETA's, longer
    assert store.tenant_for("106") is None and store.tenant_for("") is None


def test_a_number_belongs_to_one_tenant_and_moves_cleanly(store, redis_client):
    store.update("ACME", sms_number="106570216001")
    with pytest.raises(NumberTaken):
        store.update("BETA", sms_number="106570216001")
    store.update("ACME", sms_number="106570216002")
    assert redis_client.hgetall(NUMBERS) == {b"106570216002": b"ACME"}
    store.update("ACME", sms_number="")
    assert redis_client.hgetall(NUMBERS) == {}
    store.update("BETA", sms_number="106570216001")
    assert store.tenant_for("106570216001") == "BETA"


def test_a_repeat_after_a_crash_between_index_and_record_converges(store, redis_client):
    store.update("ACME", sms_number="106570216001")
    # The index moved to ...002 (and kept a stray ...003), the record was never written.
    redis_client.hdel(NUMBERS, "106570216001")
    redis_client.hset(NUMBERS, mapping={"106570216002": "ACME", "106570216003": "ACME"})
    assert store.get("ACME").sms_number == "106570216001"
    store.update("ACME", sms_number="106570216002")
    assert redis_client.hgetall(NUMBERS) == {b"106570216002": b"ACME"}
    assert store.get("ACME").sms_number == "106570216002"


def test_the_gateway_secret_is_sealed(store, redis_client):
    store.update("ACME", gateway_secret="a-very-secret-token")
    raw = redis_client.hget(TenantKeys("ACME").meta, "gateway_secret")
    assert b"a-very-secret-token" not in raw
    assert store.get("ACME").secret == "a-very-secret-token"
    redis_client.hset(TenantKeys("BETA").meta, "gateway_secret", raw)  # copied to another tenant
    with pytest.raises(MasterKeyError, match="does not open"):
        store.get("BETA")
    with pytest.raises(MasterKeyError, match="different master key"):
        ChannelStore(redis_client, MasterKey(os.urandom(32))).get("ACME")
    with pytest.raises(SettingError):
        store.update("ACME", gateway_secret="short")


def test_settings_are_validated_before_anything_is_written(store):
    for bad in ({"language": "fr"}, {"reply_format": "json"}, {"join_keyword": "a b"},
                {"join_keyword": "TOOLONGWORD"}, {"join_keyword": "X", "balance_keyword": "x"},
                {"templates_": {"join": "{balance}"}}):
        with pytest.raises(SettingError):
            store.update("ACME", sms_number="106570216001", **bad)
    assert store.get("ACME").sms_number == ""
    store.update("ACME", language="en", templates_={"join": "Card {card}"})
    assert store.get("ACME").reply("join", card="1") == "Card 1"
    store.update("ACME", templates_={"join": ""})  # back to the default
    assert store.get("ACME").reply("join", card="1").startswith("Welcome")


def test_feedback_inbox(redis_client):
    inbox = FeedbackInbox(redis_client, "ACME")
    ids = [inbox.add("+8613800138000", f"message {i}", "sms", 1000 + i) for i in range(150)]
    assert [f.text for f in inbox.list(3)] == ["message 149", "message 148", "message 147"]
    answered = inbox.mark_answered(ids[10], "Sorry, a new one is on its way", 2000)
    assert (answered.status, answered.answer, answered.answered_at) == (ANSWERED, answered.answer,
                                                                        2000)
    assert [f.feedback_id for f in inbox.list(10, status=ANSWERED)] == [ids[10]]
    assert len(inbox.list(500, status=OPEN)) == 149 and len(inbox.list(500)) == 150
    assert inbox.get(ids[0]).to_json()["text"] == "message 0"
    for missing in ("0-1", "nonsense"):
        with pytest.raises(UnknownFeedback):
            inbox.get(missing)


def test_tenant_set_channel_options(itemseal_env):
    env = itemseal_env
    run(env, "tenant", "create", "ACME", "--name", "Acme")
    out = run(env, "tenant", "set", "ACME", "--sms-number", "106570216001", "--gateway-secret",
              "SECRET-0123456789", "--language", "en", "--reply-format", "twiml",
              "--join-keyword", "JOIN", "--template", "balance=Points {balance}").stdout
    assert out.strip() == ("tenant ACME updated: gateway_secret, join_keyword, language,"
                           " reply_format, sms_number, tpl.balance")
    shown = run(env, "tenant", "show", "ACME").stdout
    assert "gateway_secret\t(set)" in shown and "SECRET-0123456789" not in shown
    assert "sms_number\t106570216001" in shown and "tpl.balance\tPoints {balance}" in shown
    bad = run(env, "tenant", "set", "ACME", "--template", "join=" + "x" * 200, ok=False)
    assert bad.returncode == 1 and "one SMS holds 160" in bad.stderr
    assert "Traceback" not in bad.stderr
