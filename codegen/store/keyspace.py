"""Every Redis key itemseal uses, built in one place (limits' ``prefixed_key``).

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


# -- members, ledger, campaigns, outbound SMS and the CRM bridge ---------------------
# Every Redis key of members, the ledger, campaigns and the CRM bridge.
#
# Same conventions as above: keys that one Lua script touches
# share a ``{hash tag}`` so the scripts run unchanged on Redis Cluster.
#
# * Tenant slot ``{is:T}`` (shared with ``codegen``): the points settings live
#   in the tenant record itself (``TenantKeys.meta``, fields ``points_*``), the
#   campaigns, their spend counters, the card counter and the card secret.
# * Member shard ``{T/mK}``, ``K = shard_of(card)`` in ``[0, MEMBER_SHARDS)``:
#   a member's record, ledger stream, idempotency hash and expiry lots, *and*
#   the shard's CRM event stream. Sharing the slot is what lets one script
#   append a ledger entry and its CRM event atomically; sharding (rather than a
#   tag per card) keeps the bridge's streams few and fixed, while the members
#   of a tenant still spread over ``MEMBER_SHARDS`` slots of a cluster.
# * Phone index ``{T/p+E164}``: one string per phone, its own slot, so "create
#   the member of this phone" is a race-free ``SET NX``.
# * Code segment ``{T/sN}`` (``TenantKeys.segment_tag``): the verify script's
#   claims outbox, and beside it the card a serial's points were pinned to and
#   the reconcile checkpoint, so pinning can be done where the claim lives.


MEMBER_SHARDS = 16
"""Fixed for the life of a deployment: changing it moves every member's keys."""

CREDIT_BUCKET_SERIALS = 128
"""Serials per pin hash: at most 128 fields, so Redis keeps each one a compact listpack."""


def shard_of(card: str) -> int:
    return int(card) % MEMBER_SHARDS


class PointsKeys:
    """Key names of one tenant's points data."""

    __slots__ = ("tenant", "_t", "tenant_keys")

    def __init__(self, tenant: str) -> None:
        self.tenant = tenant
        self._t = f"is:{{{tenant}}}"
        self.tenant_keys = TenantKeys(tenant)

    # -- tenant slot ---------------------------------------------------------------
    @property
    def settings(self) -> str:
        """The tenant record; points settings are its ``points_*`` fields."""
        return self.tenant_keys.meta

    @property
    def products(self) -> str:
        return self.tenant_keys.products

    @property
    def campaigns(self) -> str:
        """Hash: campaign id -> JSON definition."""
        return f"{self._t}:campaigns"

    @property
    def campaign_spend(self) -> str:
        """Hash: ``<id>`` -> points spent; ``<id>/<serial>`` -> charge held for a credit."""
        return f"{self._t}:campaign-spend"

    @property
    def card_counter(self) -> str:
        return f"{self._t}:cards"

    @property
    def card_secret(self) -> str:
        """Random 32 bytes that permute card numbers (not in the record ``tenant show`` prints)."""
        return f"{self._t}:card-secret"

    @property
    def crm_secret(self) -> str:
        """String: the tenant's webhook signing secret (``itemseal bridge secret``)."""
        return f"{self._t}:crm-secret"

    @property
    def dead_letter(self) -> str:
        """Stream of CRM events the webhook refused for good."""
        return f"{self._t}:crm-dead"

    @property
    def claims_dead(self) -> str:
        """Stream of claims reconcile could not credit for good (``itemseal points dead``)."""
        return f"{self._t}:claims-dead"

    # -- customer care (tenant slot: one script touches several of these) ----------
    @property
    def optouts(self) -> str:
        """Hash: E.164 phone -> unix time it opted out (``optout.py``)."""
        return f"{self._t}:optout"

    def out(self, name: str) -> str:
        """Outbound SMS keys (outbound, care, draws), all in the tenant slot."""
        return f"{self._t}:out:{name}"

    # -- member shards ---------------------------------------------------------------
    def shard_tag(self, shard: int) -> str:
        return f"is:{{{self.tenant}/m{shard}}}"

    def member(self, card: str) -> str:
        """Hash: phone, status, balance, earned, tier, ``d:YYYYMMDD`` earned per day, ``a.*``."""
        return f"{self.shard_tag(shard_of(card))}:m:{card}"

    def ledger(self, card: str) -> str:
        """Stream: the member's append-only ledger."""
        return f"{self.shard_tag(shard_of(card))}:ledger:{card}"

    def idem(self, card: str) -> str:
        """Hash: idempotency key -> ``<body sha> <ledger entry id>``."""
        return f"{self.shard_tag(shard_of(card))}:idem:{card}"

    def lots(self, card: str) -> str:
        """List of ``<expires_at> <points left>``, oldest first (only with expiry on)."""
        return f"{self.shard_tag(shard_of(card))}:lots:{card}"

    def member_keys(self, card: str) -> list[str]:
        """KEYS of every member script, in this order."""
        return [self.member(card), self.ledger(card), self.idem(card), self.lots(card),
                self.events(shard_of(card)), self.pending(shard_of(card))]

    def pending(self, shard: int) -> str:
        """Hash: ``<card>/<serial>`` -> JSON claim of a member frozen when it was credited.

        Written by the script that would have posted the credit, so a frozen
        member's claim is either credited or here; credited on unfreeze (and by
        ``itemseal points reconcile``), which removes it in the same script.
        """
        return f"{self.shard_tag(shard)}:pending"

    def events(self, shard: int) -> str:
        """Stream: every ledger entry and member change of the shard, for the CRM."""
        return f"{self.shard_tag(shard)}:events"

    def all_events(self) -> list[str]:
        return [self.events(shard) for shard in range(MEMBER_SHARDS)]

    # -- phone index -----------------------------------------------------------------
    def phone(self, e164: str) -> str:
        """String: the card bound to a phone (a hint checked against the member record)."""
        return f"is:{{{self.tenant}/p{e164}}}"

    # -- code segments ---------------------------------------------------------------
    def claims(self, segment: int) -> str:
        """Stream the verify script appends a claim to (serial, sku, phone, ...)."""
        return self.tenant_keys.segment_claims(segment)

    def reconcile_checkpoint(self, segment: int) -> str:
        """String: the last claims entry id reconcile has credited."""
        return f"{self.tenant_keys.segment_tag(segment)}:claims-done"

    def credit_pin(self, serial: int) -> str:
        """Hash: ``serial % 128`` -> the card the serial's points go to (set once)."""
        tag = self.tenant_keys.segment_tag(segment_of(serial))
        return f"{tag}:credit:{serial // CREDIT_BUCKET_SERIALS}"
