"""The ledger against a real redis-server: idempotency, refusals, lots and expiry."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codegen.store.keyspace import PointsKeys, TenantKeys, shard_of
from points_bridge.exc import (
    BadInput,
    IdempotencyConflict,
    InsufficientPoints,
    MemberInactive,
)
from points_bridge.ledger import Ledger, body_sha, claim_sha, lot_expiry
from points_bridge.members import LOTS, MemberStore, member_lots
from tests.helpers.master import TEST_MASTER

SHANGHAI = ZoneInfo("Asia/Shanghai")


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def ts(*args: int) -> int:
    return int(datetime(*args, tzinfo=SHANGHAI).timestamp())


@pytest.fixture
def clock() -> Clock:
    return Clock(ts(2025, 1, 15, 12))


@pytest.fixture
def setup(redis_client, points_tenant, clock):
    tenant = points_tenant()
    members = MemberStore(redis_client, tenant, clock=clock, master=TEST_MASTER)
    member, _ = members.ensure("+8613812345678")
    return Ledger(redis_client, tenant, clock=clock), members, member.card


def test_adjust_then_redeem_moves_the_balance_and_keeps_history(setup):
    ledger, members, card = setup
    ledger.adjust(card, 500, reason="migration")
    posted = ledger.redeem(card, 120, reason="lipstick")
    assert (posted.entry.kind, posted.entry.delta, posted.entry.balance) == ("redeem", -120, 380)
    member = members.get(card)
    assert (member.balance, member.earned) == (380, 0), "an adjustment is not earned"
    assert [e.kind for e in ledger.history(card)] == ["adjust", "redeem"]
    assert [e.kind for e in ledger.history(card, count=1)] == ["redeem"]


def test_a_repeated_key_returns_the_first_entry(setup):
    ledger, members, card = setup
    ledger.adjust(card, 100, reason="gift")
    first = ledger.redeem(card, 30, idem="order-1")
    again = ledger.redeem(card, 30, idem="order-1")
    assert again.duplicate and again.entry == first.entry
    assert members.get(card).balance == 70


def test_a_repeated_key_with_another_body_is_refused(setup):
    ledger, _, card = setup
    ledger.adjust(card, 100, reason="gift")
    ledger.redeem(card, 30, idem="order-1")
    with pytest.raises(IdempotencyConflict, match="order-1"):
        ledger.redeem(card, 31, idem="order-1")


def test_redeeming_more_than_the_balance_is_refused(setup):
    ledger, members, card = setup
    ledger.adjust(card, 50, reason="gift")
    with pytest.raises(InsufficientPoints, match="has 50 points: cannot take 51"):
        ledger.redeem(card, 51)
    with pytest.raises(InsufficientPoints):
        ledger.adjust(card, -51, reason="correction")
    assert members.get(card).balance == 50
    with pytest.raises(BadInput):
        ledger.redeem(card, 0)


def test_a_frozen_member_spends_nothing(setup):
    ledger, members, card = setup
    ledger.adjust(card, 50, reason="gift")
    members.change_status(card, "freeze")
    with pytest.raises(MemberInactive, match="is frozen: cannot redeem"):
        ledger.redeem(card, 10)
    members.change_status(card, "unfreeze")
    assert ledger.redeem(card, 10).entry.balance == 40


def test_concurrent_redemptions_never_overdraw(setup):
    ledger, members, card = setup
    ledger.adjust(card, 100, reason="gift")

    def spend(i: int) -> bool:
        try:
            ledger.redeem(card, 30, idem=f"order-{i}")
            return True
        except InsufficientPoints:
            return False

    with ThreadPoolExecutor(10) as pool:
        done = sum(pool.map(spend, range(10)))
    assert done == 3 and members.get(card).balance == 10


def test_lot_expiry_is_the_start_of_month_n_plus_one():
    assert lot_expiry(ts(2025, 1, 15), 12, SHANGHAI) == ts(2026, 2, 1)
    assert lot_expiry(ts(2025, 12, 31, 23), 1, SHANGHAI) == ts(2026, 2, 1)
    assert lot_expiry(ts(2025, 12, 31), 0, SHANGHAI) == 0


def test_points_expire_oldest_first(setup, clock):
    ledger, members, card = setup
    january = (1, SHANGHAI)  # expire after one month
    ledger.adjust(card, 100, reason="january", expiry=january)
    clock.now = ts(2025, 2, 10)
    ledger.adjust(card, 50, reason="february", expiry=january)
    ledger.redeem(card, 30)  # taken from January's lot first
    lots = members._redis.hget(PointsKeys(members.tenant).member(card), "lots")
    assert lots == f"{ts(2025, 3, 1)} 70,{ts(2025, 4, 1)} 50".encode()  # in the record
    assert not members._redis.exists(PointsKeys(members.tenant).lots(card))
    clock.now = ts(2025, 3, 1)
    assert ledger.expire_due(card) == 70
    member = members.get(card)
    assert member.balance == 50
    expiry = ledger.history(card)[-1]
    assert (expiry.kind, expiry.delta, expiry.balance) == ("expire", -70, 50)
    clock.now = ts(2025, 4, 2)
    with pytest.raises(InsufficientPoints, match="has 0 points"):
        ledger.redeem(card, 1)  # due lots leave before the redemption is checked


def test_every_entry_reaches_the_crm_stream_in_order(redis_client, setup):
    ledger, members, card = setup
    ledger.adjust(card, 10, reason="gift")
    ledger.redeem(card, 5)
    events = redis_client.xrange(PointsKeys(members.tenant).events(shard_of(card)))
    ledger_ids = [e.entry_id for e in ledger.history(card)]
    entries = [f[b"entry"].decode() for _, f in events if f[b"type"] == b"ledger"]
    assert entries == ledger_ids


ops = st.lists(
    st.one_of(
        st.tuples(st.just("earn"), st.integers(1, 500)),
        st.tuples(st.just("spend"), st.integers(1, 700)),
        st.tuples(st.just("wait"), st.integers(1, 40)),
    ),
    max_size=25,
)


def test_lots_a_version_before_kept_in_a_list_move_into_the_record(setup, clock):
    """A store written before the lots were a record field keeps its lots in a list per
    member: the next post moves them, oldest first, ahead of any new lot, and nothing
    expires, is spent or is counted twice."""
    ledger, members, card = setup
    keys = PointsKeys(members.tenant)
    client = members._redis
    client.hincrby(keys.member(card), "balance", 120)
    client.rpush(keys.lots(card), f"{ts(2025, 2, 1)} 20", f"{ts(2025, 3, 1)} 100")
    assert member_lots(None, client.lrange(keys.lots(card), 0, -1)) == [
        (ts(2025, 2, 1), 20), (ts(2025, 3, 1), 100)]
    clock.now = ts(2025, 2, 10)  # the first lot is due
    ledger.adjust(card, 50, reason="february", expiry=(1, SHANGHAI))
    assert not client.exists(keys.lots(card))
    lots = member_lots(client.hget(keys.member(card), LOTS))
    assert lots == [(ts(2025, 3, 1), 100), (ts(2025, 4, 1), 50)]
    assert members.get(card).balance == 150 == sum(left for _, left in lots)
    assert [e.kind for e in ledger.history(card)] == ["expire", "adjust"]
    ledger.redeem(card, 110)
    assert member_lots(client.hget(keys.member(card), LOTS)) == [(ts(2025, 4, 1), 40)]


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops)
def test_balance_and_lots_match_a_fifo_model(redis_client, points_tenant, ops):
    """Whatever the order of earning, spending and time passing: the script's figures
    equal a plain FIFO-lots model, the balance is the sum of the ledger, never below 0."""
    if not redis_client.exists(TenantKeys("ACME").meta):
        points_tenant()
    clock = Clock(ts(2025, 1, 15, 12))
    members = MemberStore(redis_client, "ACME", clock=clock, master=TEST_MASTER)
    card = members.ensure(f"+86138{redis_client.incr('test:phones'):08d}")[0].card
    ledger = Ledger(redis_client, "ACME", clock=clock)
    lots: list[list[int]] = []  # [expires_at, left], oldest first
    for op, n in ops:
        if op == "wait":
            clock.now += n * 86_400
            continue
        lots = [lot for lot in lots if lot[0] > clock.now]
        if op == "earn":
            ledger.adjust(card, n, reason="earn", expiry=(1, SHANGHAI))
            lots.append([lot_expiry(int(clock.now), 1, SHANGHAI), n])
        elif n > sum(left for _, left in lots):
            with pytest.raises(InsufficientPoints):
                ledger.redeem(card, n)
        else:
            ledger.redeem(card, n)
            while n:
                taken = min(n, lots[0][1])
                lots[0][1] -= taken
                n -= taken
                if not lots[0][1]:
                    lots.pop(0)
        member = members.get(card)
        assert member.balance == sum(left for _, left in lots) >= 0
    history = ledger.history(card)
    assert sum(e.delta for e in history) == members.get(card).balance


def test_a_posting_reads_the_member_record_once_and_writes_it_once(setup, redis_client):
    """Each call of ``ledger_apply.lua`` is Redis time a claim's credit waits for: the record is
    read once before the entry and once after it (the figures the entry carries), written once
    (HSET) besides the HINCRBYs of its points. Before: five reads, two HSETs and the version's
    own HINCRBY."""
    ledger, _, card = setup
    ledger.adjust(card, 100, reason="opening")
    record = PointsKeys(ledger.tenant).member(card)
    with redis_client.monitor() as monitor:
        ledger.post(card, kind="credit", idem="claim:1", body={"serial": 1}, delta=10, earned=10,
                    day="20250115", lot_expires=ts(2025, 3, 1), tier="silver",
                    member_set={"last_check_at": "1"})
        redis_client.echo("posted")
        on_record = Counter()
        for seen in monitor.listen():
            words = seen["command"].split()
            if words[:2] == ["ECHO", "posted"]:
                break
            if len(words) > 1 and words[1] == record:
                on_record[words[0].upper()] += 1
    assert on_record == {"HMGET": 2, "HINCRBY": 3, "HSET": 1}
    member = MemberStore(redis_client, ledger.tenant, master=TEST_MASTER).get(card)
    assert (member.balance, member.earned, member.tier, member.version) == (110, 10, "silver", 3)


@given(st.integers(0, 10**20), st.text())
def test_a_claim_s_sha_is_the_sha_of_its_body_as_json_writes_it(serial, sku):
    """A claim posted by a version that hashed the JSON body must not look like another
    claim (``conflict``) to one that writes the text directly."""
    assert claim_sha(serial, sku) == body_sha({"serial": serial, "sku": sku})
