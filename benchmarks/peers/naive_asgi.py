"""A naive verification server a user could write instead of itemseal: falcon ASGI + redis.asyncio.

Run: PEER_KEY=<hex> PEER_REDIS_URL=unix:///path.sock \
     gunicorn -k uvicorn_worker.UvicornWorker -w 2 benchmarks.peers.naive_asgi:app

The asyncio twin of naive_wsgi.py (same checks, same one EVALSHA per
authentic code): the stack people reach for when they want "fast Python".
The Redis client is made in the lifespan startup, inside each worker's own
event loop, because an asyncio connection belongs to the loop that opened it.
"""

from __future__ import annotations

import hmac
import os

import falcon
import falcon.asgi
import redis.asyncio as aioredis

KEY = bytes.fromhex(os.environ["PEER_KEY"])
SERIAL_DIGITS, TAG_DIGITS = 11, 13
COUNT_SCAN = "return redis.call('HINCRBY', KEYS[1], 'n', 1)"


def authentic(digits: str) -> bool:
    if len(digits) != SERIAL_DIGITS + TAG_DIGITS or not digits.isascii() or not digits.isdigit():
        return False
    serial, given = digits[:SERIAL_DIGITS], digits[SERIAL_DIGITS:]
    mac = hmac.digest(KEY, serial.encode(), "sha256")
    expected = f"{int.from_bytes(mac[:8], 'big') % 10**TAG_DIGITS:0{TAG_DIGITS}d}"
    return hmac.compare_digest(expected.encode(), given.encode())


class Store:
    """Lifespan middleware: one redis.asyncio client per worker, and its scripts as
    attributes by name (``Store(count_scan=COUNT_SCAN).count_scan``)."""

    def __init__(self, **scripts: str) -> None:
        self._scripts = scripts

    async def process_startup(self, scope: dict, event: dict) -> None:
        url = os.environ.get("PEER_REDIS_URL", "redis://127.0.0.1:6379/0")
        self.client = aioredis.Redis.from_url(url)
        for name, source in self._scripts.items():
            setattr(self, name, self.client.register_script(source))

    async def process_shutdown(self, scope: dict, event: dict) -> None:
        await self.client.aclose()


class Verify:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        code = (await req.get_media()).get("code")
        if not isinstance(code, str):
            raise falcon.HTTPBadRequest(title="code must be a string")
        digits = code.replace(" ", "")
        if not authentic(digits):
            resp.media = {"result": "counterfeit", "count": 0}
            return
        count = await self.store.count_scan(keys=[f"scan:{digits[:SERIAL_DIGITS]}"])
        resp.media = {"result": "genuine" if count == 1 else "already_verified", "count": count}


class Ping:
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.media = {"ok": True}


store = Store(count_scan=COUNT_SCAN)
app = falcon.asgi.App(middleware=[store])
app.add_route("/verify", Verify(store))
app.add_route("/ping", Ping())
