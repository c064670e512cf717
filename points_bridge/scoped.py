"""The wiring every per-tenant points store shares: client, keys, clock, scripts."""

from __future__ import annotations

import time
from collections.abc import Callable

import redis

from codegen.store.keyspace import PointsKeys
from points_bridge.scripts import scripts


class TenantScoped:
    """Base of the stores that work on one tenant's points data."""

    def __init__(
        self, client: redis.Redis, tenant: str, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._redis = client
        self.tenant = tenant
        self.keys = PointsKeys(tenant)
        self._clock = clock
        self._scripts = scripts(client)
