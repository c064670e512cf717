"""Replay the claims outboxes of a tenant so that every claimed code is credited.

The verify script appends each claim to its segment's outbox
(``PointsKeys.claims``) in the same script that claims the code, so a claim
is never without its outbox entry. If the process dies before it credits,
the credit is missing; this module finds it. For each segment of each batch
(``codegen.batches``), it reads the outbox after a checkpoint stored in the
segment's slot, credits each claim with ``BlockingCrediter`` (idempotent by
serial, so an entry replayed twice credits once), then moves the checkpoint
and trims the outbox up to it.

Nothing acknowledged is lost, nothing is stuck:

* **Transient failures** (``Contended``: the member kept changing; the store
  unreachable or timing out) are retried with exponential backoff. One still
  failing after ``attempts`` tries stops that segment *before* the claim: the
  checkpoint never passes a claim that is not settled, and the next run
  starts there. Other segments go on.
* **Permanent failures** (a phone that does not parse, a product or setting
  the rules refuse, any error the same input would meet again) are parked in
  the tenant's dead-letter stream (``PointsKeys.claims_dead``) with the
  reason, and the segment moves on. ``itemseal points dead`` lists them and
  ``itemseal points replay`` credits them again once the cause is fixed.
* **Waiting claims** of members frozen when they claimed
  (``PointsKeys.pending``) are credited once their member is active again
  (``BlockingCrediter.settle_pending``), in case an unfreeze was cut off.

Entries younger than ``min_age`` seconds are left for the next run: they are
most likely being credited by the request that made them right now.
Running two reconcilers at once is harmless (credits are idempotent), only
wasteful.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import redis

from codegen.batches import BatchRegistry, segments_of
from codegen.exc import ItemsealError
from codegen.keys import MasterKey
from codegen.store.keyspace import PointsKeys
from codegen.store.wire import text_pairs
from points_bridge.credit import BlockingCrediter, CreditResult
from points_bridge.exc import Contended, UnknownDeadLetter

CHUNK = 500
TRANSIENT = (Contended, redis.ConnectionError, redis.TimeoutError)
PERMANENT = (ItemsealError, KeyError, ValueError, TypeError, OverflowError, redis.ResponseError)
"""What the same claim would meet again: parked, not retried (``Contended`` is caught first)."""

log = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    """What one run did.

    ``failed`` lists (outbox entry id, reason) of the claims parked in the
    dead-letter stream this run; ``unsettled`` those a transient failure left
    for the next run (their segment stopped there); ``pending`` the claims of
    frozen members that wait; ``settled`` the waiting claims credited now.
    """

    segments: int = 0
    seen: int = 0
    credited: int = 0
    duplicates: int = 0
    points: int = 0
    pending: int = 0
    settled: int = 0
    retries: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    unsettled: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class DeadClaim:
    """A claim parked in the dead-letter stream, with why."""

    dead_id: str
    outbox_entry: str
    serial: int
    phone: str
    reason: str
    at: int
    claim: dict[str, str]


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
        sleep: Callable[[float], None] = time.sleep,
        crediter: BlockingCrediter | None = None,
        attempts: int = 5,
        backoff: float = 0.05,
        max_backoff: float = 2.0,
        master: MasterKey | None = None,
    ) -> None:
        """``master`` opens the card key for a claim whose phone has no member yet."""
        self._redis = client
        self.tenant = tenant
        self.keys = PointsKeys(tenant)
        self._min_age = min_age
        self._trim = trim
        self._clock = clock
        self._sleep = sleep
        self._crediter = crediter or BlockingCrediter(client, clock=clock, master=master)
        self._attempts = max(1, attempts)
        self._backoff = backoff
        self._max_backoff = max_backoff

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
        try:
            report.settled, points = self._crediter.settle_pending(self.tenant)
            report.points += points
        except TRANSIENT as exc:  # the next run settles them
            report.unsettled.append(("pending", f"{type(exc).__name__}: {exc}"))
        return report

    def reconcile_segment(self, segment: int, report: ReconcileReport) -> None:
        """Credit the segment's owed claims in order, stopping before one left unsettled."""
        outbox, checkpoint = self.keys.claims(segment), self.keys.reconcile_checkpoint(segment)
        newest = int((self._clock() - self._min_age) * 1000)
        last = (self._redis.get(checkpoint) or b"").decode()
        while True:
            chunk = self._redis.xrange(outbox, f"({last}" if last else "-", "+", count=CHUNK)
            done, stopped = None, False
            for entry_id, raw in chunk:
                entry_id = entry_id.decode()
                if int(entry_id.split("-")[0]) > newest:
                    stopped = True
                    break
                if not self._settle(entry_id, text_pairs(raw), report):
                    stopped = True
                    break
                done = entry_id
            if done is not None:
                self._redis.set(checkpoint, done)
                if self._trim:
                    self._redis.xtrim(outbox, minid=done, approximate=False)
                last = done
            if stopped or done is None or len(chunk) < CHUNK:
                return

    def _settle(self, entry_id: str, claim: dict[str, str], report: ReconcileReport) -> bool:
        """Credit one claim, or park it; False if it is left unsettled (transient)."""
        report.seen += 1
        if not claim.get("phone"):
            return True  # a claim without a member phone earns nothing
        reason = ""
        for attempt in range(self._attempts):
            try:
                result = self._credit(claim)
            except TRANSIENT as exc:
                reason = f"{type(exc).__name__}: {exc}"
                if attempt + 1 < self._attempts:
                    report.retries += 1
                    self._sleep(min(self._backoff * 2**attempt, self._max_backoff))
                continue
            except PERMANENT as exc:
                reason = f"{type(exc).__name__}: {exc}"
                self.park(entry_id, claim, reason)
                report.failed.append((entry_id, reason))
                return True
            _count(result, report)
            return True
        log.warning("claim %s of %s left for the next run: %s", entry_id, self.tenant, reason)
        report.unsettled.append((entry_id, reason))
        return False

    def _credit(self, claim: dict[str, str]) -> CreditResult:
        return self._crediter.credit_claim(
            self.tenant,
            claim["phone"],
            int(claim["serial"]),
            claim.get("sku", ""),
            claim.get("channel", "api"),
            claim.get("region") or None,
            int(float(claim.get("at") or self._clock())),
        )

    # -- the dead-letter stream -----------------------------------------------------------
    def park(self, entry_id: str, claim: dict[str, str], reason: str) -> str:
        """Keep a claim that cannot be credited as it is, with why; return its id."""
        fields = {f"claim.{k}": v for k, v in claim.items()}
        fields.update(outbox_entry=entry_id, reason=reason[:500], parked_at=str(int(self._clock())))
        return self._redis.xadd(self.keys.claims_dead, fields).decode()

    def dead(self) -> list[DeadClaim]:
        """The parked claims, oldest first."""
        return [_dead(i.decode(), text_pairs(raw))
                for i, raw in self._redis.xrange(self.keys.claims_dead)]

    def replay(self, dead_ids: Iterable[str] = ()) -> ReconcileReport:
        """Credit parked claims again (all, or ``dead_ids``); a settled one leaves the stream.

        One that fails again stays parked with the new reason (under a new id);
        an unknown id is refused before anything is replayed.
        """
        report = ReconcileReport()
        found = {d.dead_id: d for d in self.dead()}
        wanted = list(dead_ids) or list(found)
        missing = [i for i in wanted if i not in found]
        if missing:
            raise UnknownDeadLetter(self.tenant, missing, command="points dead")
        for dead_id in wanted:
            parked = found[dead_id]
            report.seen += 1
            try:
                result = self._credit(parked.claim)
            except (*TRANSIENT, *PERMANENT) as exc:
                reason = f"replay: {type(exc).__name__}: {exc}"
                self.park(parked.outbox_entry, parked.claim, reason)
                report.failed.append((dead_id, reason))
            else:
                _count(result, report)
            self._redis.xdel(self.keys.claims_dead, dead_id)
        return report


def _count(result: CreditResult, report: ReconcileReport) -> None:
    if result.pending:
        report.pending += 1
    elif result.duplicate:
        report.duplicates += 1
    else:
        report.credited += 1
        report.points += result.points


def _dead(dead_id: str, f: dict[str, str]) -> DeadClaim:
    claim = {k[len("claim."):]: v for k, v in f.items() if k.startswith("claim.")}
    return DeadClaim(
        dead_id=dead_id, outbox_entry=f.get("outbox_entry", ""),
        serial=int(claim.get("serial") or 0), phone=claim.get("phone", ""),
        reason=f.get("reason", ""), at=int(f.get("parked_at") or 0), claim=claim,
    )
