"""The CRM bridge against a real redis-server and a real local HTTP receiver."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from click.testing import CliRunner

from cli import main
from codegen.exc import MasterKeyError
from codegen.keys import MasterKey
from codegen.store.keyspace import PointsKeys, shard_of
from points_bridge.crm import GROUP, SIGNATURE_HEADER, Bridge, CrmSecret, Webhook
from points_bridge.exc import UnknownDeadLetter
from points_bridge.ledger import Ledger
from points_bridge.members import MemberStore
from tests.helpers.master import TEST_MASTER

pytestmark = pytest.mark.cluster  # and on a 3-master Redis Cluster (conftest.py)

SECRET = b"crm-secret-of-acme"


@pytest.fixture
def card(redis_client, points_tenant) -> str:
    tenant = points_tenant()
    member, _ = MemberStore(redis_client, tenant, master=TEST_MASTER).ensure("+8613812345678")
    ledger = Ledger(redis_client, tenant)
    ledger.adjust(member.card, 100, reason="welcome")
    ledger.redeem(member.card, 30, reason="gift")
    return member.card


def bridge(redis_client, url: str, sleeps: list[float] | None = None, **kw) -> Bridge:
    sleeper = (sleeps if sleeps is not None else []).append
    return Bridge(redis_client, "ACME", Webhook(url, SECRET), sleep=sleeper, **kw)


def test_every_event_arrives_signed_and_keyed(redis_client, receiver, card):
    crm, url = receiver
    stats = bridge(redis_client, url).drain()
    assert stats.delivered == 3 and stats.parked == 0
    events = list(crm.delivered().values())
    assert [e["type"] for e in events] == ["member.created", "ledger", "ledger"]
    assert [e["data"].get("kind") for e in events[1:]] == ["adjust", "redeem"]
    assert events[2]["data"]["balance"] == 70 and events[2]["card"] == card
    for headers, body in crm.received:
        assert headers[SIGNATURE_HEADER] == hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    assert bridge(redis_client, url).drain().delivered == 0, "nothing twice"


def test_failures_are_retried_with_exponential_backoff(redis_client, receiver, card):
    crm, url = receiver
    crm.script = [503, 503, 429]
    sleeps: list[float] = []
    stats = bridge(redis_client, url, sleeps, backoff=0.25, rand=lambda: 1.0).drain()
    assert (stats.delivered, stats.retries, stats.parked) == (3, 3, 0)
    assert sleeps == [0.25, 0.5, 1.0]  # the jitter's most: rand() of the doubling wait
    assert len(crm.delivered()) == 3 and len(crm.received) == 6


def test_poison_events_are_parked_and_the_rest_go_on(redis_client, receiver, card):
    crm, url = receiver
    crm.poison = {"adjust": 422, "redeem": 500}
    stats = bridge(redis_client, url, max_attempts=3).drain()
    assert (stats.delivered, stats.parked) == (1, 2)
    dead = redis_client.xrange(PointsKeys("ACME").dead_letter)
    reasons = [f[b"reason"].decode() for _, f in dead]
    assert reasons == ["HTTP 422", "HTTP 500; gave up after 3 attempts"]
    assert json.loads(dead[0][1][b"body"])["data"]["kind"] == "adjust"
    pending = redis_client.xpending(PointsKeys("ACME").events(shard_of(card)), GROUP)
    assert pending["pending"] == 0


def test_dead_letters_are_replayed_once_the_crm_is_fixed(redis_client, receiver, card):
    crm, url = receiver
    crm.poison = {"adjust": 422, "redeem": 422}
    bridge(redis_client, url).drain()
    dead = redis_client.xrange(PointsKeys("ACME").dead_letter)
    adjust_id = dead[0][0].decode()
    keys = {f[b"idempotency_key"].decode() for _, f in dead}

    crm.poison = {"redeem": 409}  # the CRM fixed one of its two problems
    stats = bridge(redis_client, url).replay_dead([adjust_id])
    assert (stats.delivered, stats.parked) == (1, 0)
    with pytest.raises(UnknownDeadLetter):
        bridge(redis_client, url).replay_dead([adjust_id])  # gone: delivered
    stats = bridge(redis_client, url).replay_dead()
    assert (stats.delivered, stats.parked) == (0, 1)
    (_, still), = redis_client.xrange(PointsKeys("ACME").dead_letter)
    assert still[b"reason"] == b"replay: HTTP 409" and still[b"entry"] == dead[1][1][b"entry"]

    crm.poison = {}
    assert bridge(redis_client, url).replay_dead().delivered == 1
    assert redis_client.xlen(PointsKeys("ACME").dead_letter) == 0
    assert set(crm.delivered()) >= keys, "each with its first idempotency key"
    replayed = [json.loads(b) for h, b in crm.accepted if h["Idempotency-Key"] in keys]
    assert sorted(e["data"]["kind"] for e in replayed) == ["adjust", "redeem"]


def test_bridge_replay_command(redis_client, receiver, card, itemseal_env, master_key):
    crm, url = receiver
    crm.poison = {"adjust": 422}
    bridge(redis_client, url).drain()
    crm.poison = {}
    CrmSecret(redis_client, "ACME", master_key).set(SECRET)
    replay = ["bridge", "replay", "--tenant", "ACME", "--webhook", url]
    env = {**itemseal_env, "ITEMSEAL_MASTER_KEY": base64.b64encode(master_key.secret).decode()}
    out = CliRunner().invoke(main, replay, env=env)
    assert out.exit_code == 0 and "delivered 1, still dead 0" in out.output, out.output
    out = CliRunner().invoke(main, [*replay, "1-0"], env=env)
    assert out.exit_code == 1 and "no dead letter 1-0" in out.output


def test_the_crm_secret_is_sealed_at_rest(redis_client, points_tenant, master_key):
    points_tenant()
    secret = CrmSecret(redis_client, "ACME", master_key)
    assert secret.get() is None
    made = secret.ensure()
    assert secret.ensure() == made == secret.get() and len(made) == 48
    assert made not in redis_client.get(PointsKeys("ACME").crm_secret)
    assert secret.set(b"shared-with-the-crm") == b"shared-with-the-crm" == secret.get()
    other = CrmSecret(redis_client, "ACME", MasterKey(b"\x01" * 32))
    with pytest.raises(MasterKeyError, match="different master key"):
        other.get()


def test_an_unreachable_crm_is_retried_then_parked(redis_client, card):
    stats = bridge(redis_client, "http://127.0.0.1:9/nowhere", max_attempts=2).drain()
    assert stats.parked == 3 and stats.delivered == 0


class Crash(BaseException):
    """A bridge process dying mid-delivery (not an Exception: nothing catches it)."""


def test_a_restarted_bridge_resumes_where_it_stopped(redis_client, receiver, card):
    crm, url = receiver
    first = bridge(redis_client, url, consumer="b1")
    real_post = first._webhook.post
    calls = []

    def post_then_die(body: bytes, key: str):
        calls.append(key)
        if len(calls) == 2:
            raise Crash  # the second event was read but never acknowledged
        return real_post(body, key)

    first._webhook.post = post_then_die
    with pytest.raises(Crash):
        first.drain()
    assert len(crm.delivered()) == 1
    stats = bridge(redis_client, url, consumer="b1").drain()  # same consumer: its pending first
    assert stats.delivered == 2 and len(crm.delivered()) == 3


def test_another_consumer_takes_over_abandoned_events(redis_client, receiver, card):
    crm, url = receiver
    stream = PointsKeys("ACME").events(shard_of(card))
    redis_client.xgroup_create(stream, GROUP, id="0")
    redis_client.xreadgroup(GROUP, "dead-bridge", {stream: ">"}, count=2)  # then it died
    stats = bridge(redis_client, url, consumer="b2", claim_idle=0).drain()
    assert stats.delivered == 3 and len(crm.delivered()) == 3


def test_delivered_events_are_trimmed(redis_client, receiver, card):
    _, url = receiver
    stream = PointsKeys("ACME").events(shard_of(card))
    bridge(redis_client, url).drain()
    assert redis_client.xlen(stream) == 0, "nothing delivered is kept"


def test_a_stream_keeps_what_is_not_delivered_yet(redis_client, receiver, card):
    crm, url = receiver
    stream = PointsKeys("ACME").events(shard_of(card))
    redis_client.xgroup_create(stream, GROUP, id="0")
    (_, held), = redis_client.xreadgroup(GROUP, "dead-bridge", {stream: ">"}, count=1)
    bridge(redis_client, url, claim_idle=3600).drain()  # the held one is not taken over yet
    assert len(crm.delivered()) == 2
    first = redis_client.xrange(stream, count=1)[0][0]
    assert first == held[0][0], "the held event and what follows it stay"
    ledger = Ledger(redis_client, "ACME")
    ledger.adjust(card, 5, reason="later")  # delivered and, with nothing held, trimmed
    bridge(redis_client, url, consumer="b2", claim_idle=0).drain()
    assert len(crm.delivered()) == 4 and redis_client.xlen(stream) == 0
