"""SMS campaigns: a segment, a text, an idempotency key -> one message per member.

``send`` claims the idempotency key first (``SET NX``): a campaign posted
twice by mistake with the same key finds the first one and sends nothing
more. Message ids are ``<campaign>.<card>``, so a send interrupted half-way
and posted again resumes where it stopped without texting anyone twice.

The text may use ``{card}``, ``{balance}`` and ``{tier}``, filled per member.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from codegen.keys import MasterKey
from codegen.times import iso
from points_bridge.cards import format_card
from points_bridge.exc import BadInput, UnknownSmsCampaign
from points_bridge.members import Member
from points_bridge.outreach.segments import Segment, scan
from points_bridge.scoped import TenantScoped
from points_bridge.sms.outbound import CAMPAIGN, Outbox

MAX_TEXT = 500
REPLY_DAYS = 7
"""An SMS from a phone within this many days of a campaign to it is a reply to it
(the inbound log links them: ``itemseal report sms --by campaign``)."""
QUEUING, QUEUED, SENDING, DONE = "queuing", "queued", "sending", "done"


@dataclass(frozen=True)
class SmsCampaign:
    campaign_id: str
    text: str
    segment: dict
    key: str
    created_at: int
    status: str
    targeted: int
    counters: dict
    duplicate: bool = False

    def to_json(self) -> dict:
        return {"id": self.campaign_id, "text": self.text, "segment": self.segment,
                "key": self.key, "created_at": iso(self.created_at), "status": self.status,
                "targeted": self.targeted, "counters": self.counters,
                "duplicate": self.duplicate}


def personalise(text: str, member: Member) -> str:
    return (text.replace("{card}", format_card(member.card))
            .replace("{balance}", str(member.balance)).replace("{tier}", member.tier))


class SmsCampaigns(TenantScoped):
    """Send and follow one tenant's SMS campaigns."""

    def __init__(
        self, client: redis.Redis, tenant: str, *, clock: Callable[[], float] = time.time,
        master: MasterKey | None = None,
    ) -> None:
        super().__init__(client, tenant, clock=clock, master=master)
        self._outbox = Outbox(client, tenant, clock=clock)

    def send(self, segment: Segment, text: str, key: str | None = None) -> SmsCampaign:
        """Queue the campaign for every member of the segment (once per ``key``)."""
        text = text.strip()
        if not text or len(text) > MAX_TEXT:
            raise BadInput("text", text[:20], f"give 1-{MAX_TEXT} characters")
        key = key or secrets.token_hex(8)
        fresh = "sc" + secrets.token_hex(6)
        idem = self.keys.sms_campaign_idem(key)
        claimed = self._redis.set(idem, fresh, nx=True)
        campaign_id = fresh if claimed else self._redis.get(idem).decode()
        record = self.keys.sms_campaign(campaign_id)
        if claimed:
            self._redis.hset(record, mapping={
                "text": text, "segment": json.dumps(segment.to_json()), "key": key,
                "created_at": str(int(self._clock())), "status": QUEUING, "targeted": "0"})
        found = self.get(campaign_id)
        if found.status == QUEUING:  # new, or a send that stopped half-way: (re)queue
            self._queue(campaign_id, Segment.parse(found.segment), found.text)
        return SmsCampaign(**{**self.get(campaign_id).__dict__, "duplicate": not claimed})

    def _queue(self, campaign_id: str, segment: Segment, text: str) -> None:
        targeted = 0
        for member in scan(self._redis, self.tenant, segment, int(self._clock()),
                           master=self._master):
            targeted += 1
            queued = self._outbox.enqueue(f"{campaign_id}.{member.card}", member.phone,
                                          personalise(text, member), CAMPAIGN,
                                          scope=f"c:{campaign_id}")
            if queued == "queued":  # a reply within REPLY_DAYS is this campaign's
                self._redis.set(self.keys.sms_asked(member.phone), campaign_id,
                                ex=REPLY_DAYS * 86400)
        self._redis.hset(self.keys.sms_campaign(campaign_id),
                         mapping={"status": QUEUED, "targeted": str(targeted)})

    def get(self, campaign_id: str) -> SmsCampaign:
        raw = self._redis.hgetall(self.keys.sms_campaign(campaign_id))
        if not raw:
            raise UnknownSmsCampaign(self.tenant, campaign_id)
        f = {k.decode(): v.decode() for k, v in raw.items()}
        counters = self._outbox.counters(f"c:{campaign_id}")
        return SmsCampaign(
            campaign_id=campaign_id, text=f["text"], segment=json.loads(f["segment"]),
            key=f["key"], created_at=int(f["created_at"]), status=progress(f["status"], counters),
            targeted=int(f["targeted"]), counters=counters,
        )


def progress(stored: str, counters: dict[str, int]) -> str:
    """The campaign's status as its counters tell it, not only as queued.

    The record says ``queuing`` until every message is queued, then ``queued``;
    after that the sender moves messages on, so the counters say how far:
    ``queued`` (none sent or failed yet), ``sending``, ``done`` (none left in the queue).
    """
    if stored == QUEUING:
        return QUEUING
    handled = counters.get("sent", 0) + counters.get("failed", 0)  # skipped: maybe at enqueue
    if counters.get("queued", 0) > 0:
        return SENDING if handled else QUEUED
    return DONE
