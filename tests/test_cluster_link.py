"""The cluster link: commands routed by slot, replies in order, MOVED and ASK followed."""

from __future__ import annotations

from collections.abc import Iterator

import hiredis
import pytest
from helpers.aio import Blocking, run
from helpers.cluster import LocalCluster, running_cluster
from hypothesis import given
from hypothesis import strategies as st
from redis.crc import key_slot

from codegen.store.cluster_link import ClusterLink, routing_key, split_commands
from codegen.store.embedded import cluster_url
from codegen.store.link import RedisLink
from codegen.store.wire import pack

ARG = st.binary(max_size=40)


@given(st.lists(st.tuples(st.sampled_from([b"GET", b"HSET", b"EVALSHA", b"PING"]),
                          st.lists(ARG, min_size=0, max_size=6)), min_size=1, max_size=8))
def test_split_gives_back_each_command_and_its_key(commands):
    packed = []
    for name, args in commands:
        if name == b"EVALSHA":
            args = [b"0" * 40, b"%d" % min(len(args), 2), *args]
        packed.append(pack(name, *args))
    parts = split_commands(b"".join(packed), len(packed))
    assert [part for part, _ in parts] == packed
    for (name, args), (_, key) in zip(commands, parts, strict=True):
        if name == b"PING":
            assert key is None
        elif name == b"EVALSHA":
            assert key == (args[0] if args else None)
        else:
            assert key == (args[0] if args else None)


def test_routing_key_of_scripts_and_commands():
    assert routing_key([b"EVALSHA", b"f" * 40, b"2", b"is:{A}:x", b"is:{A}:y"]) == b"is:{A}:x"
    assert routing_key([b"EVALSHA", b"f" * 40, b"0", b"arg"]) is None
    assert routing_key([b"script", b"LOAD", b"return 1"]) is None
    assert routing_key([b"XDEL", b"is:{A/s0}:claims", b"1-0"]) == b"is:{A/s0}:claims"


def test_cluster_urls():
    assert cluster_url("redis+cluster://h:7000/0") == "redis://h:7000/0"
    assert cluster_url("rediss+cluster://u:p@h:7000") == "rediss://u:p@h:7000"
    assert cluster_url("redis://h:6379") is None and cluster_url("unix:///x.sock") is None


@pytest.fixture(scope="module")
def private_cluster() -> Iterator[LocalCluster]:
    """A cluster of its own: these tests move slots between masters."""
    with running_cluster("is-cp-") as cluster:
        yield cluster


@pytest.fixture
def pipe(private_cluster) -> Iterator[Blocking]:
    link = ClusterLink([("127.0.0.1", private_cluster.ports[0])], timeout=5)
    yield Blocking(link)
    link.close()


def owner(cluster: LocalCluster, key: bytes) -> int:
    """The port of the master serving ``key``'s slot, as the first master says now."""
    slot = key_slot(key)
    raw = RedisLink(f"redis://127.0.0.1:{cluster.ports[0]}")
    try:
        (ranges,) = run(raw.call(pack(b"CLUSTER", b"SLOTS")))
    finally:
        raw.close()
    for start, end, master, *_ in ranges:
        if start <= slot <= end:
            return int(master[1])
    raise AssertionError(f"slot {slot} has no master")


def move_slot(cluster: LocalCluster, key: bytes, *, finish: bool) -> int:
    """Migrate ``key``'s slot (and its keys) to another master; return that master's port."""
    slot, src_port = key_slot(key), owner(cluster, key)
    dst_port = next(p for p in cluster.ports if p != src_port)
    src, dst = cluster.node(src_port), cluster.node(dst_port)
    src_id, dst_id = (n.execute_command("CLUSTER MYID") for n in (src, dst))
    dst.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", src_id)
    src.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", dst_id)
    for name in src.execute_command("CLUSTER GETKEYSINSLOT", slot, 100):
        src.execute_command("MIGRATE", "127.0.0.1", dst_port, name, 0, 5000)
    if finish:
        for port in cluster.ports:
            cluster.node(port).execute_command("CLUSTER SETSLOT", slot, "NODE", dst_id)
    return dst_port


def test_one_call_spans_every_master_and_keeps_its_order(pipe, private_cluster):
    keys = [b"k{%d}" % i for i in range(30)]
    assert len({owner(private_cluster, k) for k in keys}) == 3
    sets = pipe.call(b"".join(pack(b"SET", k, b"v" + k) for k in keys), len(keys))
    assert sets == [b"OK"] * len(keys)
    mixed = [pack(b"GET", k) for k in keys] + [pack(b"PING"), pack(b"INCRBY", keys[0], b"x")]
    replies = pipe.call(b"".join(mixed), len(mixed))
    assert replies[: len(keys)] == [b"v" + k for k in keys]
    assert replies[len(keys)] == b"PONG"
    assert isinstance(replies[-1], hiredis.ReplyError)  # an error stays in its slot


def test_a_moved_slot_is_followed_and_nothing_runs_twice(pipe, private_cluster):
    key = b"counter{moved}"
    assert pipe.call(pack(b"INCR", key)) == [1]  # the pipe now knows the slot map
    before = owner(private_cluster, key)
    after = move_slot(private_cluster, key, finish=True)
    assert after != before and owner(private_cluster, key) == after
    assert pipe.call(pack(b"INCR", key) + pack(b"GET", key), 2) == [2, b"2"]
    assert private_cluster.node(after).get(key) == b"2"


def test_a_slot_in_migration_is_asked_of_its_new_master(pipe, private_cluster):
    key, stays = b"a{asked}", b"b{asked}"
    pipe.call(pack(b"SET", key, b"1"))
    move_slot(private_cluster, key, finish=False)  # every key moved, the slot not yet handed over
    assert pipe.call(pack(b"INCR", key) + pack(b"GET", key), 2) == [2, b"2"]
    assert pipe.call(pack(b"GET", stays)) == [None]
