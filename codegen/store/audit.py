"""The audit trail: every change made through the admin API, per tenant.

One Redis stream per tenant (``TenantKeys.audit``), one entry per change:
who (the token id, or ``cli``), the action, its target, the record before
and after (JSON) and when. A stream because it is append-only and ordered,
and trimmed approximately to ``MAX_ENTRIES`` so it cannot grow without end.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from codegen.store.keyspace import TenantKeys
from codegen.times import iso

MAX_ENTRIES = 100_000


@dataclass(frozen=True)
class AuditEntry:
    entry_id: str
    actor: str
    action: str
    target: str
    before: object
    after: object
    at: float

    def to_json(self) -> dict:
        return {
            "id": self.entry_id, "actor": self.actor, "action": self.action,
            "target": self.target, "before": self.before, "after": self.after, "at": iso(self.at),
        }


class AuditLog:
    """Append to and read one tenant's audit stream."""

    def __init__(
        self, client: redis.Redis, tenant: str, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._redis = client
        self._key = TenantKeys(tenant).audit
        self._clock = clock

    def record(
        self, actor: str, action: str, target: str, before: object = None, after: object = None
    ) -> str:
        fields = {
            "actor": actor, "action": action, "target": target,
            "before": json.dumps(before, sort_keys=True, default=str),
            "after": json.dumps(after, sort_keys=True, default=str),
            "at": repr(self._clock()),
        }
        entry = self._redis.xadd(self._key, fields, maxlen=MAX_ENTRIES, approximate=True)
        return entry.decode()

    def entries(self, count: int = 100) -> list[AuditEntry]:
        """The latest ``count`` entries, newest first."""
        found = self._redis.xrevrange(self._key, count=count)
        out = []
        for entry_id, raw in found:
            f = {k.decode(): v.decode() for k, v in raw.items()}
            out.append(AuditEntry(
                entry_id.decode(), f["actor"], f["action"], f["target"],
                json.loads(f["before"]), json.loads(f["after"]), float(f["at"]),
            ))
        return out
