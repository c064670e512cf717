"""The hand-written asyncio link (codegen/store/link.py) against a real redis-server.

What a shared, pipelined connection must get right: every caller gets its own
replies when many are in flight, a reply slower than the timeout breaks the
link (and the next call reconnects), a connection killed by the server fails
what was in flight, a callback ``defer``red to the turn's end leaves in the same
write, and a ``rediss://`` URL's TLS options mean what they mean to redis-py.
"""

from __future__ import annotations

import asyncio
import ssl
import time

import pytest
import redis
import redis.asyncio
from redis.connection import parse_url

from codegen.exc import StoreError
from codegen.store.link import RedisLink, ssl_context
from codegen.store.wire import pack


def test_many_callers_in_flight_each_get_their_own_replies(redis_server, redis_client):
    async def main() -> None:
        link = RedisLink(redis_server.url())
        try:
            async def one(i: int) -> tuple:
                await asyncio.sleep((i % 7) / 1000)  # callers arrive in different turns
                return await link.call(
                    pack(b"SET", b"k%d" % i, b"v%d" % i) + pack(b"INCR", b"n")
                    + pack(b"GET", b"k%d" % i), 3)  # fmt: skip

            found = await asyncio.gather(*(one(i) for i in range(300)))
            assert [reply[2] for reply in found] == [b"v%d" % i for i in range(300)]
            assert sorted(reply[1] for reply in found) == list(range(1, 301))
            assert link.writes < 300, "callers of one turn share a write"
        finally:
            await link.aclose()

    asyncio.run(main())


def test_a_reply_slower_than_the_timeout_breaks_the_link_and_the_next_call_reconnects(
    redis_server, redis_client
):
    async def main() -> None:
        link = RedisLink(redis_server.url(), timeout=0.3)
        try:
            assert await link.call(pack(b"PING")) == [b"PONG"]
            started = time.monotonic()
            slow = asyncio.ensure_future(link.call(pack(b"BLPOP", b"never", b"2")))
            behind = asyncio.ensure_future(link.call(pack(b"PING")))  # its reply would be late too
            for waiting in (slow, behind):
                with pytest.raises(StoreError, match="did not answer"):
                    await waiting
            assert time.monotonic() - started < 1.5
            assert await link.call(pack(b"PING")) == [b"PONG"]  # a new connection
        finally:
            await link.aclose()

    asyncio.run(main())


def test_a_connection_the_server_kills_fails_what_was_in_flight(redis_server, redis_client):
    async def main() -> None:
        link = RedisLink(redis_server.url())
        try:
            await link.call(pack(b"CLIENT", b"SETNAME", b"the-link"))
            in_flight = asyncio.ensure_future(link.call(pack(b"BLPOP", b"never", b"5")))
            await asyncio.sleep(0.1)
            killer = redis.Redis.from_url(redis_server.url())
            ours = [c for c in killer.client_list() if c["name"] == "the-link"]
            killer.client_kill_filter(_id=ours[0]["id"])
            killer.close()
            with pytest.raises(StoreError):
                await asyncio.wait_for(in_flight, 3)
            assert await link.call(pack(b"PING")) == [b"PONG"]
        finally:
            await link.aclose()

    asyncio.run(main())


def test_a_deferred_callback_sends_in_the_turn_s_write_and_survives_a_break(redis_server):
    async def main() -> None:
        link = RedisLink(redis_server.url())
        try:
            await link.call(pack(b"PING"))
            writes = link.writes
            late: list[asyncio.Future] = []
            link.defer(lambda: late.append(link.submit(pack(b"ECHO", b"deferred"))))
            assert await link.call(pack(b"ECHO", b"first")) == [b"first"]
            assert await late[0] == [b"deferred"]
            assert link.writes == writes + 1, "the deferred call left with the turn's"
            ran: list[str] = []
            link.defer(lambda: ran.append("hook"))
            link.close()  # the connection breaks before the turn's end
            await asyncio.sleep(0.01)
            assert ran == ["hook"], "a broken connection still hands its callbacks over"
        finally:
            await link.aclose()

    asyncio.run(main())


@pytest.mark.parametrize(
    "query",
    [
        "",
        "?ssl_cert_reqs=none",
        "?ssl_cert_reqs=optional&ssl_check_hostname=false",
        "?ssl_cert_reqs=required&ssl_check_hostname=true",
    ],
)
def test_tls_options_from_the_url_mean_what_they_mean_to_redis_py(query):
    """redis-py's own asyncio client is the oracle: the same URL, the same context."""
    url = f"rediss://localhost:6380/0{query}"
    ours = ssl_context(parse_url(url))
    kwargs = redis.asyncio.Redis.from_url(url).connection_pool.connection_kwargs
    theirs = redis.asyncio.connection.RedisSSLContext(
        keyfile=kwargs.get("ssl_keyfile"), certfile=kwargs.get("ssl_certfile"),
        cert_reqs=kwargs.get("ssl_cert_reqs", "required"), ca_certs=kwargs.get("ssl_ca_certs"),
        check_hostname=kwargs.get("ssl_check_hostname", True),
    ).get()  # fmt: skip
    assert isinstance(ours, ssl.SSLContext)
    assert (ours.verify_mode, ours.check_hostname) == (theirs.verify_mode, theirs.check_hostname)
