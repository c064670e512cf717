"""Sliding-window rate-limit arithmetic (pure) and the limiter on a real redis-server."""

from __future__ import annotations

import pytest
from helpers.aio import run
from hypothesis import assume, given
from hypothesis import strategies as st

from codegen.store.keyspace import TenantKeys
from codegen.store.wire import link_for
from verify_api.check.ratelimit import (
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
