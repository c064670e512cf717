"""Report counters: members per status and tier, points per kind, kept as the store changes.

``report tiers`` and ``report points`` used to export every member and every
ledger entry and add them up: linear in the members, ~1.5 minutes at a
million, on the store that serves consumers. Instead the scripts that change
members and ledgers (``member_update.lua``, ``ledger_apply.lua``,
``import_members.lua``) move a counter in their shard's hash
(``PointsKeys.counts``) in the same atomic step, and a report adds up
``MEMBER_SHARDS`` hashes.

Fields (the scripts spell them the same way):

* ``m|<status>|<tier>``: members with that status and tier;
* ``p|issued|<sku>``: points credited by claims of the product (``-``: none);
* ``p|redeemed``, ``p|expired``: points taken (positive), ``p|adjusted``: net.

A store written before the counters existed has members but no counts; the
tenant record's ``COUNTED`` field says the counts are complete (set when a
tenant is created, and by ``Recount``). Until then the reports read the
store the old way.

The functions here are pure; ``Counts`` reads and rebuilds them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping

import redis

from codegen.store.keyspace import MEMBER_SHARDS, PointsKeys, TenantKeys, shard_of
from codegen.tenants import REPORT_COUNTERS as COUNTED
from points_bridge.ledger import stored_int
from points_bridge.ledger_archive import ArchivedEntries, list_runs, live_from

POINTS_BY_KIND = {"credit": "issued", "reversal": "issued", "redeem": "redeemed",
                  "adjust": "adjusted", "expire": "expired"}
"""Ledger kind -> points report column; other kinds (purchases, tiers, ...) are not counted."""


def member_field(status: str, tier: str) -> str:
    return f"m|{status}|{tier}"


def entry_field(kind: str, sku: str | None) -> str | None:
    """The counter an entry of ``kind`` moves, or None."""
    column = POINTS_BY_KIND.get(kind)
    if column is None:
        return None
    return f"p|issued|{sku or '-'}" if column == "issued" else f"p|{column}"


def entry_amount(kind: str, delta: int) -> int:
    """What an entry adds to its counter: taken points count positive."""
    return -delta if kind in ("redeem", "expire") else delta


def tally(members: Iterable[Mapping[str, str]],
          entries: Iterable[Mapping[str, object]]) -> Counter:
    """The counts of members (``status``, ``tier``) and entries (``kind``, ``delta``, ``sku``)."""
    counts: Counter = Counter()
    for m in members:
        counts[member_field(m["status"], m.get("tier") or "")] += 1
    for e in entries:
        field = entry_field(str(e["kind"]), e.get("sku") or None)  # type: ignore[arg-type]
        if field is not None:
            counts[field] += entry_amount(str(e["kind"]), int(e["delta"]))  # type: ignore[call-overload]
    return counts


def by_tier(counts: Mapping[str, int]) -> dict[str, Counter]:
    """tier -> status -> members, from summed counts."""
    tiers: dict[str, Counter] = {}
    for field, n in counts.items():
        if field.startswith("m|") and n:
            _, status, tier = field.split("|", 2)
            tiers.setdefault(tier, Counter())[status] += n
    return tiers


def by_product(counts: Mapping[str, int]) -> dict[str, Counter]:
    """sku (``-`` for none) -> report column -> points, from summed counts."""
    sums: dict[str, Counter] = {}
    for field, n in counts.items():
        if not field.startswith("p|"):
            continue
        parts = field.split("|", 2)
        sku = parts[2] if parts[1] == "issued" else "-"
        sums.setdefault(sku, Counter())[parts[1]] += n
    return sums


class Counts:
    """Read a tenant's shard counts, and rebuild them from the members and ledgers."""

    def __init__(self, client: redis.Redis, tenant: str) -> None:
        self._redis = client
        self.tenant = tenant
        self.keys = PointsKeys(tenant)

    def complete(self) -> bool:
        """Tell whether the counts hold every member (see ``COUNTED``)."""
        return self._redis.hget(TenantKeys(self.tenant).meta, COUNTED) == b"1"

    def read(self) -> Counter:
        """The tenant's counts: the shards' hashes added up, in one round trip."""
        pipe = self._redis.pipeline(transaction=False)
        for shard in range(MEMBER_SHARDS):
            pipe.hgetall(self.keys.counts(shard))
        total: Counter = Counter()
        for raw in pipe.execute():
            for k, v in raw.items():
                total[k.decode()] += int(v)
        return total

    def replace(self, counts_per_card: Iterable[tuple[str, Counter]]) -> Counter:
        """Write counts made by a full walk over the shards' hashes; mark them complete.

        Counts moved by writes during the walk are lost or doubled: run it
        when the store is quiet, e.g. right after the upgrade.
        """
        shards: list[Counter] = [Counter() for _ in range(MEMBER_SHARDS)]
        for card, counts in counts_per_card:
            shards[shard_of(card)].update(counts)
        total: Counter = Counter()
        pipe = self._redis.pipeline(transaction=False)
        for shard, counts in enumerate(shards):
            pipe.delete(self.keys.counts(shard))
            kept = {k: v for k, v in counts.items() if v}
            if kept:
                pipe.hset(self.keys.counts(shard), mapping=kept)
            total.update(counts)
        pipe.hset(TenantKeys(self.tenant).meta, COUNTED, "1")
        pipe.execute()
        return total


def recount(client: redis.Redis, tenant: str, chunk: int = 500,
            keep_crm_cards: Callable[[list[str]], int] | None = None) -> Counter:
    """Rebuild a tenant's counts from every member record and ledger entry; return them.

    Members are found by SCAN over each shard's record keys, so a member made
    with a CRM's card (not from the tenant's counter) is counted too, and
    handed to ``keep_crm_cards`` (``MemberStore.keep_crm_cards``) so the walks
    over every member find it from then on.
    """
    keys = PointsKeys(tenant)
    counts = Counts(client, tenant)

    def walk():
        for shard in range(MEMBER_SHARDS):
            prefix = f"{keys.shard_tag(shard)}:m:"
            cards = [k.decode()[len(prefix):]
                     for k in client.scan_iter(match=prefix + "*", count=1000)]
            if keep_crm_cards is not None:
                keep_crm_cards(cards)
            for start in range(0, len(cards), chunk):
                yield from _tally_cards(client, keys, cards[start:start + chunk], first)
        for card, _, raw in ArchivedEntries(client, tenant).every():  # points archive
            yield card, tally([], [_points_entry(raw)])

    first = f"{live_from(list_runs(client, tenant))}-0"
    return counts.replace(walk())


def _points_entry(raw: Mapping[str, str]) -> dict[str, object]:
    return {"kind": raw.get("kind", ""), "delta": stored_int(raw.get("delta")),
            "sku": raw.get("sku") or ""}


def _tally_cards(client: redis.Redis, keys: PointsKeys, cards: list[str],
                 first: str) -> Iterable[tuple[str, Counter]]:
    pipe = client.pipeline(transaction=False)
    for card in cards:
        pipe.hmget(keys.member(card), "status", "tier")
        pipe.xrange(keys.ledger(card), first)  # those below are archived
    replies = pipe.execute()
    for i, card in enumerate(cards):
        status, tier = replies[2 * i]
        if status is None:
            continue
        entries = []
        for _, raw in replies[2 * i + 1]:
            entry = _points_entry({k.decode(): v.decode() for k, v in raw.items()})
            if entry["kind"] in POINTS_BY_KIND:
                entries.append(entry)
        yield card, tally([{"status": status.decode(), "tier": (tier or b"").decode()}], entries)
