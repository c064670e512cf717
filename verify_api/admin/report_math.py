"""The reports' arithmetic, pure: counters and records in, ranked tables out.

``reports.py`` reads Redis and the Parquet exports and hands the raw figures
here, so every number a manager sees comes from a function hypothesis and
hand-computed scenarios can test without a store.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import tzinfo

from codegen.times import iso
from points_bridge.ledger import stored_int
from points_bridge.regions import region_name
from verify_api.check import stats
from verify_api.check.answers import RESULTS
from verify_api.check.risk import (
    PHONE_SKETCH_BITS,
    REGION_SKETCH_BITS,
    distinct_estimate,
    risk_level,
)
from verify_api.check.scanrecord import ScanRecord

CHECK_DIMENSIONS = {"product": "sku", "region": "region", "channel": "ch", "source": "rsrc"}


@dataclass(frozen=True)
class Table:
    """A report: named columns and rows of plain values (str, int, float or None)."""

    name: str
    columns: tuple[str, ...]
    rows: list[tuple] = field(default_factory=list)

    def records(self) -> list[dict]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def checks_by_day(per_day: Mapping[str, Mapping[str, Counter]]) -> Table:
    """One row per day (oldest first): all checks, then one column per result."""
    rows = []
    for day in sorted(per_day):
        results = per_day[day]["r"]
        rows.append((_iso(day), sum(results.values()), *(results[r] for r in RESULTS)))
    return Table("checks", ("day", "checks", *RESULTS), rows)


def checks_by(dimension: str, per_day: Mapping[str, Mapping[str, Counter]]) -> Table:
    """Checks over the whole range by product, region, channel or region source, most first.

    ``source`` counts where each check's region came from (declared, member,
    phone, none: ``points_bridge/regions.py``), so a brand sees how much of
    the region report rests on phones' home regions.
    """
    kind = CHECK_DIMENSIONS[dimension]
    total: Counter = Counter()
    for counters in per_day.values():
        total.update(counters[kind])
    rows = sorted(total.items(), key=lambda item: (-item[1], item[0]))
    if dimension == "region":  # the code and its name: CN-JS, 江苏
        return Table("checks", ("region", "name", "checks"),
                     [(region, region_name(region), n) for region, n in rows])
    return Table("checks", (dimension, "checks"), rows)


def sms_by(dimension: str, messages: list[Mapping[str, str]], zone: tzinfo) -> Table:
    """Inbound SMS counted by one field of the log, most first (``day``: oldest first).

    ``day`` is the message's day in the tenant's zone ``zone``, as the checks count theirs.
    """
    if dimension == "day":
        days = Counter(_iso(stats.day_of(int(m.get("at") or 0), zone)) for m in messages)
        return Table("sms", ("day", "received"), sorted(days.items()))
    found = Counter(m.get(dimension) or "-" for m in messages)
    rows = sorted(found.items(), key=lambda item: (-item[1], item[0]))
    return Table("sms", (dimension, "received"), rows)


def counterfeits_by_region(per_day: Mapping[str, Mapping[str, Counter]]) -> Table:
    """Counterfeit answers by region over the range, and the share of that region's checks."""
    fakes: Counter = Counter()
    checks: Counter = Counter()
    for counters in per_day.values():
        fakes.update(counters["cf_region"])
        checks.update(counters["region"])
    rows = [
        (region, n, checks[region], round(n / checks[region], 4) if checks[region] else None)
        for region, n in sorted(fakes.items(), key=lambda item: (-item[1], item[0]))
    ]
    return Table("counterfeits", ("region", "counterfeit", "checks", "share"), rows)


@dataclass(frozen=True)
class Suspect:
    """A scanned code and how much its history looks like a copied label."""

    serial: int
    batch_id: str
    sku: str
    record: ScanRecord
    code: str | None = None

    @property
    def phones(self) -> int:
        return distinct_estimate(self.record.phone_sketch, PHONE_SKETCH_BITS)

    @property
    def regions(self) -> int:
        return distinct_estimate(self.record.region_sketch, REGION_SKETCH_BITS)

    @property
    def score(self) -> int:
        return suspicion_score(self.record.count, self.phones, self.regions)

    def risk(self) -> str:
        r = self.record
        return risk_level(r.count, r.last_at - r.first_at, self.phones, self.regions)


def suspicion_score(count: int, phones: int, regions: int) -> int:
    """Rank copies first: every check counts, a further phone 3, a further region 6.

    One label checked in two cities is the clearest sign of a copy, so a
    region weighs most; many checks by one phone (a buyer checking again)
    weigh least.
    """
    return count + 3 * max(phones - 1, 0) + 6 * max(regions - 1, 0)


def rank_suspects(suspects: Iterable[Suspect], min_checks: int = 2, limit: int = 50) -> Table:
    """The codes checked at least ``min_checks`` times, most suspicious first."""
    kept = [s for s in suspects if s.record.count >= min_checks and not s.record.voided]
    kept.sort(key=lambda s: (-s.score, -s.record.count, s.serial))
    rows = [
        (s.code, s.serial, s.batch_id, s.sku, s.record.count, s.phones, s.regions,
         s.record.first_region, s.record.first_channel, iso(s.record.first_at),
         iso(s.record.last_at),
         s.risk(), s.score)
        for s in kept[:limit]
    ]
    return Table("suspicious", (
        "code", "serial", "batch", "sku", "checks", "phones", "regions", "first_region",
        "first_channel", "first_at", "last_at", "risk", "score",
    ), rows)


def members_by_tier(members: Iterable[Mapping], ladder: Iterable[str]) -> Table:
    """Members per tier (ladder order, unknown tiers after) and per status."""
    counts: dict[str, Counter] = defaultdict(Counter)
    for m in members:
        counts[m["tier"]][m["status"]] += 1
    return tier_table(counts, ladder)


def tier_table(tiers: Mapping[str, Counter], ladder: Iterable[str]) -> Table:
    """The tiers report of tier -> status -> members (from a walk or the counters)."""
    counts: dict[str, Counter] = defaultdict(Counter, tiers)
    order = [t for t in ladder] + sorted(set(counts) - set(ladder))
    rows = [
        (tier, sum(counts[tier].values()), counts[tier]["active"], counts[tier]["frozen"],
         counts[tier]["cancelled"])
        for tier in order
    ]
    return Table("tiers", ("tier", "members", "active", "frozen", "cancelled"), rows)


def points_by_product(entries: Iterable[Mapping]) -> Table:
    """Points issued per product (claim credits) and redeemed, adjusted and expired.

    Redemptions, adjustments and expiry belong to no product: they are the
    row ``-``.
    """
    sums: dict[str, Counter] = defaultdict(Counter)
    for e in entries:
        kind, delta = e["kind"], stored_int(e["delta"])
        if kind == "credit":
            sums[e.get("sku") or "-"]["issued"] += delta
        elif kind == "redeem":
            sums["-"]["redeemed"] += -delta
        elif kind == "adjust":
            sums["-"]["adjusted"] += delta
        elif kind == "expire":
            sums["-"]["expired"] += -delta
    return points_table(sums)


def points_table(sums: Mapping[str, Counter]) -> Table:
    """The points report of sku -> column -> points (from a walk or the counters)."""
    columns = ("issued", "redeemed", "adjusted", "expired")
    skus = sorted(k for k in sums if k != "-") + (["-"] if "-" in sums else [])
    rows = [(sku, *(sums[sku][c] for c in columns)) for sku in skus]
    return Table("points", ("sku", *columns), rows)


def _iso(day: str) -> str:
    return f"{day[:4]}-{day[4:6]}-{day[6:]}"
