"""A naive verification server a user could write instead of itemseal: falcon WSGI + redis-py.

Run: PEER_KEY=<hex> PEER_REDIS_URL=unix:///path.sock \
     gunicorn -k gevent -w 2 benchmarks.peers.naive_wsgi:app

It is the baseline itemseal's serving stack is measured against, so it does
the same kind of work per check and nothing more: parse JSON, keep the
digits, check an HMAC-SHA256 tag in constant time, and count the scan with
one EVALSHA. The code scheme is benchmarks/peers/codes.py's, spelled out here.
"""

from __future__ import annotations

import hmac
import os

import falcon
import redis

KEY = bytes.fromhex(os.environ["PEER_KEY"])
SERIAL_DIGITS, TAG_DIGITS = 11, 13
COUNT_SCAN = "return redis.call('HINCRBY', KEYS[1], 'n', 1)"

client = redis.Redis.from_url(os.environ.get("PEER_REDIS_URL", "redis://127.0.0.1:6379/0"))
count_scan = client.register_script(COUNT_SCAN)  # EVALSHA, EVAL once if Redis lost it


def authentic(digits: str) -> bool:
    if len(digits) != SERIAL_DIGITS + TAG_DIGITS or not digits.isascii() or not digits.isdigit():
        return False
    serial, given = digits[:SERIAL_DIGITS], digits[SERIAL_DIGITS:]
    mac = hmac.digest(KEY, serial.encode(), "sha256")
    expected = f"{int.from_bytes(mac[:8], 'big') % 10**TAG_DIGITS:0{TAG_DIGITS}d}"
    return hmac.compare_digest(expected.encode(), given.encode())


class Verify:
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        code = req.get_media().get("code")
        if not isinstance(code, str):
            raise falcon.HTTPBadRequest(title="code must be a string")
        digits = code.replace(" ", "")
        if not authentic(digits):
            resp.media = {"result": "counterfeit", "count": 0}
            return
        count = count_scan(keys=[f"scan:{digits[:SERIAL_DIGITS]}"])
        resp.media = {"result": "genuine" if count == 1 else "already_verified", "count": count}


class Ping:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"ok": True}


app = falcon.App()
app.add_route("/verify", Verify())
app.add_route("/ping", Ping())
