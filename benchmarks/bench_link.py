"""Is the hand-written asyncio link (codegen/store/link.py) worth keeping over redis.asyncio?

    flock /tmp/itemseal-bench.lock .venv/bin/python benchmarks/bench_link.py

The question the ASGI issue asks: keep a hand-written Redis link only where it
is >= 1.2x faster on the check path than the ecosystem's client. This measures
exactly the check's Redis traffic, in one process on one event loop (uvloop,
as the uvicorn worker runs): ``--concurrency`` requests at once, each sending
what a repeat check with a phone sends in its round trip (the rate-limit
commands, the verify EVALSHA of a real activated code, the phone-index GET),
against one redis-server with ``appendfsync always``, through

* ``link``: the commands packed (``wire.pack``) and sent by ``RedisLink.call``
  (what the API does);
* ``redis_asyncio``: ``redis.asyncio.Redis`` with hiredis, one
  ``pipeline(transaction=False)`` of the same commands per request
  (the idiomatic way to send them in one round trip).

Each round runs both, alternating; the figure is checks per second of the
*client process's CPU* (``time.process_time``), because on the 2-core box the
API's CPU, not Redis, bounds the check, plus wall rate. The last line is one
JSON object with ``cpu_ratio`` = link / redis_asyncio checks per CPU second.
Drop the link for redis-py when that ratio falls under 1.2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import redis
import redis.asyncio

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.fixtures import machine, seed_active_batch  # noqa: E402
from codegen.codes import NUMERIC_24  # noqa: E402
from codegen.keys import MasterKey  # noqa: E402
from codegen.store.embedded import EmbeddedRedis  # noqa: E402
from codegen.store.keyspace import PointsKeys, TenantKeys  # noqa: E402
from codegen.store.link import RedisLink  # noqa: E402
from codegen.store.wire import ScriptSet, is_error, pack  # noqa: E402
from verify_api.check.scans import CheckContext, ScanQuery, verify_calls  # noqa: E402

TENANT, SKU, PHONE = "BENCH", "SKU-1", "+8613800138000"


def request_commands(scripts: ScriptSet, serial: int, now: int) -> list[tuple[bytes, tuple]]:
    """One repeat check's commands, packed and as argument tuples for redis-py."""
    keys = TenantKeys(TENANT)
    context = CheckContext(b"v", channel=1, phone_fingerprint=7, cap=1000, phone=PHONE,
                           channel_name="api")
    (call, _), = verify_calls(scripts, keys, [ScanQuery(serial, 0, NUMERIC_24.wire_id)],
                              context, now)
    window = now // 60
    current = keys.rate_limit("ip/bench", window).encode()
    counting = [pack(b"SET", current, b"0", b"EX", b"120", b"NX"), pack(b"INCRBY", current, b"1"),
                pack(b"GET", keys.rate_limit("ip/bench", window - 1).encode())]
    index = pack(b"GET", PointsKeys(TENANT).phone(PHONE).encode())
    return [call, *counting, index]


def as_args(packed: bytes) -> tuple:
    """The argument tuple of one packed command (for redis-py's execute_command)."""
    import hiredis

    reader = hiredis.Reader()
    reader.feed(packed)
    return tuple(reader.gets())


async def drive(send, requests: list[list], concurrency: int, seconds: float) -> dict:
    done = 0
    stop = time.monotonic() + seconds

    async def worker(offset: int) -> None:
        nonlocal done
        i = offset
        while time.monotonic() < stop:
            await send(requests[i % len(requests)])
            done += 1
            i += concurrency

    cpu0, wall0 = time.process_time(), time.monotonic()
    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    return {"checks_per_cpu_s": done / cpu, "rps": done / wall}


async def run_link(url: str, argv: list[list[tuple]], concurrency: int, seconds: float) -> dict:
    link = RedisLink(url)

    async def send(commands: list[tuple]) -> list:
        replies = await link.call(b"".join(pack(*args) for args in commands), len(commands))
        assert not any(is_error(r) for r in replies), replies
        return replies

    await send(argv[0])
    try:
        return await drive(send, argv, concurrency, seconds)
    finally:
        link.close()


async def run_redis_py(url: str, argv: list[list[tuple]], concurrency: int, seconds: float) -> dict:
    client = redis.asyncio.Redis.from_url(url, max_connections=concurrency + 4)

    async def send(commands: list[tuple]) -> list:
        pipe = client.pipeline(transaction=False)
        for args in commands:
            pipe.execute_command(*args)
        replies = await pipe.execute(raise_on_error=False)
        assert not any(isinstance(r, Exception) for r in replies), replies
        return replies

    await send(argv[0])
    try:
        return await drive(send, argv, concurrency, seconds)
    finally:
        await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--concurrency", type=int, default=16)
    opts = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    with tempfile.TemporaryDirectory(prefix="is-link-") as home:
        server = EmbeddedRedis(Path(home))
        server.start()
        try:
            client = server.client()
            master = MasterKey(b"\x01" * 32)
            _, first = seed_active_batch(client, master, TENANT, SKU, 50_000,
                                         limits={"verify_rate_ip": "0"})
            scripts = ScriptSet(None, "verify_api", ("verify",))  # packing only
            client.script_load(scripts._source["verify"])
            now = int(time.time())
            packed = [request_commands(scripts, first + i, now) for i in range(5_000)]
            argv = [[as_args(c) for c in commands] for commands in packed]
            url = f"unix://{server.socket_path}"
            runs: dict[str, list[dict]] = {"link": [], "redis_asyncio": []}
            for _ in range(opts.rounds):
                runs["link"].append(asyncio.run(
                    run_link(url, argv, opts.concurrency, opts.seconds)))
                runs["redis_asyncio"].append(asyncio.run(
                    run_redis_py(url, argv, opts.concurrency, opts.seconds)))
        finally:
            server.stop()

    def median(name: str, figure: str) -> float:
        return round(statistics.median(r[figure] for r in runs[name]), 1)

    result = {
        "link_checks_per_cpu_s": median("link", "checks_per_cpu_s"),
        "redis_asyncio_checks_per_cpu_s": median("redis_asyncio", "checks_per_cpu_s"),
        "link_rps": median("link", "rps"),
        "redis_asyncio_rps": median("redis_asyncio", "rps"),
        "rounds": runs,
        "machine": machine(redis=redis.__version__),
    }
    result["cpu_ratio"] = round(
        result["link_checks_per_cpu_s"] / result["redis_asyncio_checks_per_cpu_s"], 2)
    result["rps_ratio"] = round(result["link_rps"] / result["redis_asyncio_rps"], 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
