"""The batch registry: serial ranges, their lifecycle, and where verify finds them.

A batch is a range of serials, so a minted code costs no store memory until it
is first scanned. The tenant-wide record (``is:{T}:batch:ID``) is the truth
for managers; a compact copy of the facts verification needs is kept in every
*segment* the range touches, under the segment's hash tag, so one verify
script finds the batch in the same cluster slot as the code's scan state.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from codegen.codes import PROFILES, Profile
from codegen.exc import BatchError, SerialsExhausted, UnknownBatch
from codegen.store.keyspace import SEGMENT_SERIALS, TenantKeys
from codegen.store.scripts import register

MINTED, ACTIVE, RECALLED = "minted", "active", "recalled"
# target state -> (states it may come from, timestamp field)
TRANSITIONS = {
    ACTIVE: ((MINTED,), "activated_at"),
    RECALLED: ((MINTED, ACTIVE), "recalled_at"),
}


@dataclass(frozen=True)
class Batch:
    tenant: str
    batch_id: str
    sku: str
    key_id: int
    profile: Profile
    first_serial: int
    count: int
    state: str
    created_at: float
    fields: dict[str, str]

    @property
    def last_serial(self) -> int:
        return self.first_serial + self.count - 1

    def segment_value(self) -> str:
        """The facts the verify script reads, space-separated (see verify_api/lua)."""
        return (
            f"{self.state} {self.key_id} {self.profile.wire_id}"
            f" {self.first_serial} {self.last_serial} {self.sku}"
        )


def segments_of(first_serial: int, last_serial: int) -> range:
    return range(first_serial // SEGMENT_SERIALS, last_serial // SEGMENT_SERIALS + 1)


class BatchRegistry:
    """Reserve serials, register batches, move them through their lifecycle."""

    def __init__(
        self, client: redis.Redis, tenant: str, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._redis = client
        self.tenant = tenant
        self._keys = TenantKeys(tenant)
        self._clock = clock
        self._reserve = register(client, "codegen", "reserve_serials")
        self._transition = register(client, "codegen", "batch_transition")

    def reserve(self, profile: Profile, count: int) -> int:
        """Take ``count`` serials atomically; concurrent mints never overlap."""
        if count <= 0:
            raise BatchError(f"count must be positive, got {count}")
        counter = self._keys.serial_counter(profile.name)
        try:
            return int(
                self._reserve(
                    keys=[counter], args=[count, profile.serial_base, profile.serial_space]
                )
            )
        except redis.ResponseError as exc:
            if "SERIALS_EXHAUSTED" not in str(exc):
                raise
            left = int(str(exc).split()[-1])
            raise SerialsExhausted(
                f"tenant {self.tenant!r} has {left:,} {profile.name} serials left;"
                f" {count:,} asked (use the other profile, or a smaller batch)"
            ) from None

    def next_batch_id(self) -> str:
        return f"B{self._redis.incr(self._keys.batch_counter):06d}"

    def register(self, batch_id: str, **facts: str | int | float) -> Batch:
        """Record a freshly minted batch (state ``minted``) and index its segments.

        ``created_at`` defaults to now; the minter passes the time it wrote into
        the file's metadata, so an export of the batch recreates that file.
        """
        record = {k: str(v) for k, v in facts.items()}
        record.setdefault("created_at", repr(self._clock()))
        record.update(batch_id=batch_id, state=MINTED)
        pipe = self._redis.pipeline(transaction=False)
        pipe.hset(self._keys.batch(batch_id), mapping=record)
        pipe.zadd(self._keys.batches, {batch_id: int(record["first_serial"])})
        pipe.execute()
        batch = self.get(batch_id)
        self._index_segments(batch)
        return batch

    def _index_segments(self, batch: Batch) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for segment in segments_of(batch.first_serial, batch.last_serial):
            start = max(batch.first_serial, segment * SEGMENT_SERIALS)
            pipe.zadd(self._keys.segment_ranges(segment), {batch.batch_id: start})
            pipe.hset(self._keys.segment_batches(segment), batch.batch_id, batch.segment_value())
        pipe.execute()

    def get(self, batch_id: str) -> Batch:
        raw = self._redis.hgetall(self._keys.batch(batch_id))
        if not raw:
            raise UnknownBatch(self.tenant, batch_id)
        fields = {k.decode(): v.decode() for k, v in raw.items()}
        return Batch(
            tenant=self.tenant,
            batch_id=batch_id,
            sku=fields["sku"],
            key_id=int(fields["key_id"]),
            profile=PROFILES[fields["profile"]],
            first_serial=int(fields["first_serial"]),
            count=int(fields["count"]),
            state=fields["state"],
            created_at=float(fields["created_at"]),
            fields=fields,
        )

    def list(self) -> list[Batch]:
        return [self.get(b.decode()) for b in self._redis.zrange(self._keys.batches, 0, -1)]

    def batch_id_of(self, serial: int) -> str | None:
        found = self._redis.zrevrangebyscore(self._keys.batches, serial, "-inf", start=0, num=1)
        if not found:
            return None
        batch = self.get(found[0].decode())
        return batch.batch_id if serial <= batch.last_serial else None

    def transition(self, batch_id: str, target: str) -> tuple[str, Batch]:
        """Move a batch to ``target``; re-running a done transition re-syncs segments."""
        allowed, stamp = TRANSITIONS[target]
        try:
            before = self._transition(
                keys=[self._keys.batch(batch_id)],
                args=[target, ",".join(allowed), stamp, repr(self._clock())],
            ).decode()
        except redis.ResponseError as exc:
            if "NO_BATCH" in str(exc):
                raise UnknownBatch(self.tenant, batch_id) from None
            if "BAD_STATE" in str(exc):
                state = str(exc).split()[-1]
                raise BatchError(
                    f"batch {batch_id} is {state}: it cannot become {target}"
                ) from None
            raise
        batch = self.get(batch_id)
        self._index_segments(batch)
        return before, batch
