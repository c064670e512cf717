"""Campaigns of a tenant: stored definitions, and budgets that are never overspent.

A campaign (``rules.Campaign``) is a JSON value in the tenant hash
``PointsKeys.campaigns``; ``end`` records ``ended_at`` instead of rewriting
the window, so the definition a claim was computed under stays readable.

**Budgets.** What each campaign has spent is one field of
``PointsKeys.campaign_spend``, in the tenant slot beside the definitions, so
one script (``lua/reserve_spend.lua``) charges every campaign of a credit
all-or-nothing and refuses a charge that would pass a budget; the refused
caller recomputes the award from the figures the script returns. The charge
is made *before* the member's ledger entry (another slot) and taken back if
that entry does not happen (a repeated claim, a member changed under us).
A crash between the two leaves the charge in place: a budget may end a few
points short, never over. Unbudgeted campaigns are counted the same way, so
``campaign list`` shows what every campaign has given.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from points_bridge.exc import BadRule, CampaignExists, PointsError, UnknownCampaign
from points_bridge.rules import Campaign
from points_bridge.scoped import TenantScoped

log = logging.getLogger(__name__)
CAMPAIGN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
UNLIMITED = 2**53 - 1
"""Budget sent to the reserve script for a campaign without one (exact in Lua's doubles)."""


@dataclass(frozen=True)
class StoredCampaign:
    """A campaign as stored: the rule, when it was ended early, and what it has spent."""

    campaign: Campaign
    ended_at: datetime | None
    spent: int

    def live_at(self, at: datetime) -> bool:
        return self.ended_at is None or at < self.ended_at


def _scope(values: frozenset[str] | None) -> list[str] | None:
    return None if values is None else sorted(values)


def to_json(campaign: Campaign, ended_at: datetime | None = None) -> str:
    return json.dumps(
        {
            "campaign_id": campaign.campaign_id,
            "starts_at": campaign.starts_at.isoformat(),
            "ends_at": campaign.ends_at.isoformat(),
            "multiplier_bp": campaign.multiplier_bp,
            "bonus": campaign.bonus,
            "regions": _scope(campaign.regions),
            "tiers": _scope(campaign.tiers),
            "skus": _scope(campaign.skus),
            "budget": campaign.budget,
            "ended_at": None if ended_at is None else ended_at.isoformat(),
        },
        sort_keys=True,
    )


def from_json(raw: bytes | str, spent: int = 0) -> StoredCampaign:
    d = json.loads(raw)
    scope = {k: None if d[k] is None else frozenset(d[k]) for k in ("regions", "tiers", "skus")}
    campaign = Campaign(
        campaign_id=d["campaign_id"],
        starts_at=datetime.fromisoformat(d["starts_at"]),
        ends_at=datetime.fromisoformat(d["ends_at"]),
        multiplier_bp=d["multiplier_bp"],
        bonus=d["bonus"],
        budget=d["budget"],
        **scope,
    )
    ended = d.get("ended_at")
    return StoredCampaign(campaign, datetime.fromisoformat(ended) if ended else None, spent)


def parse_all(
    definitions: Mapping[bytes, bytes], spend: Mapping[bytes, bytes]
) -> dict[str, StoredCampaign]:
    """Build the campaigns from the raw definitions and spend hashes.

    A definition that no longer parses (stored by an older version with looser
    bounds) is left out with a logged warning: one bad campaign must not stop
    every credit of the tenant.
    """
    spent = {k.decode(): int(v) for k, v in spend.items() if b"/" not in k}
    found: dict[str, StoredCampaign] = {}
    for raw_id, raw in sorted(definitions.items()):
        campaign_id = raw_id.decode()
        try:
            found[campaign_id] = from_json(raw, spent.get(campaign_id, 0))
        except (PointsError, ValueError, KeyError, TypeError) as exc:
            log.warning("campaign %r of a tenant does not parse (%s): left out", campaign_id,
                        exc)
    return found


def reserve_args(
    charges: Mapping[str, int], campaigns: Mapping[str, StoredCampaign]
) -> list[bytes]:
    """ARGV of ``lua/reserve_spend.lua``: (campaign, points, budget) per charge."""
    args: list[bytes] = []
    for campaign_id, points in sorted(charges.items()):
        budget = campaigns[campaign_id].campaign.budget
        args += [campaign_id.encode(), b"%d" % points, b"%d" % (UNLIMITED if budget is None
                                                               else budget)]
    return args


def reserve_refused(reply: list) -> dict[str, int] | None:
    """None if ``reserve_spend.lua`` charged everything, else what each campaign has spent."""
    if reply[0] == 1:
        return None
    return {reply[i].decode(): int(reply[i + 1]) for i in range(1, len(reply), 2)}


class CampaignStore(TenantScoped):
    """Add, list and end campaigns; charge and refund their budgets."""

    def add(self, campaign: Campaign) -> StoredCampaign:
        if not CAMPAIGN_ID.match(campaign.campaign_id):
            raise BadRule(campaign.campaign_id, "ids are 1-64 letters, digits, '.', '_', '-'")
        if not self._redis.hsetnx(self.keys.campaigns, campaign.campaign_id, to_json(campaign)):
            raise CampaignExists(self.tenant, campaign.campaign_id)
        return StoredCampaign(campaign, None, 0)

    def list(self) -> dict[str, StoredCampaign]:
        pipe = self._redis.pipeline(transaction=False)
        pipe.hgetall(self.keys.campaigns)
        pipe.hgetall(self.keys.campaign_spend)
        return parse_all(*pipe.execute())

    def get(self, campaign_id: str) -> StoredCampaign:
        found = self.list().get(campaign_id)
        if found is None:
            raise UnknownCampaign(self.tenant, campaign_id)
        return found

    def end(self, campaign_id: str) -> StoredCampaign:
        """End a campaign now: claims from this moment on no longer get it."""
        stored = self.get(campaign_id)
        if stored.ended_at is not None:
            return stored
        now = datetime.fromtimestamp(int(self._clock()), UTC)  # claims carry whole seconds
        self._redis.hset(self.keys.campaigns, campaign_id, to_json(stored.campaign, now))
        return StoredCampaign(stored.campaign, now, stored.spent)

    def reserve(
        self, charges: Mapping[str, int], campaigns: Mapping[str, StoredCampaign]
    ) -> dict[str, int] | None:
        """Charge every campaign, all or nothing; on refusal return what each has spent."""
        args = reserve_args(charges, campaigns)
        if not args:
            return None
        reply = self._scripts.reserve_spend(keys=[self.keys.campaign_spend], args=args)
        return reserve_refused(reply)

    def refund(self, charges: Mapping[str, int]) -> None:
        """Take back charges whose credit did not happen."""
        pipe = self._redis.pipeline(transaction=False)
        for campaign_id, points in charges.items():
            pipe.hincrby(self.keys.campaign_spend, campaign_id, -points)
        pipe.execute()
