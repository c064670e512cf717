"""Sliding-window rate-limit arithmetic (pure) and the limiter on a real redis-server."""

from __future__ import annotations

import uuid

import pytest
from helpers.aio import run
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from codegen.store.keyspace import TenantKeys
from codegen.store.wire import link_for
from verify_api.check.ratelimit import (
    SETTLED_FRACTION,
    Hit,
    Limit,
    RateLimiter,
    estimate,
    retry_after,
    window_position,
)
from verify_api.check.scans import VerifyScripts
from verify_api.exc import RateLimited

limits = st.builds(Limit, st.integers(1, 1000), st.integers(1, 3600))


def allowed_after(wait: int, current: int, previous: int, fraction: float, limit: Limit) -> bool:
    """Would one more request ``wait`` seconds from now be under the limit?"""
    moved = fraction + wait / limit.seconds
    if moved < 1:
        return estimate(current + 1, previous, moved) <= limit.count
    if moved < 2:
        return estimate(1, current, moved - 1) <= limit.count
    return True


@given(limits, st.integers(0, 5000), st.integers(0, 5000), st.floats(0, 0.999))
def test_retry_after_is_enough_and_at_most_two_windows(limit, current, previous, fraction):
    current = max(current, 1)
    assume(estimate(current, previous, fraction) > limit.count)
    wait = retry_after(current, previous, fraction, limit)
    assert 1 <= wait <= 2 * limit.seconds + 1
    assert allowed_after(wait, current, previous, fraction, limit)


@given(st.floats(0, 4e9), st.integers(1, 86400))
def test_window_position(now, seconds):
    index, fraction = window_position(now, seconds)
    assert 0 <= fraction < 1
    assert index * seconds <= now < (index + 1) * seconds + 1e-6


@pytest.mark.parametrize(
    "text, expected",
    [("300/60", Limit(300, 60)), ("20", Limit(20, 60)), ("0", None), ("off", None)],
)
def test_limit_parse(text, expected):
    assert Limit.parse(text) == expected


@pytest.mark.parametrize("text", ["x/60", "-1/60", "5/0"])
def test_limit_parse_refuses(text):
    with pytest.raises(ValueError):
        Limit.parse(text)


def test_limiter_counts_in_redis_and_windows_slide(redis_client, clock):
    pipe = link_for(redis_client)
    limiter = RateLimiter(VerifyScripts(pipe), clock=clock)
    hits = [Hit("ip/192.0.2.1", Limit(5, 10)), Hit("phone/abc", Limit(100, 10))]
    for _ in range(5):
        run(limiter.check("ACME", hits))
    with pytest.raises(RateLimited) as caught:
        run(limiter.check("ACME", hits))
    assert caught.value.subject == "ip" and caught.value.retry_after >= 1
    clock.advance(caught.value.retry_after)
    run(limiter.check("ACME", hits))  # the window slid far enough for one more
    run(limiter.check("ACME", [Hit("ip/192.0.2.2", Limit(5, 10))]))  # another client never waited
    pipe.close()


def test_a_window_counter_expires_two_windows_after_it_starts(redis_client, clock):
    pipe = link_for(redis_client)
    limiter = RateLimiter(VerifyScripts(pipe), clock=clock)
    hit = Hit("ip/192.0.2.9", Limit(50, 10))
    for _ in range(3):
        run(limiter.check("ACME", [hit]))
    index, _ = window_position(clock(), 10)
    key = TenantKeys("ACME").rate_limit(hit.subject, index)
    assert redis_client.get(key) == b"3"
    assert 0 < redis_client.ttl(key) <= 20  # two windows, set by the first hit's SET NX
    pipe.close()


def _names(pending) -> list[bytes]:
    """The command of each packed command (``*N\\r\\n$L\\r\\nNAME...``)."""
    return [command.split(b"\r\n")[2] for command in pending.commands]


def _count(limiter: RateLimiter, pipe, hits: list[Hit]) -> list[bytes]:
    """One round trip of ``hits``, as the engine makes it; the commands it sent."""
    pending = limiter.prepare("ACME", hits)
    limiter.settle(pending, run(pipe.call(b"".join(pending.commands), len(pending.commands))))
    return _names(pending)


def test_a_worker_that_knows_the_windows_counts_a_hit_with_one_command(redis_client, clock):
    """Once a worker has counted in a window, the counter exists with its expiry; once the
    previous window is over, its count no longer moves: the next hits are an INCRBY each."""
    pipe = link_for(redis_client)
    limiter = RateLimiter(VerifyScripts(pipe), clock=clock)
    hits = [Hit("ip/192.0.2.7", Limit(50, 10)), Hit("phone/def", Limit(50, 10))]
    redis_client.set(TenantKeys("ACME").rate_limit("ip/192.0.2.7",
                                                    window_position(clock(), 10)[0] - 1), 7)
    clock.advance(10 * SETTLED_FRACTION / 2)  # the previous window just ended: read it again
    assert _count(limiter, pipe, hits) == [b"SET", b"INCRBY", b"GET"] * 2
    assert _count(limiter, pipe, hits) == [b"INCRBY", b"GET"] * 2
    clock.advance(2)
    assert _count(limiter, pipe, hits) == [b"INCRBY", b"GET"] * 2
    assert _count(limiter, pipe, hits) == [b"INCRBY"] * 2
    index, _ = window_position(clock(), 10)
    key = TenantKeys("ACME").rate_limit("ip/192.0.2.7", index)
    assert redis_client.get(key) == b"4" and 0 < redis_client.ttl(key) <= 20
    pending = limiter.prepare("ACME", hits)
    assert [c.previous_count for c in pending.counted] == [7, 0], "the counts it read"
    pipe.close()


def test_a_counter_that_vanished_gets_its_expiry_back_on_the_next_round_trip(
        redis_client, clock):
    pipe = link_for(redis_client)
    limiter = RateLimiter(VerifyScripts(pipe), clock=clock)
    hit = Hit("ip/192.0.2.8", Limit(50, 10))
    clock.advance(1)
    _count(limiter, pipe, [hit])
    key = TenantKeys("ACME").rate_limit(hit.subject, window_position(clock(), 10)[0])
    redis_client.delete(key)  # by hand, or a backup restored under the worker
    assert _count(limiter, pipe, [hit]) == [b"INCRBY"]
    assert redis_client.ttl(key) == -1, "made again by the INCRBY, without an expiry"
    limiter.prepare("ACME", [hit])  # a round trip that never came back: the EXPIRE stays owed
    assert _count(limiter, pipe, [Hit("ip/192.0.2.99", Limit(50, 10))])[0] == b"EXPIRE"
    assert redis_client.get(key) == b"1" and 0 < redis_client.ttl(key) <= 20
    pipe.close()


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.floats(0, 4), st.integers(0, 2)), min_size=1, max_size=40))
def test_remembering_the_windows_changes_no_decision(redis_client, steps):
    """Each check's verdict is the sliding-window estimate of exact per-window counts (a model
    in this test), with a refused client refused locally until its Retry-After: what
    a worker remembers of the windows saves commands, never changes an answer."""
    from conftest import ManualClock

    clock, limit, tag = ManualClock(), Limit(4, 10), uuid.uuid4().hex
    pipe = link_for(redis_client)
    limiter = RateLimiter(VerifyScripts(pipe), clock=clock)
    counts: dict[tuple[str, int], int] = {}
    refused_until: dict[str, float] = {}
    for advance, who in steps:
        clock.advance(advance)
        subject, now = f"ip/{tag}-{who}", clock()
        index, fraction = window_position(now, limit.seconds)
        expected = now < refused_until.get(subject, 0.0)
        if not expected:
            counts[subject, index] = counts.get((subject, index), 0) + 1
            current, previous = counts[subject, index], counts.get((subject, index - 1), 0)
            if estimate(current, previous, fraction) > limit.count:
                expected = True
                refused_until[subject] = now + retry_after(current, previous, fraction, limit)
        try:
            run(limiter.check("ACME", [Hit(subject, limit)]))
            refused = False
        except RateLimited:
            refused = True
        assert refused == expected
    pipe.close()
