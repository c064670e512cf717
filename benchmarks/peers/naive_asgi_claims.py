"""The naive ASGI peer with the least a durable first check with a phone needs: a yardstick.

Run: PEER_KEY=<hex> PEER_REDIS_URL=unix:///path.sock \
     gunicorn -k uvicorn_worker.UvicornWorker -w 2 benchmarks.peers.naive_asgi_claims:app

itemseal's first check (claim + points credit) waits for two fsync'd round
trips, as the issue that set its bar allows; what it costs beyond that is
its own work. This program does the same two round trips and nothing else,
so ``first_vs_peer_claims_first`` in bench_verify.py says how far itemseal's
claim and credit are from the cheapest durable ones a user could write:

1. one script counts the scan and, for the code's first scan with a phone,
   records the claim and an outbox entry (what is owed if the credit is lost);
2. one script pins the serial to the phone, adds 10 points to its balance,
   appends a ledger entry, records the idempotency key and deletes the
   outbox entry.

No rules, tiers, member records beyond a balance, rate limits, stats, risk
or CRM events; a single Redis (the scripts touch keys of several slots).
It is naive_asgi.py's program (its code check, ping and store, imported) with a
phone and the credit added; its keys are prefixed ``claims:`` so it shares a
redis-server with the other peers.
"""

from __future__ import annotations

import falcon
import falcon.asgi

from benchmarks.peers.naive_asgi import SERIAL_DIGITS, Ping, Store, authentic

OUTBOX = "claims:outbox"
CLAIM = """
local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
if n == 1 and ARGV[1] ~= '' then
  redis.call('HSET', KEYS[1], 'phone', ARGV[1])
  return {n, redis.call('XADD', KEYS[2], '*', 'serial', ARGV[2], 'phone', ARGV[1])}
end
return {n, false}
"""
CREDIT = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return false end
if redis.call('HGET', KEYS[4], ARGV[1]) then return false end
local balance = redis.call('HINCRBY', KEYS[2], 'balance', 10)
local id = redis.call('XADD', KEYS[3], '*', 'kind', 'credit', 'serial', ARGV[1],
                      'delta', '10', 'balance', balance)
redis.call('HSET', KEYS[4], ARGV[1], id)
redis.call('XDEL', KEYS[5], ARGV[3])
return balance
"""


class Verify:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        media = await req.get_media()
        code, phone = media.get("code"), media.get("phone") or ""
        if not isinstance(code, str) or not isinstance(phone, str):
            raise falcon.HTTPBadRequest(title="code and phone must be strings")
        digits = code.replace(" ", "")
        if not authentic(digits):
            resp.media = {"result": "counterfeit", "count": 0}
            return
        serial = digits[:SERIAL_DIGITS]
        count, entry = await self.store.claim(keys=[f"claims:scan:{serial}", OUTBOX],
                                              args=[phone, serial])
        answer = {"result": "genuine" if count == 1 else "already_verified", "count": count}
        if entry:
            keys = [f"claims:pin:{int(serial) // 128}", f"claims:member:{phone}",
                    f"claims:ledger:{phone}", f"claims:idem:{phone}", OUTBOX]
            answer["balance"] = await self.store.credit(keys=keys, args=[serial, phone, entry])
        resp.media = answer


store = Store(claim=CLAIM, credit=CREDIT)
app = falcon.asgi.App(middleware=[store])
app.add_route("/verify", Verify(store))
app.add_route("/ping", Ping())
