"""The whole claim path: verify over HTTP with a phone, points once, the CRM hears of it."""

from __future__ import annotations

import asyncio

import pytest
from falcon.testing import ASGIConductor
from helpers.aio import run
from helpers.api import Api
from helpers.crm import serve_receiver

from codegen.store.keyspace import CREDIT_BUCKET_SERIALS, PointsKeys, segment_of
from points_bridge.counters import Counts
from points_bridge.crm import Bridge, Webhook
from points_bridge.ledger import Ledger
from points_bridge.members import MemberStore
from points_bridge.reconcile import Reconciler
from tests.helpers.master import TEST_MASTER
from verify_api.app import create_app

pytestmark = pytest.mark.cluster  # and on a 3-master Redis Cluster (conftest.py)

PHONE = "138 0013 8000"
OTHER = "+8613900139000"


def test_first_genuine_check_with_a_phone_credits_once_and_reaches_the_crm(api_world, redis_client):
    api, code_of, _ = api_world
    first = api.verify({"code": code_of(1), "phone": PHONE, "channel": "web"}).json
    assert first["result"] == "genuine" and first["claimed"] is True
    assert first["points_awarded"] == 10 and first["balance"] == 10
    assert first["member"]["tier"] and first["member"]["new_member"] is True
    assert first["member"]["points_to_next"] is not None
    assert first["rules_applied"][0]["kind"] == "base"

    again = api.verify({"code": code_of(1), "phone": PHONE}).json
    assert again["result"] == "already_verified" and again["points_awarded"] == 0
    assert again["member"] is None

    second = api.verify({"code": code_of(2), "phone": PHONE}).json
    assert second["points_awarded"] == 10 and second["balance"] == 20

    with serve_receiver() as (crm, url):
        stats = Bridge(redis_client, "ACME", Webhook(url, b"s"), sleep=lambda s: None).drain()
    ledger = [e["data"] for e in crm.delivered().values() if e["type"] == "ledger"]
    assert [(e["kind"], e["delta"], e["balance"]) for e in ledger] == [
        ("credit", 10, 10),
        ("credit", 10, 20),
    ]
    assert stats.parked == 0


def test_fifty_phones_racing_for_one_code_credit_exactly_once(api_world, redis_client):
    api, code_of, _ = api_world

    async def race() -> list:  # 50 requests in flight at once on the app's one event loop
        async with ASGIConductor(api.app) as conductor:
            posts = [conductor.simulate_post("/v1/tenants/ACME/verify", json={
                "code": code_of(3), "phone": f"1380013{i:04d}"}) for i in range(50)]
            return [r.json for r in await asyncio.gather(*posts)]

    answers = run(race())
    credited = [a for a in answers if a["points_awarded"]]
    assert len(credited) == 1 and sum(a["claimed"] for a in answers) == 1
    assert len(answers) == 50


def test_a_claim_whose_credit_failed_is_reconciled_once(api_world, redis_client):
    api, code_of, _ = api_world
    engine = api.app.engine

    class Down:
        prefetch = staticmethod(engine.crediter.prefetch)
        learn = staticmethod(engine.crediter.learn)

        async def credit_after_check(self, *args, **kw):
            import redis

            raise redis.ConnectionError("member shard unreachable")

    real, engine.crediter = engine.crediter, Down()
    answer = api.verify({"code": code_of(4), "phone": PHONE}).json
    engine.crediter = real
    assert answer["claimed"] is True and answer["points_pending"] is True
    assert answer["points_awarded"] == 0

    reconciler = Reconciler(redis_client, "ACME", min_age=0, master=TEST_MASTER)
    first, again = reconciler.run(), reconciler.run()
    assert (first.credited, first.points, again.credited) == (1, 10, 0)
    later = api.verify({"code": code_of(5), "phone": PHONE}).json
    assert later["balance"] == 20, "the reconciled 10 points plus this claim's 10"


def test_the_outbox_keeps_only_uncredited_claims(api_world, redis_client):
    api, code_of, batch = api_world
    outbox = PointsKeys("ACME").claims(segment_of(batch.first_serial))
    api.verify({"code": code_of(6), "phone": PHONE})
    assert redis_client.xlen(outbox) == 0, "credited at once, so nothing is owed"


def test_a_serial_pinned_to_another_card_meanwhile_credits_that_card_once(api_world,
                                                                          redis_client):
    """The API's first attempt pins and posts in one round trip (``_pin_and_post``). Should the
    serial be pinned to another card already (a reconcile, while this worker stalled past its
    ``min_age``, pinned it to the card the phone had then), the post to the card read here is
    reversed and the pinned card credited: each card's ledger still tells the truth."""
    api, code_of, batch = api_world
    members = MemberStore(redis_client, "ACME", master=TEST_MASTER)
    pinned, _ = members.ensure(OTHER)
    checker = api.verify({"code": code_of(60), "phone": PHONE}).json["member"]["card"]
    serial = batch.first_serial + 61
    keys = PointsKeys("ACME")
    redis_client.hset(keys.credit_pin(serial), str(serial % CREDIT_BUCKET_SERIALS), pinned.card)

    answer = api.verify({"code": code_of(61), "phone": PHONE}).json
    assert answer["result"] == "genuine" and answer["claimed"] is True
    assert answer["points_awarded"] == 10
    assert (members.get(pinned.card).balance, members.get(checker).balance) == (10, 10)
    ledger = Ledger(redis_client, "ACME")
    assert [(e.kind, e.delta) for e in ledger.history(checker)] == [
        ("credit", 10), ("credit", 10), ("reversal", -10)]
    assert [(e.kind, e.delta) for e in ledger.history(pinned.card)] == [("credit", 10)]
    assert Counts(redis_client, "ACME").read()["p|issued|LIP-001"] == 20, "the report's too"
    Reconciler(redis_client, "ACME", min_age=0, master=TEST_MASTER).run()
    assert (members.get(pinned.card).balance, members.get(checker).balance) == (10, 10)
    assert members.get(checker).earned == 10


def test_a_frozen_member_s_check_over_the_api_waits_and_is_credited_once_on_unfreeze(
        api_world, redis_client):
    """The API's first attempt parks a frozen member's claim in the same round trip as the pin
    (``_pin_and_post``: the script's ``parked``); unfreezing credits it, once."""
    api, code_of, batch = api_world
    members = MemberStore(redis_client, "ACME", master=TEST_MASTER)
    card = api.verify({"code": code_of(70), "phone": PHONE}).json["member"]["card"]
    members.change_status(card, "freeze")
    frozen = api.verify({"code": code_of(71), "phone": PHONE}).json
    assert frozen["claimed"] is True and frozen["points_awarded"] == 0
    assert frozen["balance"] == 10
    outbox = PointsKeys("ACME").claims(segment_of(batch.first_serial))
    assert redis_client.xlen(outbox) == 1, "owed until credited"
    Reconciler(redis_client, "ACME", min_age=0, master=TEST_MASTER).run()
    assert members.get(card).balance == 10, "still frozen: reconcile parks it again"
    member, _ = members.change_status(card, "unfreeze")
    assert member.balance == 20
    Reconciler(redis_client, "ACME", min_age=0, master=TEST_MASTER).run()
    assert members.get(card).balance == 20
    kinds = [e.kind for e in Ledger(redis_client, "ACME").history(card)]
    assert kinds.count("credit") == 2


def test_a_member_changed_between_the_check_and_its_credit_is_credited_once(api_world,
                                                                           redis_client):
    """The credit posts against the member version its check read; a change in between (here
    an adjustment made while the check waits for its product's points) makes the script answer
    ``stale`` and the careful path credit the member as it is now, once."""
    api, code_of, _ = api_world
    members = MemberStore(redis_client, "ACME", master=TEST_MASTER)
    card = api.verify({"code": code_of(80), "phone": PHONE}).json["member"]["card"]
    crediter = api.app.engine.crediter
    view = crediter.tenant_view

    async def meanwhile(*args, **kwargs):
        Ledger(redis_client, "ACME").adjust(card, 5, reason="goodwill")
        crediter.tenant_view = view
        return await view(*args, **kwargs)

    crediter.tenant_view = meanwhile
    answer = api.verify({"code": code_of(81), "phone": PHONE}).json
    assert answer["points_awarded"] == 10 and answer["balance"] == 25
    assert members.get(card).balance == 25
    kinds = [e.kind for e in Ledger(redis_client, "ACME").history(card)]
    assert kinds == ["credit", "adjust", "credit"]


def test_a_claim_reconciled_while_its_check_waits_is_answered_from_that_credit(api_world,
                                                                               redis_client):
    """Should reconcile credit a claim between its check's round trip and the check's own
    credit (a worker stalled past ``min_age``), the pin and post find the serial pinned to the
    same card and its entry already there (the script's ``dup``): the check answers with that
    credit and the member is credited once."""
    api, code_of, _ = api_world
    members = MemberStore(redis_client, "ACME", master=TEST_MASTER)
    card = api.verify({"code": code_of(90), "phone": PHONE}).json["member"]["card"]
    crediter = api.app.engine.crediter
    view = crediter.tenant_view
    reconciled = []

    async def meanwhile(*args, **kwargs):
        crediter.tenant_view = view
        reconciler = Reconciler(redis_client, "ACME", min_age=0, master=TEST_MASTER)
        reconciled.append(await asyncio.to_thread(reconciler.run))  # it runs its own loop
        return await view(*args, **kwargs)

    crediter.tenant_view = meanwhile
    answer = api.verify({"code": code_of(91), "phone": PHONE}).json
    assert reconciled, "reconcile ran between the check and its credit"
    assert answer["claimed"] is True and answer["points_awarded"] == 10
    assert answer["balance"] == 20 and answer["member"]["card"] == card
    assert members.get(card).balance == 20
    kinds = [e.kind for e in Ledger(redis_client, "ACME").history(card)]
    assert kinds == ["credit", "credit"]


def _round_trips(engine, check) -> tuple[int, int]:
    """(round trips waited for, commands posted without waiting) of ``check`` on the link."""
    link, waited, posted = engine.link, [], []

    async def call(*a, _real=link.call, **kw):
        waited.append(1)
        return await _real(*a, **kw)

    async def post(*a, _real=link.post, **kw):
        posted.append(1)
        return await _real(*a, **kw)

    link.call, link.post = call, post
    try:
        check()
    finally:
        del link.call, link.post
    return len(waited), len(posted)


@pytest.fixture
def cached(api_world, redis_client, clock):
    """The world's batch behind an app that caches as ``itemseal serve`` does (seconds)."""
    api, code_of, _ = api_world
    app = create_app(redis_client, api.app.engine._keys, clock=clock)
    yield Api(app), code_of
    app.engine.link.close()


def test_a_claim_takes_two_round_trips_for_a_new_member_and_one_this_worker_has_met(cached):
    api, code_of = cached
    engine = api.app.engine
    api.verify({"code": code_of(19), "phone": OTHER})  # the tenant's card secret and block read
    new = _round_trips(engine, lambda: api.verify({"code": code_of(20), "phone": PHONE}))
    known = _round_trips(engine, lambda: api.verify({"code": code_of(21), "phone": PHONE}))
    engine.crediter._cards.clear()  # a worker that has not met the phone
    unknown = _round_trips(engine, lambda: api.verify({"code": code_of(22), "phone": PHONE}))
    assert new == (2, 1), "check + reserve, then pin + create + post; the outbox removal posted"
    assert known == (2, 1), "check + member read, then pin + post"
    assert unknown == (3, 1), "check + index, member read, pin + post"
    answer = api.verify({"code": code_of(23), "phone": PHONE}).json
    assert answer["balance"] == 40 and answer["member"]["new_member"] is False


def test_a_guess_the_phone_has_since_left_credits_the_phone_s_new_member(api_world, redis_client):
    api, code_of, _ = api_world
    members = MemberStore(redis_client, "ACME", master=TEST_MASTER)
    first = api.verify({"code": code_of(30), "phone": PHONE}).json["member"]["card"]
    members.rebind(first, OTHER)  # the card moves to another phone; this worker still guesses it
    again = api.verify({"code": code_of(31), "phone": PHONE}).json
    assert again["member"]["card"] != first and again["member"]["new_member"] is True
    assert again["balance"] == 10
    moved = api.verify({"code": code_of(32), "phone": OTHER}).json
    assert moved["member"]["card"] == first and moved["balance"] == 20


def test_a_repeat_check_teaches_the_worker_the_phone_s_card(cached):
    api, code_of = cached
    engine = api.app.engine
    api.verify({"code": code_of(40), "phone": PHONE})
    engine.crediter._cards.clear()
    assert api.verify({"code": code_of(40), "phone": PHONE}).json["result"] == "already_verified"
    known = _round_trips(engine, lambda: api.verify({"code": code_of(41), "phone": PHONE}))
    assert known == (2, 1), "the claim's member was read with its verify script"
