"""Every Redis key of members, the ledger, campaigns and the CRM bridge.

Same conventions as ``codegen.keyspace``: keys that one Lua script touches
share a ``{hash tag}`` so the scripts run unchanged on Redis Cluster.

* Tenant slot ``{is:T}`` (shared with ``codegen``): the points settings live
  in the tenant record itself (``TenantKeys.meta``, fields ``points_*``), the
  campaigns, their spend counters, the card counter and the card secret.
* Member shard ``{T/mK}``, ``K = shard_of(card)`` in ``[0, MEMBER_SHARDS)``:
  a member's record, ledger stream, idempotency hash and expiry lots, *and*
  the shard's CRM event stream. Sharing the slot is what lets one script
  append a ledger entry and its CRM event atomically; sharding (rather than a
  tag per card) keeps the bridge's streams few and fixed, while the members
  of a tenant still spread over ``MEMBER_SHARDS`` slots of a cluster.
* Phone index ``{T/p+E164}``: one string per phone, its own slot, so "create
  the member of this phone" is a race-free ``SET NX``.
* Code segment ``{T/sN}`` (``TenantKeys.segment_tag``): the verify script's
  claims outbox, and beside it the card a serial's points were pinned to and
  the reconcile checkpoint, so pinning can be done where the claim lives.
"""

from __future__ import annotations

from codegen.keyspace import TenantKeys, segment_of

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
                self.events(shard_of(card))]

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

    def credit_lease(self, serial: int) -> str:
        """String with a TTL: who is crediting the serial right now."""
        return f"{self.tenant_keys.segment_tag(segment_of(serial))}:lease:{serial}"
