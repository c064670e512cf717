"""Times as people and clients read them: ISO-8601 with the UTC offset.

The store keeps Unix seconds (compact, sortable, what Lua sees); every place a
person or an API client reads a time shows it through ``iso`` instead of a raw
epoch like ``1796166583.228``.
"""

from __future__ import annotations

from datetime import UTC, datetime


def iso(ts: float | int | str | None) -> str | None:
    """Unix seconds as ``2026-11-30T08:00:00+00:00``; None (or empty) stays None."""
    if ts is None or ts == "":
        return None
    return datetime.fromtimestamp(float(ts), UTC).isoformat(timespec="seconds")
