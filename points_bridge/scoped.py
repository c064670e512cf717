"""The wiring every per-tenant points store shares: client, keys, clock, Lua scripts.

The points scripts (``points_bridge/lua/*.lua``) are registered once per
client (``points_scripts``), not once per store, and called by SHA through
the one loader, ``codegen/store/scripts.py``.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable

import redis

from codegen.keys import MasterKey
from codegen.store.keyspace import PointsKeys
from codegen.store.scripts import register


class PointsScripts:
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
        self.out_requeue = register(client, "points_bridge", "out_requeue")
        self.reward_reserve = register(client, "points_bridge", "reward_reserve")
        self.reward_settle = register(client, "points_bridge", "reward_settle")
        self.coupon_redeem = register(client, "points_bridge", "coupon_redeem")
        self.import_members = register(client, "points_bridge", "import_members")
        self.ledger_archive = register(client, "points_bridge", "ledger_archive")


_registered: weakref.WeakKeyDictionary[redis.Redis, PointsScripts] = weakref.WeakKeyDictionary()


def points_scripts(client: redis.Redis) -> PointsScripts:
    """Return the scripts registered on ``client`` (once per client, not per call)."""
    found = _registered.get(client)
    if found is None:
        found = _registered[client] = PointsScripts(client)
    return found


class TenantScoped:
    """Base of the stores that work on one tenant's points data."""

    def __init__(
        self, client: redis.Redis, tenant: str, *, clock: Callable[[], float] = time.time,
        master: MasterKey | None = None,
    ) -> None:
        """``master`` opens the tenant's card key: issuing a card and walking every
        member (``MemberStore.cards``) need it; finding and changing members do not."""
        self._redis = client
        self._master = master
        self.tenant = tenant
        self.keys = PointsKeys(tenant)
        self._clock = clock
        self._scripts = points_scripts(client)
