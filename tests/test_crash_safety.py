"""Nothing acknowledged is lost when redis-server, a worker or the CRM bridge dies by kill -9.

Each test starts its own processes (tests/helpers/crashkit.py) and kills them for real:
the session's redis-server is never touched.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import psutil
import pytest
from helpers.cli_runner import ITEMSEAL
from helpers.crashkit import (
    ClaimStream,
    check_claims,
    check_outboxes_settled,
    own_world,
    reconcile,
)
from helpers.crm import serve_receiver
from helpers.homes import make_short_home
from helpers.serving import serving

from codegen.store.keyspace import PointsKeys
from points_bridge.ledger import Ledger
from points_bridge.members import MemberStore
from tests.helpers.master import TEST_MASTER


@pytest.fixture
def world():
    world = own_world(make_short_home(), count=4000)
    yield world
    world.close()


def wait_until(predicate, timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.slow
def test_kill_9_of_redis_loses_no_acknowledged_claim(world, tmp_path):
    with serving(world.env(), tmp_path / "serve.log") as (base, _):
        stream = ClaimStream(base, world).start()
        stream.wait_for(200)
        world.kill_store()
        wait_until(lambda: stream.errors, what="the API to notice the store is gone")
        time.sleep(0.5)  # requests keep coming in while it is down
        world.restart_store()
        stream.wait_for(len(stream.acked) + 200)
        stream.finish()
    assert set(stream.errors) == {"503 store_unavailable"}, stream.errors
    reconcile(world)
    credited = check_claims(world, stream.acked)
    check_outboxes_settled(world)
    assert len(credited) >= len(stream.acked) >= 400


@pytest.mark.slow
def test_kill_9_of_a_worker_leaves_no_half_applied_claim(world, tmp_path):
    with serving(world.env(), tmp_path / "serve.log") as (base, master):
        stream = ClaimStream(base, world, threads=6).start()
        for round_ in range(3):
            stream.wait_for(150 * (round_ + 1))
            workers = psutil.Process(master.pid).children()
            assert workers, "gunicorn has no workers"
            os.kill(workers[round_ % len(workers)].pid, signal.SIGKILL)
        stream.wait_for(len(stream.acked) + 150)  # the master replaced the dead workers
        stream.finish()
    assert all(not kind.startswith("5") for kind in stream.errors), stream.errors
    reconcile(world)
    credited = check_claims(world, stream.acked)
    check_outboxes_settled(world)
    assert len(credited) >= len(stream.acked)


def make_events(client, members: int, moves: int) -> None:
    store, ledger = MemberStore(client, "ACME", master=TEST_MASTER), Ledger(client, "ACME")
    for m in range(members):
        member, _ = store.ensure(f"+86138{m:08d}")
        for n in range(moves):
            ledger.adjust(member.card, n + 1, reason=f"move {n}")


def event_keys(client) -> set[str]:
    keys = PointsKeys("ACME")
    return {
        f"ACME/{shard}/{entry_id.decode()}"
        for shard, stream in enumerate(keys.all_events())
        for entry_id, _ in client.xrange(stream)
    }


@pytest.mark.slow
def test_kill_9_of_the_bridge_delivers_every_event_at_least_once(
    redis_client, points_tenant, itemseal_env, tmp_path
):
    points_tenant()
    make_events(redis_client, members=40, moves=20)
    expected = event_keys(redis_client)
    args = [ITEMSEAL, "bridge", "run", "--tenant", "ACME", "--secret", "s3" * 8, "--consumer", "c1"]
    with serve_receiver() as (crm, url):
        answer = crm.answer

        def slow_answer(headers, body):  # a CRM that takes its time: deliveries overlap the kill
            time.sleep(0.004)
            return answer(headers, body)

        crm.answer = slow_answer
        with open(tmp_path / "bridge.log", "ab") as log:
            first = subprocess.Popen([*args, "--webhook", url], env=itemseal_env, stderr=log)
            wait_until(lambda: len(crm.accepted) >= 100, what="deliveries")
            first.send_signal(signal.SIGKILL)
            first.wait(10)
            at_kill = len(crm.accepted)
            make_events(redis_client, members=5, moves=10)  # more arrive while it is down
            expected |= event_keys(redis_client)
            second = subprocess.Popen([*args, "--webhook", url], env=itemseal_env, stderr=log)
            try:
                wait_until(lambda: expected <= set(crm.delivered()), what="every event")
            finally:
                second.send_signal(signal.SIGTERM)
                second.wait(20)
    assert at_kill < len(expected), "the kill came after the last delivery: proves nothing"
    delivered = crm.delivered()
    assert set(delivered) == expected  # each exactly once after deduplication by key
    by_key: dict[str, set[bytes]] = {}
    for headers, body in crm.accepted:
        by_key.setdefault(headers["Idempotency-Key"], set()).add(body)
    assert all(len(bodies) == 1 for bodies in by_key.values()), "a redelivery changed the event"
    assert sum(json.loads(b)["type"] == "ledger" for _, b in crm.accepted) >= 850
