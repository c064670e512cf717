"""A guessing attack: a million well-formed codes, zero `genuine`; the limiter slows each client.

The guesses are what an attacker can make without the key: the right
length, a valid Damm digit, the key id of the tenant's live key, and a
random tag, half of them on the (permuted) serials of real, activated codes,
so that a tag check that let anything through would show up as `genuine`.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers.aio import Blocking

from codegen.codes import NUMERIC_24, damm_check_digits
from codegen.store.keyspace import TenantKeys
from codegen.store.wire import link_for
from verify_api.check import answers
from verify_api.check.engine import CheckRequest, VerifyEngine
from verify_api.exc import RateLimited

GUESSES = 1_000_000
CHUNK = 1000


def guesses(real: np.ndarray, count: int, seed: int) -> list[str]:
    """Well-formed codes of key 0 with random tags; even rows keep a real code's serial."""
    rng = np.random.default_rng(seed)
    s, t = NUMERIC_24.serial_digits, NUMERIC_24.tag_digits
    body = rng.integers(0, 10, size=(count, NUMERIC_24.length - 1), dtype=np.uint8)
    body[::2, :s] = real[rng.integers(0, len(real), size=(count + 1) // 2), :s]
    body[:, s] = body[:, s + t]  # key digit = (key id + tag) % 10 with key id 0
    full = np.concatenate([body, damm_check_digits(body)[:, None]], axis=1) + ord("0")
    return [row.tobytes().decode() for row in full]


@pytest.fixture
def engine(batch_factory, redis_client, clock):
    batch, key_store = batch_factory("ACME", count=20_000)
    made = Blocking(VerifyEngine(
        link_for(redis_client), key_store, clock=clock,
        key_cache_seconds=60, catalog_seconds=0,
    ))  # fmt: skip
    signer = key_store.signer("ACME", batch.key_id, NUMERIC_24)
    yield made, signer.code_matrix(batch.first_serial, batch.count)
    made.link.close()


@pytest.mark.slow
def test_a_million_guesses_find_no_genuine_code(engine, redis_client):
    engine, real = engine
    meta = TenantKeys("ACME").meta
    redis_client.hset(meta, mapping={"verify_rate_batch": "0", "verify_rate_ip": "0",
                                     "verify_rate_phone": "0"})  # fmt: skip
    real_code = (real[5] + ord("0")).astype(np.uint8).tobytes().decode()
    found = engine.verify_batch("ACME", [real_code], "10.0.0.1")  # the test can fail:
    assert found[0].result == answers.GENUINE  # a real code is found the same way
    results: dict[str, int] = {}
    for at in range(0, GUESSES, 100_000):
        codes = guesses(real, 100_000, seed=at)
        for i in range(0, len(codes), CHUNK):
            for answer in engine.verify_batch("ACME", codes[i : i + CHUNK], "10.0.0.2"):
                results[answer.result] = results.get(answer.result, 0) + 1
    assert results == {answers.COUNTERFEIT: GUESSES}
    for i, code in enumerate(guesses(real, 2000, seed=-1 % 2**32)):  # consumers' route
        request = CheckRequest(code, phone=f"1390000{i:04d}", channel="sms")
        assert engine.verify("ACME", request, f"10.1.{i // 250}.{i % 250}").result == "counterfeit"
    assert not list(redis_client.scan_iter("*:claims")), "no guess claimed anything"
    assert not list(redis_client.scan_iter("*/p+*")), "no guess made a member"


def test_one_ip_is_refused_past_its_limit(engine, redis_client):
    engine, real = engine
    redis_client.hset(TenantKeys("ACME").meta, mapping={"verify_rate_ip": "50/60"})
    codes = guesses(real, 60, seed=7)
    done = 0
    with pytest.raises(RateLimited) as refused:
        for code in codes:
            engine.verify("ACME", CheckRequest(code), "203.0.113.9")
            done += 1
    assert done == 50 and refused.value.retry_after >= 1
    with pytest.raises(RateLimited):  # refused again without Redis, until Retry-After
        engine.lookup("ACME", codes[0], "203.0.113.9")
    assert engine.verify("ACME", CheckRequest(codes[0]), "203.0.113.10").result == "counterfeit"


def test_one_phone_is_refused_past_its_limit_from_any_ip(engine, redis_client):
    """The phone limit counts authentic codes only: guesses carrying a victim's phone do
    not lock the victim out (the IP limit is what stops guessing)."""
    engine, real = engine
    redis_client.hset(TenantKeys("ACME").meta, mapping={"verify_rate_phone": "20/60"})
    for i, code in enumerate(guesses(real, 30, seed=8)):  # junk with the phone: not counted
        guess = CheckRequest(code, phone="13900001111")
        assert engine.verify("ACME", guess, f"198.51.100.{i}").result == "counterfeit"
    genuine = [(row + ord("0")).astype(np.uint8).tobytes().decode() for row in real[:30]]
    done = 0
    with pytest.raises(RateLimited) as refused:
        for i, code in enumerate(genuine):
            engine.verify("ACME", CheckRequest(code, phone="13900001111"), f"198.51.101.{i}")
            done += 1
    assert done == 20 and refused.value.retry_after >= 1
    other = CheckRequest(genuine[25], phone="13900002222")
    assert engine.verify("ACME", other, "198.51.100.200").result == "genuine"


def test_one_batch_client_is_refused_past_its_code_budget(engine, redis_client):
    engine, real = engine
    redis_client.hset(TenantKeys("ACME").meta, mapping={"verify_rate_batch": "3000/60"})
    codes = guesses(real, CHUNK, seed=9)
    for _ in range(3):
        engine.verify_batch("ACME", codes, "192.0.2.1")
    with pytest.raises(RateLimited):
        engine.verify_batch("ACME", codes, "192.0.2.1")
