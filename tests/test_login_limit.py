"""Failed office log-ins per client address (``verify_api/admin/login_limit.py``).

The window arithmetic and the address grouping are pure (hypothesis); the
counting runs on the suite's real redis-server. The office's 429 page, the
audit entry and the trusted-proxy cases are in ``test_office.py``.
"""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codegen.store.keyspace import TenantKeys
from verify_api.admin.login_limit import (
    LoginLimit,
    LoginsLimited,
    subject_of,
    window_of,
)


@given(st.floats(0, 4e9), st.integers(1, 86_400))
def test_a_window_ends_where_the_next_begins(now, seconds):
    window = window_of(now, seconds)
    assert 1 <= window.left <= seconds
    assert window.number * seconds <= now < (window.number + 1) * seconds
    assert window_of((window.number + 1) * seconds, seconds).number == window.number + 1


@given(st.ip_addresses(v=6))
def test_an_ipv6_address_counts_as_its_64(address):
    subject = subject_of(str(address))
    if address.ipv4_mapped is not None:
        assert subject == str(address.ipv4_mapped)
    else:
        assert address in ipaddress.ip_network(subject) and subject.endswith("/64")
        neighbour = ipaddress.IPv6Address(int(address) ^ 0xFFFF)  # the same /64
        assert subject_of(str(neighbour)) == subject


@given(st.ip_addresses(v=4))
def test_an_ipv4_address_counts_alone(address):
    assert subject_of(str(address)) == str(address)


def test_not_an_address_is_counted_as_given():
    assert subject_of("") == "-" and subject_of("unix:sock") == "unix:sock"


def test_failures_are_counted_per_address_and_window(redis_client, clock):
    limit = LoginLimit(redis_client, "ACME", clock=clock, max_failures=3, window_seconds=60)
    for expected in (1, 2, 3):
        limit.check("198.51.100.7")
        assert limit.fail("198.51.100.7") == expected
    for first in (True, False):
        with pytest.raises(LoginsLimited) as refused:
            limit.check("198.51.100.7")
        assert refused.value.first is first and refused.value.status == 429
        assert refused.value.headers()["Retry-After"] == str(refused.value.retry_after)
    limit.check("198.51.100.8")  # another address
    LoginLimit(redis_client, "BETA", clock=clock, max_failures=3).check("198.51.100.7")
    key = TenantKeys("ACME").office_login_failures("198.51.100.7",
                                                   window_of(clock(), 60).number)
    assert 60 < redis_client.ttl(key) <= 120 and key.startswith("is:{ACME}:")
    clock.advance(60)
    limit.check("198.51.100.7")  # the next window
