"""Tenant keys: sealed at rest, rotated without breaking old codes, revocable."""

from __future__ import annotations

import base64
import os
import stat

import pytest

from codegen.checker import COUNTERFEIT, REVOKED, VALID, CodeChecker
from codegen.codes import NUMERIC_24, damm_check_digit
from codegen.exc import KeySlotsExhausted, MasterKeyError, TenantExists, UnknownTenant
from codegen.keys import KeyStore, MasterKey, load_master_key
from codegen.store.keyspace import TenantKeys
from codegen.tenants import TenantStore


def test_keys_are_stored_only_sealed(redis_client, key_store_factory):
    store = key_store_factory("ACME")
    secret = store.signer("ACME", 0, NUMERIC_24).secret
    dump = b"".join(redis_client.hvals(TenantKeys("ACME").keys))
    assert secret not in dump
    assert base64.b64encode(secret) not in dump and secret.hex().encode() not in dump


def test_rotation_keeps_old_codes_valid(key_store_factory):
    store = key_store_factory("ACME")
    old_code = store.signer("ACME", 0, NUMERIC_24).code(NUMERIC_24.serial_base + 5)
    assert store.rotate("ACME").key_id == 1
    assert store.current("ACME").key_id == 1
    new_code = store.signer("ACME", 1, NUMERIC_24).code(NUMERIC_24.serial_base + 6)
    checker = CodeChecker(store, "ACME")
    assert checker.decode(old_code).verdict == VALID
    assert checker.decode(new_code).serial == NUMERIC_24.serial_base + 6


def test_revoked_key_answers_revoked_and_forgeries_stay_counterfeit(key_store_factory):
    store = key_store_factory("ACME")
    code = store.signer("ACME", 0, NUMERIC_24).code(NUMERIC_24.serial_base)
    store.revoke("ACME", 0)
    checker = CodeChecker(store, "ACME", max_age=0)
    assert checker.decode(code).verdict == REVOKED
    body = code[:12] + str((int(code[12]) + 1) % 10) + code[13:-1]  # a tag digit
    forged = body + str(damm_check_digit(body))
    assert checker.decode(forged).verdict == COUNTERFEIT
    with pytest.raises(Exception, match="revoked"):
        store.current("ACME")


def test_key_ids_run_out_after_ten(key_store_factory):
    store = key_store_factory("ACME")
    for _ in range(9):
        store.rotate("ACME")
    with pytest.raises(KeySlotsExhausted, match="10 key ids"):
        store.rotate("ACME")


def test_wrong_master_key_says_so(redis_client, key_store_factory):
    key_store_factory("ACME")
    other = KeyStore(redis_client, MasterKey(os.urandom(32)))
    with pytest.raises(MasterKeyError, match="different master key"):
        other.signer("ACME", 0, NUMERIC_24)


def test_master_key_file_is_created_0600_only_when_asked(short_home):
    with pytest.raises(MasterKeyError, match="no master key"):
        load_master_key(short_home, {})
    created = load_master_key(short_home, {}, create=True)
    path = short_home / "master.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_master_key(short_home, {}) == created
    path.chmod(0o644)
    with pytest.raises(MasterKeyError, match="chmod 600"):
        load_master_key(short_home, {})


def test_master_key_from_env(short_home):
    raw = os.urandom(32)
    env = {"ITEMSEAL_MASTER_KEY": base64.b64encode(raw).decode()}
    assert load_master_key(short_home, env).secret == raw
    assert load_master_key(short_home, {"ITEMSEAL_MASTER_KEY": raw.hex()}).secret == raw
    with pytest.raises(MasterKeyError, match="32 bytes"):
        load_master_key(short_home, {"ITEMSEAL_MASTER_KEY": "short"})


def test_tenants(redis_client):
    tenants = TenantStore(redis_client)
    tenants.create("ACME", "Acme Cosmetics")
    with pytest.raises(TenantExists):
        tenants.create("ACME", "again")
    with pytest.raises(UnknownTenant, match="tenant create NOPE"):
        tenants.get("NOPE")
    with pytest.raises(Exception, match="bad tenant id"):
        tenants.create("a{b}", "x")
    t = tenants.update("ACME", verify_url="https://acme.example/t/{tenant}/v/{code}")
    assert t.url_for("123") == "https://acme.example/t/ACME/v/123"
    assert [t.tenant_id for t in tenants.list()] == ["ACME"]
