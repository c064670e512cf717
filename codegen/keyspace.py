"""Every Redis key itemseal uses, built in one place.

Keys a Lua script touches together share one ``{hash tag}`` so the script runs
on Redis Cluster. Tenant-wide records (keys, products, the serial counter,
the batch registry) share ``{is:TENANT}``. The state a verification touches is
tagged by *segment* (a fixed range of serials), ``{is:TENANT/sN}``, so one
tenant's scans spread over the cluster while one check stays in one slot.
"""

from __future__ import annotations

import re

SEGMENT_SERIALS = 1 << 20
SCAN_BUCKET_SERIALS = 256
TENANT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
TENANT_INDEX = "is:tenants"


def segment_of(serial: int) -> int:
    return serial // SEGMENT_SERIALS


class TenantKeys:
    """Key names of one tenant."""

    __slots__ = ("tenant", "_t")

    def __init__(self, tenant: str) -> None:
        self.tenant = tenant
        self._t = f"is:{{{tenant}}}"

    @property
    def meta(self) -> str:
        return f"{self._t}:meta"

    @property
    def keys(self) -> str:
        return f"{self._t}:keys"

    @property
    def products(self) -> str:
        return f"{self._t}:products"

    @property
    def serial_counter(self) -> str:
        return f"{self._t}:serial"

    @property
    def batches(self) -> str:
        """Sorted set of batch ids by their first serial."""
        return f"{self._t}:batches"

    def batch(self, batch_id: str) -> str:
        return f"{self._t}:batch:{batch_id}"

    def segment_tag(self, segment: int) -> str:
        return f"is:{{{self.tenant}/s{segment}}}"

    def segment_ranges(self, segment: int) -> str:
        """Sorted set: batch id by the first serial it covers in the segment."""
        return f"{self.segment_tag(segment)}:ranges"

    def segment_batches(self, segment: int) -> str:
        """Hash: batch id -> compact batch facts the verify script needs."""
        return f"{self.segment_tag(segment)}:batches"

    def segment_claims(self, segment: int) -> str:
        """Stream: the claims outbox the points side credits from (and reconciles)."""
        return f"{self.segment_tag(segment)}:claims"

    def segment_stats(self, segment: int, day: str) -> str:
        """Hash: per-day check counters the verify script keeps (``verify_api/stats.py``)."""
        return f"{self.segment_tag(segment)}:stats:{day}"

    def stats_day(self, day: str) -> str:
        """Hash: per-day counters of checks refused before any script (malformed ...)."""
        return f"is:{{{self.tenant}/st}}:day:{day}"

    @property
    def admin_tokens(self) -> str:
        """Hash: sha256 of an admin token -> its JSON record (``verify_api/auth.py``)."""
        return f"{self._t}:admin-tokens"

    @property
    def audit(self) -> str:
        """Stream: every change made through the admin API (``verify_api/audit.py``)."""
        return f"{self._t}:audit"

    def scan_bucket(self, serial: int) -> str:
        """Hash of per-code scan state for a bucket of serials (no record before a scan)."""
        return f"{self.segment_tag(segment_of(serial))}:scan:{serial // SCAN_BUCKET_SERIALS}"

    def rate_limit(self, subject: str, window: int) -> str:
        """Counter of one rate-limit window of one client (``ip/...``, ``phone/...``).

        Per client, not per code, so it cannot share a code's segment tag. All
        of a tenant's counters share ``{TENANT/rl}``: one script counts a
        request against its IP and its phone limit at once.
        """
        return f"is:{{{self.tenant}/rl}}:{subject}:{window}"
