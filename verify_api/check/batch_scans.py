"""What the scan state says about a batch: void spoiled codes, count its fates.

Both work on the scan buckets (``TenantKeys.scan_bucket``) of a batch's
serials, so they are CLI-speed operations (a batch of 1 M codes is 3,907
buckets, read in pipelined chunks), not part of the hot verify path.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import redis

from codegen.batches import Batch, BatchRegistry
from codegen.checker import CodeChecker
from codegen.keys import KeyStore
from codegen.store.keyspace import SCAN_BUCKET_SERIALS, TenantKeys
from codegen.store.wire import Link, ScriptSet, link_for
from verify_api.check import scanrecord
from verify_api.check.inputs import extract_code

CHUNK = 512


@dataclass(frozen=True)
class VoidOutcome:
    """What happened to one code given to ``void_codes``."""

    text: str
    outcome: str  # voided | already_voided | not_in_batch | malformed | mistyped | counterfeit
    serial: int | None = None
    checks_before: int = 0


def void_codes(
    client: redis.Redis, key_store: KeyStore, tenant: str, batch_id: str, codes: Iterable[str]
) -> list[VoidOutcome]:
    """Void codes of ``batch_id`` spoiled at printing: they answer ``revoked`` from now on.

    Each code is checked first (format, tag, and that it belongs to the
    batch); one ``void.lua`` call per scan bucket marks them all.
    """
    batch = BatchRegistry(client, tenant).get(batch_id)
    checker = CodeChecker(key_store, tenant, max_age=3600)
    outcomes: list[VoidOutcome] = []
    by_bucket: dict[int, list[int]] = defaultdict(list)  # bucket -> indexes into outcomes
    for text in codes:
        decoded = checker.decode(extract_code(text))
        if not decoded.authentic:
            outcomes.append(VoidOutcome(text, decoded.verdict))
        elif not batch.first_serial <= decoded.serial <= batch.last_serial:
            outcomes.append(VoidOutcome(text, "not_in_batch", decoded.serial))
        else:
            by_bucket[decoded.serial // SCAN_BUCKET_SERIALS].append(len(outcomes))
            outcomes.append(VoidOutcome(text, "pending", decoded.serial))
    asyncio.run(_void(link_for(client), tenant, list(by_bucket.items()), outcomes))
    return outcomes


async def _void(
    link: Link, tenant: str, buckets: list[tuple[int, list[int]]], outcomes: list[VoidOutcome]
) -> None:
    """One ``void.lua`` call per bucket, in pipelined chunks over an asyncio link.

    Packed EVALSHAs over a link: redis-py's cluster pipelines refuse scripts.
    """
    scripts = ScriptSet(link, "verify_api", ("void",))
    keys = TenantKeys(tenant)
    try:
        for at in range(0, len(buckets), CHUNK):
            calls = []
            for _, slots in buckets[at : at + CHUNK]:
                serials = [outcomes[i].serial for i in slots]
                fields = tuple(b"%d" % (s % SCAN_BUCKET_SERIALS) for s in serials)
                calls.append(scripts.evalsha("void", [keys.scan_bucket(serials[0])], fields))
            replies = await scripts.run(calls)
            for (_, slots), befores in zip(buckets[at : at + CHUNK], replies, strict=True):
                for i, before in zip(slots, befores, strict=True):
                    done = outcomes[i]
                    outcome = "already_voided" if before < 0 else "voided"
                    outcomes[i] = VoidOutcome(done.text, outcome, done.serial, max(before, 0))
    finally:
        link.close()


def scan_counts(client: redis.Redis, tenant: str, batch: Batch | str) -> dict[str, int]:
    """Count a batch's codes that were ``scanned``, ``voided`` and ``claimed``.

    For reconciliation (``itemseal batch show``): reads every scan bucket the
    batch's serials fall in, skipping the serials of neighbouring batches.
    """
    if isinstance(batch, str):
        batch = BatchRegistry(client, tenant).get(batch)
    keys = TenantKeys(tenant)
    first, last = batch.first_serial, batch.last_serial
    counts = {"scanned": 0, "voided": 0, "claimed": 0}
    buckets = range(first // SCAN_BUCKET_SERIALS, last // SCAN_BUCKET_SERIALS + 1)
    for at in range(0, len(buckets), CHUNK):
        pipe = client.pipeline(transaction=False)
        chunk = buckets[at : at + CHUNK]
        for bucket in chunk:
            pipe.hgetall(keys.scan_bucket(bucket * SCAN_BUCKET_SERIALS))
        for bucket, fields in zip(chunk, pipe.execute(), strict=True):
            for field, raw in fields.items():
                serial = bucket * SCAN_BUCKET_SERIALS + int(field)
                record = scanrecord.unpack(raw) if first <= serial <= last else None
                if record is None:
                    continue
                counts["scanned"] += record.count > 0
                counts["voided"] += record.voided
                counts["claimed"] += record.claimed
    return counts


def voided_serials(client: redis.Redis, tenant: str, serials: Iterable[int]) -> set[int]:
    """The serials among ``serials`` voided with ``void_codes`` (the API answers them
    ``revoked``); one pipelined round trip per ``CHUNK`` serials, for ``itemseal check``."""
    keys = TenantKeys(tenant)
    wanted = list(dict.fromkeys(serials))
    found: set[int] = set()
    for at in range(0, len(wanted), CHUNK):
        chunk = wanted[at : at + CHUNK]
        pipe = client.pipeline(transaction=False)
        for serial in chunk:
            pipe.hget(keys.scan_bucket(serial), b"%d" % (serial % SCAN_BUCKET_SERIALS))
        for serial, raw in zip(chunk, pipe.execute(), strict=True):
            record = scanrecord.unpack(raw)
            if record is not None and record.voided:
                found.add(serial)
    return found
