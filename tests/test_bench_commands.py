"""The benchmark's per-command meter, against the suite's real redis-server."""

from __future__ import annotations

import pytest
import redis

from benchmarks.fixtures import CommandMeter


def test_the_command_meter_counts_what_a_load_sent_scripts_calls_included(redis_client):
    if not isinstance(redis_client, redis.Redis):
        pytest.skip("the meter reads one server's INFO commandstats")
    meter = CommandMeter(redis_client)
    for _ in range(10):
        redis_client.hincrby("bench:meter", "n", 1)
    for _ in range(5):
        redis_client.eval("return redis.call('HGET', KEYS[1], 'n')", 1, "bench:meter")
    got = meter.per_request(10)
    assert got["hincrby"]["calls"] == 1.0
    assert (got["eval"]["calls"], got["hget"]["calls"]) == (0.5, 0.5)
    assert all(figures["usec"] >= 0 for figures in got.values())
    assert list(got)[0] == max(got, key=lambda name: got[name]["usec"]), "costliest first"
