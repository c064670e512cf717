"""Per-day check counters: what the reports' time series are made of.

A scan record (``scanrecord.py``) knows one code's history, not how many
checks a day brought. So every consumer check also bumps counters in a hash
per tenant and UTC day, fields named for what they count:

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
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta

from verify_api.check.answers import COUNTERFEIT

UNKNOWN = "-"
KINDS = ("r", "sku", "region", "ch", "cf_region", "rsrc")


def day_of(now: float) -> str:
    """Return the UTC day of a unix time as ``YYYYMMDD`` (the key suffix)."""
    return _day(int(now) // 86400)


@functools.lru_cache(maxsize=64)
def _day(day_number: int) -> str:
    """Every check asks; the answer changes once a day."""
    return datetime.fromtimestamp(day_number * 86400, UTC).strftime("%Y%m%d")


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
