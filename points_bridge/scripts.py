"""The points scripts (``lua/*.lua``), registered once per client and called by SHA."""

from __future__ import annotations

import weakref

import redis

from codegen.store.scripts import register


class Scripts:
    """The scripts of points_bridge, each a redis-py ``Script`` (reloads on NOSCRIPT)."""

    def __init__(self, client: redis.Redis) -> None:
        self.member_update = register(client, "points_bridge", "member_update")
        self.ledger_apply = register(client, "points_bridge", "ledger_apply")
        self.del_if = register(client, "points_bridge", "del_if")
        self.reserve_spend = register(client, "points_bridge", "reserve_spend")
        self.out_enqueue = register(client, "points_bridge", "out_enqueue")
        self.out_charge = register(client, "points_bridge", "out_charge")
        self.out_result = register(client, "points_bridge", "out_result")
        self.out_receipt = register(client, "points_bridge", "out_receipt")


_registered: weakref.WeakKeyDictionary[redis.Redis, Scripts] = weakref.WeakKeyDictionary()


def scripts(client: redis.Redis) -> Scripts:
    """Return the scripts registered on ``client`` (once per client, not per call)."""
    found = _registered.get(client)
    if found is None:
        found = _registered[client] = Scripts(client)
    return found
