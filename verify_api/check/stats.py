"""Per-day check counters: what the reports' time series are made of.

A scan record (``scanrecord.py``) knows one code's history, not how many
checks a day brought. So every consumer check also bumps counters in a hash
per tenant and day, fields named for what they count:

=================  ==============================================
``r:RESULT``       checks answered RESULT (genuine, counterfeit, ...)
``sku:SKU``        checks of a product's codes (``-``: no product known)
``region:REGION``  checks from a region (``-``: none given)
``ch:CHANNEL``     checks through a channel (sms, ivr, web, api)
``cf_region:R``    counterfeit answers from a region
``rsrc:SOURCE``    checks whose region came from SOURCE (declared, member, phone, none;
                   ``points_bridge/regions.py``)
=================  ==============================================

Authentic codes are counted by ``lua/verify.lua`` in the hash of the code's
segment (``TenantKeys.segment_stats``), in the same script that records the
scan, because only the script knows the result. Codes refused before Redis
(malformed, mistyped, a failing tag) are counted with the commands
``tally_commands`` returns, sent in the round trip the engine already makes
(``TenantKeys.stats_day``). A report adds up every hash of a day.

A day is the tenant's (``points_timezone``, the zone the points' "today" and
the sales report use), so a brand's report and its members' points agree on
when a day starts. Every instant has exactly one local date, even in the
hour a DST change repeats (``datetime.fromtimestamp`` picks the fold), so a
check's day is always well defined; a zone that falls back across midnight
simply gives that date two stretches of time, both counted in its hash.
Counters written before days were the tenant's were keyed by UTC day and are
read as they are (CHANGES.md).
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta, tzinfo

from verify_api.check.answers import COUNTERFEIT

UNKNOWN = "-"
KINDS = ("r", "sku", "region", "ch", "cf_region", "rsrc")


def day_of(now: float, zone: tzinfo) -> str:
    """Return the day of a unix time in ``zone`` as ``YYYYMMDD`` (the key suffix)."""
    return _day(math.floor(now), zone)


@functools.lru_cache(maxsize=1024)
def _day(second: int, zone: tzinfo) -> str:
    """Every check asks, and a busy tenant's checks share their second: a dict hit.

    Keyed by the whole second, not a day number: a zone's days start at its own
    midnights (and DST moves them), so only the zone's rules can say where one ends.
    """
    return datetime.fromtimestamp(second, zone).strftime("%Y%m%d")


def day_date(now: float, zone: tzinfo) -> date:
    """The date of a unix time in ``zone`` (what a report's "today" is)."""
    return datetime.fromtimestamp(math.floor(now), zone).date()


def span_seconds(first: date, last: date) -> tuple[int, int]:
    """Unix seconds surely covering the days ``first`` to ``last`` in any zone.

    From a day before ``first`` to a day after ``last`` (UTC midnights), wider than
    any UTC offset: a reader of timed records (the SMS log) reads this span and keeps
    what ``day_of`` puts in the range, so a day cut by a DST change loses nothing.
    """
    start = datetime.combine(first - timedelta(days=1), datetime.min.time(), UTC)
    end = datetime.combine(last + timedelta(days=2), datetime.min.time(), UTC)
    return int(start.timestamp()), int(end.timestamp()) - 1


def days_between(first: date, last: date) -> list[str]:
    """Every day from ``first`` to ``last`` inclusive, as key suffixes."""
    count = (last - first).days + 1
    return [(first + timedelta(days=i)).strftime("%Y%m%d") for i in range(max(count, 0))]


def tally_fields(
    result: str, sku: str | None, region: str | None, channel: str, source: str = ""
) -> list[str]:
    """Return the counter fields one check bumps by one."""
    where = region or UNKNOWN
    fields = [f"r:{result}", f"sku:{sku or UNKNOWN}", f"region:{where}", f"ch:{channel}"]
    if source:
        fields.append(f"rsrc:{source}")
    if result == COUNTERFEIT:
        fields.append(f"cf_region:{where}")
    return fields


def tally_commands(
    key: str, result: str, region: str | None, channel: str, source: str = ""
) -> list[tuple[bytes, ...]]:
    """The HINCRBY commands counting a check answered without the verify script."""
    return [
        (b"HINCRBY", key.encode(), field.encode(), b"1")
        for field in tally_fields(result, None, region, channel, source)
    ]


def split(raw: Mapping[bytes | str, bytes | str | int]) -> dict[str, Counter]:
    """Turn one counter hash into ``{kind: Counter(name -> count)}``."""
    out: dict[str, Counter] = {kind: Counter() for kind in KINDS}
    for field, value in raw.items():
        text = field.decode() if isinstance(field, bytes) else field
        kind, sep, name = text.partition(":")
        if sep and kind in out:
            out[kind][name] += int(value)
    return out


def merge(hashes: Iterable[Mapping[bytes | str, bytes | str | int]]) -> dict[str, Counter]:
    """Add up several counter hashes of one day (segments and the tenant-wide one)."""
    total: dict[str, Counter] = {kind: Counter() for kind in KINDS}
    for raw in hashes:
        for kind, counts in split(raw).items():
            total[kind].update(counts)
    return total
