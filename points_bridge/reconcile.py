"""Replay the claims outboxes of a tenant so that every claimed code is credited.

The verify script appends each claim to its segment's outbox
(``PointsKeys.claims``) in the same script that claims the code, so a claim
is never without its outbox entry. If the process dies before it credits,
the credit is missing; this module finds it. For each segment of each batch
(``codegen.batches``), it reads the outbox after a checkpoint stored in the
segment's slot, credits each claim with ``BlockingCrediter`` (idempotent by
serial, so an entry replayed twice credits once), then moves the checkpoint
and trims the outbox up to it.

Entries younger than ``min_age`` seconds are left for the next run: they are
most likely being credited by the request that made them right now.
Running two reconcilers at once is harmless (credits are idempotent), only
wasteful. A claim that can never be credited (a phone that does not parse)
is reported and passed over rather than blocking the segment for ever.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import redis

from codegen.batches import BatchRegistry, segments_of
from codegen.store.keyspace import PointsKeys
from points_bridge.credit import BlockingCrediter
from points_bridge.exc import PointsError

CHUNK = 500


@dataclass
class ReconcileReport:
    """What one run did; ``failed`` lists (outbox entry id, reason)."""

    segments: int = 0
    seen: int = 0
    credited: int = 0
    duplicates: int = 0
    points: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)


def _fields(raw: dict[bytes, bytes]) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in raw.items()}


class Reconciler:
    """Credit the claims of one tenant that a crash left uncredited."""

    def __init__(
        self,
        client: redis.Redis,
        tenant: str,
        *,
        min_age: float = 30.0,
        trim: bool = True,
        clock: Callable[[], float] = time.time,
        crediter: BlockingCrediter | None = None,
    ) -> None:
        self._redis = client
        self.tenant = tenant
        self.keys = PointsKeys(tenant)
        self._min_age = min_age
        self._trim = trim
        self._clock = clock
        self._crediter = crediter or BlockingCrediter(client)

    def segments(self) -> list[int]:
        """Return every segment a batch of the tenant covers."""
        found: set[int] = set()
        for batch in BatchRegistry(self._redis, self.tenant).list():
            found.update(segments_of(batch.first_serial, batch.last_serial))
        return sorted(found)

    def run(self) -> ReconcileReport:
        report = ReconcileReport()
        for segment in self.segments():
            report.segments += 1
            self.reconcile_segment(segment, report)
        return report

    def reconcile_segment(self, segment: int, report: ReconcileReport) -> None:
        outbox, checkpoint = self.keys.claims(segment), self.keys.reconcile_checkpoint(segment)
        newest = int((self._clock() - self._min_age) * 1000)
        last = (self._redis.get(checkpoint) or b"").decode()
        while True:
            chunk = self._redis.xrange(outbox, f"({last}" if last else "-", "+", count=CHUNK)
            done = None
            for entry_id, raw in chunk:
                entry_id = entry_id.decode()
                if int(entry_id.split("-")[0]) > newest:
                    break
                self._credit(entry_id, _fields(raw), report)
                done = entry_id
            if done is None:
                return
            self._redis.set(checkpoint, done)
            if self._trim:
                self._redis.xtrim(outbox, minid=done, approximate=False)
            last = done
            if len(chunk) < CHUNK:
                return

    def _credit(self, entry_id: str, claim: dict[str, str], report: ReconcileReport) -> None:
        report.seen += 1
        if not claim.get("phone"):
            return  # a claim without a member phone earns nothing
        try:
            result = self._crediter.credit_claim(
                self.tenant,
                claim["phone"],
                int(claim["serial"]),
                claim.get("sku", ""),
                claim.get("channel", "api"),
                claim.get("region") or None,
                int(float(claim.get("at") or self._clock())),
            )
        except (PointsError, KeyError, ValueError) as exc:
            report.failed.append((entry_id, f"{type(exc).__name__}: {exc}"))
            return
        if result.duplicate:
            report.duplicates += 1
        else:
            report.credited += 1
            report.points += result.points
