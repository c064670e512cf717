"""The verify engine against a real redis-server: every result, claims, voids, memory."""

from __future__ import annotations

import asyncio

import pytest
from helpers.aio import Blocking, run
from redis.cluster import RedisCluster

from codegen.batches import BatchRegistry
from codegen.codes import NUMERIC_20, damm_check_digit
from codegen.exc import StoreError
from codegen.products import ProductStore
from codegen.store.keyspace import SCAN_BUCKET_SERIALS, TenantKeys, segment_of
from codegen.store.link import RedisLink
from codegen.store.wire import link_for
from points_bridge.phones import normalize_phone
from verify_api.check import answers, stats
from verify_api.check.batch_scans import scan_counts, void_codes
from verify_api.check.engine import CheckRequest, VerifyEngine
from verify_api.check.risk import REGION_SKETCH_BITS
from verify_api.check.scanrecord import unpack
from verify_api.check.scans import VERIFY, CheckContext, ScanQuery, verify_calls

pytestmark = pytest.mark.cluster  # and on a 3-master Redis Cluster (conftest.py)

IP = "203.0.113.7"


@pytest.fixture
def engine_factory(redis_client, clock):
    engines = []

    def make(key_store, **kw) -> VerifyEngine:
        kw.setdefault("key_cache_seconds", 0)
        kw.setdefault("catalog_seconds", 0)
        pipe = link_for(redis_client)
        engine = Blocking(VerifyEngine(pipe, key_store, clock=clock, **kw))
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.link.close()


@pytest.fixture
def world(batch_factory, engine_factory, redis_client):
    """An active batch of 1,000 codes of ACME, its key store, an engine, a code maker."""
    batch, key_store = batch_factory("ACME", count=1000, sku="LIP-001")
    ProductStore(redis_client).add("ACME", "LIP-001", name="Velvet lipstick", points=10)
    signer = key_store.signer("ACME", batch.key_id, batch.profile)

    class World:
        pass

    w = World()
    w.batch, w.key_store, w.signer = batch, key_store, signer
    w.engine = engine_factory(key_store)
    w.code = lambda i: signer.code(batch.first_serial + i)
    return w


def check(engine, code, phone=None, channel="api", region=None, ip=IP):
    return engine.verify("ACME", CheckRequest(code, phone, channel, region), ip)


def forge(code: str) -> str:
    """Change one tag digit and fix the check digit: well formed, tag wrong."""
    body = code[:12] + str((int(code[12]) + 1) % 10) + code[13:-1]
    return body + str(damm_check_digit(body))


def test_first_check_is_genuine_then_already_verified(world, clock):
    first = check(world.engine, world.code(1), phone="13800138000", channel="sms", region="CN-SH")
    assert first.result == answers.GENUINE
    assert (first.sku, first.product_name, first.scan_count) == ("LIP-001", "Velvet lipstick", 1)
    assert first.claimed and first.risk == "low" and not first.limit_reached
    clock.advance(3600)
    # the region sketch is keyed per tenant: 8 bits, so two regions collide one time in 8
    bit = world.engine.fingerprints.sketch_bit
    other = next(r for r in ("CN-BJ", "CN-GD", "CN-JS", "CN-ZJ", "CN-SC", "CN-HB")
                 if bit(r, REGION_SKETCH_BITS) != bit("CN-SH", REGION_SKETCH_BITS))
    again = check(world.engine, world.code(1), channel="web", region=other)
    assert again.result == answers.ALREADY_VERIFIED
    assert again.scan_count == 2
    assert again.first_verified_at == int(clock.now - 3600)
    assert again.first_channel == "sms"
    assert not again.claimed and again.risk in ("medium", "high")
    assert "checked 2 times" in again.message and "sms" in again.message


@pytest.mark.parametrize(
    "text, result",
    [
        ("", answers.MALFORMED),
        ("not a code", answers.MALFORMED),
        ("1234 5678", answers.MALFORMED),
        ("0" * 23 + "1", answers.MISTYPED),
    ],
)
def test_text_that_is_not_a_code(world, text, result):
    assert check(world.engine, text).result == result


def test_a_slip_of_one_digit_is_mistyped_never_counterfeit(world):
    code = world.code(2)
    for i in range(len(code)):
        slipped = code[:i] + str((int(code[i]) + 3) % 10) + code[i + 1 :]
        assert check(world.engine, slipped).result == answers.MISTYPED
    swapped = code[1] + code[0] + code[2:]
    if swapped != code:
        assert check(world.engine, swapped).result == answers.MISTYPED


def test_counterfeits(world, batch_factory):
    assert check(world.engine, forge(world.code(3))).result == answers.COUNTERFEIT
    # a genuine signature on a serial no batch covers
    outside = world.signer.code(world.batch.last_serial + 5000)
    assert check(world.engine, outside).result == answers.COUNTERFEIT
    # signed by a newer key, but the batch was minted with key 0
    world.key_store.rotate("ACME")
    other = world.key_store.signer("ACME", 1, world.batch.profile).code(world.batch.first_serial)
    assert check(world.engine, other).result == answers.COUNTERFEIT
    # a short-profile code on a serial of the default profile's batch
    short = world.key_store.signer("ACME", 0, NUMERIC_20).code(world.batch.first_serial % 10**8)
    assert check(world.engine, short).result == answers.COUNTERFEIT


def test_not_activated_then_genuine_then_recalled(batch_factory, engine_factory, redis_client):
    batch, key_store = batch_factory("ACME", count=10, state="minted")
    engine = engine_factory(key_store)
    code = key_store.signer("ACME", 0, batch.profile).code(batch.first_serial + 3)
    assert check(engine, code).result == answers.NOT_ACTIVATED
    registry = BatchRegistry(redis_client, "ACME")
    registry.transition(batch.batch_id, "active")
    assert check(engine, code).result == answers.GENUINE
    registry.transition(batch.batch_id, "recalled")
    recalled = check(engine, code)
    assert recalled.result == answers.RECALLED and recalled.sku == "SKU-1"
    assert (
        check(engine, key_store.signer("ACME", 0, batch.profile).code(batch.first_serial)).result
        == answers.RECALLED
    )


def test_a_revoked_key_answers_revoked(world):
    code = world.code(4)
    assert check(world.engine, code).result == answers.GENUINE
    world.key_store.revoke("ACME", 0)
    revoked = check(world.engine, code)
    assert revoked.result == answers.REVOKED and revoked.sku == "LIP-001"
    assert check(world.engine, forge(code)).result == answers.COUNTERFEIT


def test_voided_codes_answer_revoked_and_are_counted(world, redis_client):
    spoiled = [world.code(i) for i in (10, 11, 300)]
    check(world.engine, world.code(300), phone="13800138000")  # scanned before it was voided
    check(world.engine, world.code(500), phone="13900139000")
    texts = [*spoiled, "garbage", world.signer.code(world.batch.last_serial + 1)]
    outcomes = void_codes(redis_client, world.key_store, "ACME", world.batch.batch_id, texts)
    assert [o.outcome for o in outcomes] == [
        "voided", "voided", "voided", "malformed", "not_in_batch",
    ]  # fmt: skip
    assert outcomes[2].checks_before == 1
    again = void_codes(redis_client, world.key_store, "ACME", world.batch.batch_id, spoiled[:1])
    assert again[0].outcome == "already_voided"
    for code in spoiled:
        assert check(world.engine, code).result == answers.REVOKED
    counts = scan_counts(redis_client, "ACME", world.batch.batch_id)
    assert counts == {"scanned": 2, "voided": 3, "claimed": 2}


def test_scan_counts_keep_to_their_batch(batch_factory, engine_factory, redis_client):
    a, key_store = batch_factory("ACME", count=100)  # a and b share a scan bucket
    b, _ = batch_factory("ACME", count=100)
    engine = engine_factory(key_store)
    signer = key_store.signer("ACME", 0, a.profile)
    check(engine, signer.code(a.last_serial))
    check(engine, signer.code(b.first_serial), phone="13800138000")
    assert a.last_serial // SCAN_BUCKET_SERIALS == b.first_serial // SCAN_BUCKET_SERIALS
    assert scan_counts(redis_client, "ACME", a) == {"scanned": 1, "voided": 0, "claimed": 0}
    assert scan_counts(redis_client, "ACME", b.batch_id) == {
        "scanned": 1,
        "voided": 0,
        "claimed": 1,
    }


def test_claim_goes_to_the_first_check_with_a_phone_only(world, redis_client):
    code = world.code(20)
    assert not check(world.engine, code).claimed  # anonymous web check: nothing to claim for
    second = check(world.engine, code, phone="+86 139 0013 9000")
    assert second.result == answers.ALREADY_VERIFIED and second.claimed
    assert not check(world.engine, code, phone="13800138000").claimed
    raw = redis_client.hget(
        TenantKeys("ACME").scan_bucket(world.batch.first_serial + 20),
        (world.batch.first_serial + 20) % SCAN_BUCKET_SERIALS,
    )
    fingerprints = world.engine.fingerprints
    assert unpack(raw).claimed_by == fingerprints.phone_fingerprint(normalize_phone("13900139000"))


def test_fifty_concurrent_checks_claiming_one_code_give_one_claim(world):
    code = world.code(21)
    engine = world.engine._target  # the coroutines themselves, all on one event loop

    async def claims() -> list:
        return await asyncio.gather(*(
            engine.verify("ACME", CheckRequest(code, f"1380013{i:04d}"), IP) for i in range(50)
        ))

    found = run(claims())
    assert sum(a.claimed for a in found) == 1
    assert sum(a.result == answers.GENUINE for a in found) == 1
    assert sorted(a.scan_count for a in found) == list(range(1, 51))


def test_a_turn_s_checks_share_calls_and_keep_their_own_contexts(world, redis_client):
    """Sixty checks at once, three of each code by different phones, channels and regions:
    the answers, claims and day counters of separate calls, in a handful of script calls."""
    engine = world.engine._target
    day = TenantKeys("ACME").segment_stats(segment_of(world.batch.first_serial),
                                           stats.day_of(engine._clock(), engine_zone(engine)))
    before = redis_client.hgetall(day)
    asks = []
    for i in range(20):
        asks += [CheckRequest(world.code(100 + i), f"1390013{i:04d}", "sms"),
                 CheckRequest(world.code(100 + i), None, "web"),
                 CheckRequest(world.code(100 + i), f"1370013{i:04d}", "ivr", "CN-BJ")]
    calls_before = engine.turns.calls if engine.turns else 0

    async def at_once() -> list:
        return await asyncio.gather(*(engine.verify("ACME", ask, IP) for ask in asks))

    found = run(at_once())
    for i in range(20):
        mine = found[3 * i : 3 * i + 3]
        assert sorted(a.scan_count for a in mine) == [1, 2, 3]
        assert [a.result for a in mine].count(answers.GENUINE) == 1
        pairs = zip(asks[3 * i : 3 * i + 3], mine, strict=True)
        claimed = [ask.phone for ask, a in pairs if a.claimed]
        assert len(claimed) == 1 and claimed[0] is not None  # a phone's check claimed it
        assert all(a.points_awarded == (10 if a.claimed else 0) for a in mine)
    after = redis_client.hgetall(day)
    grew = {k.decode(): int(v) - int(before.get(k, 0)) for k, v in after.items()}
    assert grew["r:genuine"] == 20 and grew["r:already_verified"] == 40
    assert grew["ch:sms"] == grew["ch:web"] == grew["ch:ivr"] == 20
    assert grew["sku:LIP-001"] == 60 and grew["region:CN-BJ"] == 20
    if engine.turns is not None:  # the single server's link (a cluster's sends each alone)
        assert engine.turns.calls - calls_before < 60


def engine_zone(engine):
    return run(engine.catalog.policy("ACME")).timezone


def test_a_turn_s_call_comes_back_after_script_flush(world, redis_client):
    engine = world.engine._target
    assert check(world.engine, world.code(140)).result == answers.GENUINE
    redis_client.script_flush()

    async def at_once() -> list:
        return await asyncio.gather(*(
            engine.verify("ACME", CheckRequest(world.code(140 + i % 4)), IP) for i in range(12)
        ))

    found = run(at_once())
    assert sorted(a.scan_count for a in found) == [1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4]
    assert not any(a.sku is None for a in found)


def test_after_the_cap_the_limit_is_reached_and_nothing_is_claimed(world, redis_client):
    redis_client.hset(TenantKeys("ACME").meta, "verify_check_cap", "3")
    code = world.code(22)
    seen = [check(world.engine, code) for _ in range(4)]
    assert [a.limit_reached for a in seen] == [False, False, False, True]
    assert seen[-1].result == answers.ALREADY_VERIFIED and seen[-1].scan_count == 4
    assert not check(world.engine, code, phone="13800138000").claimed


def test_lookups_and_batches_record_nothing(world):
    code = world.code(23)
    assert world.engine.lookup("ACME", code, IP).result == answers.GENUINE
    assert world.engine.lookup("ACME", code, IP).scan_count == 0
    found = world.engine.verify_batch("ACME", [code, world.code(24), "x", forge(code)], IP)
    assert [a.result for a in found] == [
        answers.GENUINE, answers.GENUINE, answers.MALFORMED, answers.COUNTERFEIT,
    ]  # fmt: skip
    assert check(world.engine, code).result == answers.GENUINE  # still the first real check
    looked = world.engine.lookup("ACME", code, IP)
    assert looked.result == answers.ALREADY_VERIFIED and looked.scan_count == 1


def test_qr_urls_and_gs1_forms_verify(world, redis_client):
    ProductStore(redis_client).update("ACME", "LIP-001", gtin="4006381333931")  # the links' GTIN
    code = world.code(25)
    forms = [
        f"https://acme.example/t/ACME/v/{code}",
        f"https://id.acme.example/01/04006381333931/21/{code}",
        f"(01)04006381333931(21){code}",
        f"0104006381333931 21{code}".replace(" ", ""),
        " ".join(code[i : i + 4] for i in range(0, 24, 4)),
    ]
    results = [check(world.engine, text).result for text in forms]
    assert results == [answers.GENUINE] + [answers.ALREADY_VERIFIED] * 4
    other = f"https://id.acme.example/01/00012345600012/21/{world.code(26)}"
    assert check(world.engine, other).result == answers.COUNTERFEIT  # not LIP-001's GTIN
    assert check(world.engine, world.code(26)).result == answers.GENUINE  # nothing recorded


def _calls(client) -> dict[str, int]:
    """Commands served so far, summed over every master on a cluster."""
    if isinstance(client, RedisCluster):
        nodes = [client.get_redis_connection(n) for n in client.get_primaries()]
    else:
        nodes = [client]
    total: dict[str, int] = {}
    for node in nodes:
        for name, stat in node.info("commandstats").items():
            if name != "cmdstat_info":
                total[name] = total.get(name, 0) + stat["calls"]
    return total


def test_malformed_mistyped_and_counterfeit_never_reach_redis(world, redis_client):
    redis_client.hset(TenantKeys("ACME").meta, mapping={"verify_rate_ip": "0"})
    engine = Blocking(VerifyEngine(
        link_for(redis_client),
        world.key_store,
        key_cache_seconds=600,
        catalog_seconds=600,
    ))
    bad = ["hello", "1234", "0" * 23 + "1", forge(world.code(30)), forge(world.code(31))]
    for text in [*bad, world.code(33)]:  # warm the caches (policy, keys) and load the scripts
        check(engine, text)
    before = _calls(redis_client)
    results = {check(engine, text).result for text in bad * 20}
    assert results == {answers.MALFORMED, answers.MISTYPED, answers.COUNTERFEIT}
    changed = {name for name, calls in _calls(redis_client).items() if calls != before.get(name)}
    assert changed <= {"cmdstat_hincrby", "cmdstat_expire"}, "counted, never looked up"
    check(engine, world.code(32))  # an authentic code does reach it: one EVALSHA
    after = _calls(redis_client)
    assert after.get("cmdstat_evalsha", 0) == before.get("cmdstat_evalsha", 0) + 1
    engine.link.close()


def test_scan_state_costs_at_most_64_bytes_a_code(batch_factory, redis_client, world):
    batch, _ = batch_factory("ACME", count=20_000)
    scripts = world.engine.scripts
    keys = TenantKeys("ACME")
    before = redis_client.info("memory")["used_memory"]
    serials = list(range(batch.first_serial, batch.last_serial + 1))
    context = CheckContext(VERIFY, 3, "CN-SH", 12345, 8, 4, 5)
    for at in range(0, len(serials), 1000):  # one record each, as consumers' first checks
        queries = [ScanQuery(s, 0, batch.profile.wire_id) for s in serials[at : at + 1000]]
        calls = verify_calls(scripts, keys, queries, context, 1_767_225_600, per_call=100)
        run(scripts.run([call for call, _ in calls]))
    per_code = (redis_client.info("memory")["used_memory"] - before) / len(serials)
    assert per_code <= 64, f"{per_code:.1f} bytes per scanned code"
    enc = redis_client.object("encoding", keys.scan_bucket(batch.first_serial + 300))
    assert enc == b"ziplist" or enc == b"listpack"


def test_scripts_come_back_after_script_flush(world, redis_client):
    assert check(world.engine, world.code(40)).result == answers.GENUINE
    redis_client.script_flush()
    assert check(world.engine, world.code(40)).result == answers.ALREADY_VERIFIED


def test_a_dead_store_is_a_store_error(world, short_home):
    engine = Blocking(VerifyEngine(
        RedisLink(f"unix://{short_home}/nothing.sock", timeout=1),
        world.key_store,
        catalog_seconds=600,
    ))
    with pytest.raises(StoreError):
        run(engine.catalog.policy("ACME"))
    with pytest.raises(StoreError):
        check(engine, world.code(41))
    with pytest.raises(StoreError):
        engine.ping()


def test_batch_lookup_across_segments_batches_and_states(batch_factory, engine_factory):
    big, key_store = batch_factory("ACME", count=700_000)  # crosses a segment boundary
    small, _ = batch_factory("ACME", count=10, state="minted", sku="SKU-2")
    recalled, _ = batch_factory("ACME", count=10, state="recalled", sku="SKU-3")
    assert segment_of(big.first_serial) != segment_of(big.last_serial)
    signer = key_store.signer("ACME", 0, big.profile)
    engine = engine_factory(key_store)
    serials = [big.first_serial, big.last_serial, small.first_serial, recalled.last_serial]
    texts = [signer.code(s) for s in serials] + [signer.code(recalled.last_serial + 1)]
    check(engine, texts[1])
    found = engine.verify_batch("ACME", texts, IP)
    assert [(a.result, a.sku, a.scan_count) for a in found] == [
        (answers.GENUINE, "SKU-1", 0),
        (answers.ALREADY_VERIFIED, "SKU-1", 1),
        (answers.NOT_ACTIVATED, "SKU-2", 0),
        (answers.RECALLED, "SKU-3", 0),
        (answers.COUNTERFEIT, None, 0),
    ]


def test_one_call_of_scattered_codes_reads_as_a_call_per_code(world, redis_client):
    """verify.lua takes a call's codes as one packed value and names each scan bucket once:
    codes that come back to a bucket, a revoked key, a wrong key id and two contexts in one
    call answer code by code as calls of a single code do."""
    first = world.batch.first_serial
    for i in (0, 300, 301, 700):  # records to read back: checked once, one with a phone
        check(world.engine, world.code(i), phone="13900138000" if i == 300 else None)
    scripts, keys = world.engine.scripts, TenantKeys("ACME")
    wire = world.batch.profile.wire_id
    queries = [ScanQuery(first + 300, 0, wire), ScanQuery(first + 5, 0, wire),
               ScanQuery(first + 700, 0, wire), ScanQuery(first + 301, 0, wire, True),
               ScanQuery(first + 0, 0, wire), ScanQuery(first + 999, 7, wire),
               ScanQuery(first + 6, 0, wire)]  # fmt: skip
    assert len({q.serial // SCAN_BUCKET_SERIALS for q in queries}) == 4
    contexts = [CheckContext(), CheckContext(skus=("LIP-001",))] * 3 + [CheckContext(skus=("X",))]
    now = 1_767_225_600

    def replies(qs, ctxs):
        calls = verify_calls(scripts, keys, qs, ctxs, now)
        return [r for raw in run(scripts.run([c for c, _ in calls])) for r in raw]

    together = replies(queries, contexts)
    alone = [r for q, ctx in zip(queries, contexts, strict=True) for r in replies([q], [ctx])]
    assert together == alone
    statuses = together[::4]
    assert statuses == [b"active", b"active", b"active", b"revoked", b"active", b"counterfeit",
                        b"counterfeit"]  # fmt: skip
    assert [bool(raw) for raw in together[2::4]] == [True, False, True, True, True, False, False]


def test_a_loop_stopped_mid_turn_does_not_stall_the_next(world):
    engine = world.engine._target
    code = world.code(160)
    loop = asyncio.new_event_loop()
    keys, query = TenantKeys("ACME"), ScanQuery(world.batch.first_serial + 160, 0, 0)

    async def hand_over_and_stop() -> None:
        if engine.turns is not None:
            engine.turns.scan(keys, query, CheckContext(), 0)
        loop.stop()  # before the turn's end: its call is never made

    loop.create_task(hand_over_and_stop())
    loop.run_forever()
    loop.close()
    async def check_on_a_new_loop():
        try:
            return await asyncio.wait_for(engine.verify("ACME", CheckRequest(code), IP), 10)
        finally:
            await engine.link.aclose()  # its connection belongs to this loop

    assert asyncio.run(check_on_a_new_loop()).scan_count == 1
