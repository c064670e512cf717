"""Every Redis key itemseal uses, built in one place (limits' ``prefixed_key``).

Keys a Lua script touches together share one ``{hash tag}`` so the script runs
on Redis Cluster. Tenant-wide records (keys, products, the serial counter,
the batch registry) share ``{is:TENANT}``. The state a verification touches is
tagged by *segment* (a fixed range of serials), ``{is:TENANT/sN}``, so one
tenant's scans spread over the cluster while one check stays in one slot.
"""

from __future__ import annotations

import functools
import re

SEGMENT_SERIALS = 1 << 20
SCAN_BUCKET_SERIALS = 256
TENANT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
TENANT_INDEX = "is:tenants"
"""Set of every tenant id (``itemseal tenant list``)."""
CHANNEL_NUMBERS = "is:channels:numbers"
"""Hash: SMS number (or its prefix of a sub-port) -> the tenant it belongs to (global, no tag)."""
SMS_CALLBACK_TOKENS = "is:channels:callback-tokens"
"""Hash: SHA-256 (hex) of a tenant's SMS callback URL token -> the tenant (global, no tag)."""


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

    def serial_counter(self, profile: str) -> str:
        """String: the last serial taken by a code profile (``codegen/batches.py``)."""
        return f"{self._t}:serial:{profile}"

    @property
    def batch_counter(self) -> str:
        """String: the last batch number given out (``B000042``)."""
        return f"{self._t}:serial:batch"

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
        """Hash: per-day check counters the verify script keeps (``verify_api/check/stats.py``)."""
        return f"{self.segment_tag(segment)}:stats:{day}"

    def stats_day(self, day: str) -> str:
        """Hash: per-day counters of checks refused before any script (malformed ...)."""
        return f"is:{{{self.tenant}/st}}:day:{day}"

    @property
    def admin_tokens(self) -> str:
        """Hash: sha256 of an admin token -> its JSON record (``verify_api/admin/auth.py``)."""
        return f"{self._t}:admin-tokens"

    def dashboard_session(self, session_hash: str) -> str:
        """String with a TTL: a dashboard login's record (``verify_api/admin/sessions.py``)."""
        return f"{self._t}:dash-session:{session_hash}"

    @property
    def audit(self) -> str:
        """Stream: every change made through the admin API (``codegen/store/audit.py``)."""
        return f"{self._t}:audit"

    @property
    def staff(self) -> str:
        """Set: the usernames of the tenant's office staff (``verify_api/admin/staff.py``)."""
        return f"{self._t}:staff"

    def staff_member(self, username: str) -> str:
        """Hash: one staff account (role, password hash, lock-out counters, sealed TOTP)."""
        return f"{self._t}:staff:u:{username}"

    def office_export(self, job_id: str) -> str:
        """Hash (expiring): an office export's progress, then its CSV (``office_members.py``)."""
        return f"{self._t}:office:export:{job_id}"

    def office_login_failures(self, subject: str, window: int) -> str:
        """Hash (expiring): failed office log-ins from one address in one fixed window
        (``failures``, ``refused``; ``verify_api/admin/login_limit.py``)."""
        return f"{self._t}:office:login-failures:{subject}:{window}"

    def office_session(self, digest: str) -> str:
        """String (expiring): an office session by the SHA-256 of its id (``admin/sessions.py``)."""
        return f"{self._t}:office:session:{digest}"

    @property
    def alerts_config(self) -> str:
        """String: the alert settings as JSON, webhook secret sealed (``admin/alerts.py``)."""
        return f"{self._t}:alerts:config"

    def alert_sent(self, alert_id: str) -> str:
        """String (expiring): marks an alert delivered so the next run does not repeat it."""
        return f"{self._t}:alerts:sent:{alert_id}"

    @property
    def alert_snapshots(self) -> str:
        """Sorted set: per-region counterfeit counts by time, the surge rule's baseline."""
        return f"{self._t}:alerts:snaps"

    @property
    def feedback(self) -> str:
        """Stream: consumers' messages to the brand (``verify_api/channels/feedback.py``)."""
        return f"{self._t}:feedback"

    @property
    def feedback_answers(self) -> str:
        """Hash: feedback id -> the brand's answer as JSON."""
        return f"{self._t}:feedback:answers"

    def sms_seen(self, dedup_id: str) -> str:
        """String (expiring): an inbound SMS's pending marker, then its reply."""
        return f"{self._t}:sms:seen:{dedup_id}"

    @property
    def sms_inbound(self) -> str:
        """Stream: every inbound SMS with what it asked and how it ended
        (``verify_api/channels/sms.py``), trimmed to the tenant's retention."""
        return f"{self._t}:sms:in"

    def scan_bucket(self, serial: int) -> str:
        """Hash of per-code scan state for a bucket of serials (no record before a scan)."""
        return f"{self.segment_tag(segment_of(serial))}:scan:{serial // SCAN_BUCKET_SERIALS}"

    def rate_limit(self, subject: str, window: int) -> str:
        """Counter of one rate-limit window of one client (``ip/...``, ``phone/...``).

        Per client, not per code, so it cannot share a code's segment tag. All
        of a tenant's counters share ``{TENANT/rl}``: a request's counts against
        its IP and its phone limit go to one node (``verify_api/check/ratelimit.py``).
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
    def shops(self) -> str:
        """Hash: shop id -> JSON {name, region, created_at} (``points_bridge/shops.py``)."""
        return f"{self._t}:shops"

    @property
    def earn_rates(self) -> str:
        """Hash: ``sku:<SKU>`` / ``cat:<category>`` -> purchase earn rate (basis points);
        ``in:<SKU>`` -> the SKU's category (``points_bridge/purchases.py``)."""
        return f"{self._t}:earn-rates"

    @property
    def card_counter(self) -> str:
        return f"{self._t}:cards"

    @property
    def ledger_archive(self) -> str:
        """Hash: archive run id -> JSON {dir, cutoff_ms, entries, members, at}: the Parquet
        files ledger entries were moved to (``points_bridge/ledger_archive.py``)."""
        return f"{self._t}:ledger-archive"

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

    def _out(self, name: str) -> str:
        """Outbound SMS keys (outbound, care, draws), all in the tenant slot."""
        return f"{self._t}:out:{name}"

    @property
    def outbound_config(self) -> str:
        """Hash: the tenant's outbound SMS settings (``points_bridge/sms/outbound_config.py``)."""
        return self._out("config")

    @property
    def sms_credit(self) -> str:
        """String: SMS units the tenant has left to send."""
        return self._out("credit")

    def outbound_message(self, message_id: str) -> str:
        """Hash: one queued message and its delivery status."""
        return self._out(f"m:{message_id}")

    def outbound_queue(self, transactional: bool) -> str:
        """List of message ids to send: transactional ones go before bulk ones."""
        return self._out("q:tx" if transactional else "q:bulk")

    @property
    def outbound_no_credit(self) -> str:
        """Sorted set: ids of messages refused for lack of credit, requeued by a top-up."""
        return self._out("no-credit")

    @property
    def outbound_inflight(self) -> str:
        """List: message ids a sender took and has not finished."""
        return self._out("inflight")

    def outbound_once(self, once: str) -> str:
        """String (expiring): an extra dedup key (care: one greeting per member and period)."""
        return self._out(f"once:{once}")

    def outbound_counters(self, scope: str) -> str:
        """Hash: sent/failed/spent of one scope (a campaign id, ``care``...; ``all``: every one)."""
        return self._out(f"n:{scope}")

    @property
    def outbound_counters_pattern(self) -> str:
        """SCAN pattern matching every ``outbound_counters`` key of the tenant."""
        return self._out("n:*")

    @staticmethod
    def outbound_counters_scope(key: str) -> str:
        """The scope an ``outbound_counters`` key counts."""
        return key.rsplit(":n:", 1)[1]

    @property
    def gateway_refs(self) -> str:
        """Hash: the gateway's message id -> ours (delivery receipts may carry either)."""
        return self._out("gw")

    def send_rate(self, second: int) -> str:
        """Counter (expiring) of sends in one clock second, over every runner."""
        return self._out(f"rate:{second}")

    def sms_asked(self, phone: str) -> str:
        """String (expiring): the SMS campaign last sent to a phone, so its reply is linked."""
        return self._out(f"asked:{phone}")

    @property
    def care_settings(self) -> str:
        """String: customer-care settings as JSON (``points_bridge/outreach/care.py``)."""
        return self._out("care")

    @property
    def draws(self) -> str:
        """Set: the keywords of the tenant's lucky draws."""
        return self._out("draws")

    def draw(self, keyword: str) -> str:
        """Hash: one lucky draw (``points_bridge/outreach/draws.py``)."""
        return self._out(f"draw:{keyword}")

    def draw_entries(self, keyword: str) -> str:
        """Hash: phone -> 1 if its answer to the draw was right, else 0 (first answer only)."""
        return self._out(f"draw:{keyword}:entries")

    def sms_campaign(self, campaign_id: str) -> str:
        """Hash: one SMS campaign (``points_bridge/outreach/sms_campaigns.py``)."""
        return self._out(f"campaign:{campaign_id}")

    def sms_campaign_idem(self, key: str) -> str:
        """String: the campaign id an idempotency key created."""
        return self._out(f"idem:{key}")

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

    def crm_cards(self, shard: int) -> str:
        """Set: cards members were made with that did not come from the tenant's counter.

        A CRM's own card numbers, kept on import (``MemberStore.ensure_with_card``,
        ``member_import.py``), so that a walk over every member (``MemberStore.cards``)
        finds them too. Added before the member is made: a card here may have no
        record (its creation lost a race or was cut off), as a counter's card may.
        """
        return f"{self.shard_tag(shard)}:crm-cards"

    def record_keys(self, card: str) -> list[str]:
        """The first four of ``member_keys`` (the member's own keys), the shard tag made once:
        an import builds them for every new member (``member_import.py``)."""
        tag = self.shard_tag(shard_of(card))
        return [f"{tag}:m:{card}", f"{tag}:ledger:{card}", f"{tag}:idem:{card}",
                f"{tag}:lots:{card}"]

    def member_keys(self, card: str) -> tuple[str, ...]:
        """KEYS of every member script, in this order."""
        return _member_keys(self.tenant, card)

    def counts(self, shard: int) -> str:
        """Hash: the shard's members per status and tier, points per kind (``counters.py``).

        Kept by the scripts that change members and ledgers, so the tier and
        points reports add up ``MEMBER_SHARDS`` hashes instead of reading
        every member.
        """
        return f"{self.shard_tag(shard)}:counts"

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

    # -- rewards, redemptions, coupons (tenant slot: one script reserves stock and records)
    @property
    def rewards(self) -> str:
        """Hash: reward item id -> its JSON record (``points_bridge/rewards.py``)."""
        return f"{self._t}:rewards"

    @property
    def reward_stock(self) -> str:
        """Hash: reward item id -> items left (integer; the reserve script takes one)."""
        return f"{self._t}:reward-stock"

    @property
    def redemptions(self) -> str:
        """Hash: redemption id -> its JSON facts (card, item, points, at), written once."""
        return f"{self._t}:redemptions"

    @property
    def redemption_states(self) -> str:
        """Hash: redemption id -> ``<state> <ledger entry|-> <coupon|->``."""
        return f"{self._t}:redemption-states"

    def member_redemptions(self, card: str) -> str:
        """Sorted set: a member's redemption ids by time (tenant slot, beside the facts)."""
        return f"{self._t}:redemptions:{card}"

    @property
    def coupons(self) -> str:
        """Hash: coupon code -> its JSON facts (card, item, redemption, expires_at)."""
        return f"{self._t}:coupons"

    @property
    def coupon_states(self) -> str:
        """Hash: coupon code -> ``issued <expires_at>``, ``used <at> <shop>`` or ``void <at>``."""
        return f"{self._t}:coupon-states"

    @property
    def coupon_serial(self) -> str:
        """String: the last coupon serial given out (``codegen/coupons.py``)."""
        return f"{self._t}:coupon-serial"

    def member_coupons(self, card: str) -> str:
        """Sorted set: a member's coupon codes by issue time."""
        return f"{self._t}:coupons:{card}"

    def signin_code(self, e164: str) -> str:
        """Hash (expiring): a member page sign-in code's hash and tries left, per phone."""
        return f"{self._t}:signin:{e164}"

    def signin_sends(self, subject: str) -> str:
        """String (expiring): sign-in codes sent to a phone or an IP this hour."""
        return f"{self._t}:signin-sent:{subject}"

    def credit_pin(self, serial: int) -> str:
        """Hash: ``serial % 128`` -> the card the serial's points go to (set once)."""
        tag = self.tenant_keys.segment_tag(segment_of(serial))
        return f"{tag}:credit:{serial // CREDIT_BUCKET_SERIALS}"


@functools.lru_cache(maxsize=4096)
def _member_keys(tenant: str, card: str) -> tuple[str, ...]:
    """``PointsKeys.member_keys``, cached: seven names built on every first check otherwise,
    for the few thousand members a worker credits again and again."""
    keys = PointsKeys(tenant)
    shard = shard_of(card)
    return (keys.member(card), keys.ledger(card), keys.idem(card), keys.lots(card),
            keys.events(shard), keys.pending(shard), keys.counts(shard))
