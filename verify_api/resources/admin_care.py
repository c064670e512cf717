"""Admin routes for customer care: segments, SMS campaigns, care, draws, alerts, feedback.

Same pattern as the other admin resources: the role check runs in
``AdminAuth``; responders parse, call the library the CLI uses, audit, answer.
"""

from __future__ import annotations

import hashlib

from points_bridge.outreach.care import Care
from points_bridge.outreach.draws import Draws
from points_bridge.outreach.segments import Segment, preview
from points_bridge.outreach.sms_campaigns import SmsCampaigns
from points_bridge.sms.optout import phone_of
from points_bridge.sms.outbound import ANSWER, Outbox
from verify_api.admin.alerts import Alerts
from verify_api.channels.feedback import FeedbackInbox
from verify_api.exc import InvalidField
from verify_api.resources import body_of
from verify_api.resources.admin import AdminContext, AdminResource, fields
from verify_api.resources.admin_bodies import MAX_ADMIN_BODY, query_int
from verify_api.resources.bodies import load_object


def _object(req) -> dict:
    body = body_of(req, MAX_ADMIN_BODY)
    return load_object(body) if body.strip() else {}


def _segment(data: dict) -> Segment:
    raw = data.get("segment") or {}
    if not isinstance(raw, dict):
        raise InvalidField("segment", "'segment' must be an object")
    return Segment.parse(raw)


class SegmentPreview(AdminResource):
    """``POST .../segments/preview`` ``{"segment": {...}, "sample": 10}``: count and sample."""

    actions = {"POST": "segments.read"}

    def on_post(self, req, resp, tenant: str) -> None:
        data = _object(req)
        sample = data.get("sample", 10)
        if isinstance(sample, bool) or not isinstance(sample, int) or not 0 <= sample <= 100:
            raise InvalidField("sample", "'sample' is a whole number 0-100")
        seg = _segment(data)
        count, kept = preview(self.ctx.client, tenant, seg, int(self.ctx.clock()), sample,
                              master=self.ctx.key_store.master)
        resp.media = {"segment": seg.to_json(), "count": count, "sample": [
            {"card": m.card, "phone": m.phone, "tier": m.tier, "balance": m.balance}
            for m in kept]}


class SmsCampaignSend(AdminResource):
    """``POST .../sms-campaigns`` ``{"segment", "text", "key"}``: queue it (once per key)."""

    actions = {"POST": "outbound.write"}

    def on_post(self, req, resp, tenant: str) -> None:
        data = _object(req)
        text, key = data.get("text"), data.get("key")
        if not isinstance(text, str):
            raise InvalidField("text", "'text' is required")
        if key is not None and (not isinstance(key, str) or not 1 <= len(key) <= 128):
            raise InvalidField("key", "'key' is a string of 1-128 characters")
        campaign = SmsCampaigns(self.ctx.client, tenant, clock=self.ctx.clock,
                                master=self.ctx.key_store.master).send(
            _segment(data), text, key)
        if not campaign.duplicate:
            self.ctx.audit(req, tenant, "sms_campaign.send",
                           f"sms_campaign/{campaign.campaign_id}", None, campaign.to_json())
        resp.status = 200 if campaign.duplicate else 201
        resp.media = campaign.to_json()


class SmsCampaignOne(AdminResource):
    actions = {"GET": "outbound.read"}

    def on_get(self, req, resp, tenant: str, sms_campaign_id: str) -> None:
        resp.media = SmsCampaigns(self.ctx.client, tenant).get(sms_campaign_id).to_json()


class SmsReport(AdminResource):
    """``GET .../sms-report``: sent, failed, delivered and spent, overall and per scope."""

    actions = {"GET": "outbound.read"}

    def on_get(self, req, resp, tenant: str) -> None:
        resp.media = Outbox(self.ctx.client, tenant).report()


class CareConfig(AdminResource):
    actions = {"GET": "care.read", "PUT": "care.write"}

    def on_get(self, req, resp, tenant: str) -> None:
        resp.media = Care(self.ctx.client, tenant).config()

    def on_put(self, req, resp, tenant: str) -> None:
        store = Care(self.ctx.client, tenant)
        before = store.config()
        after = store.configure(_object(req))
        self.ctx.audit(req, tenant, "care.set", "care", before, after)
        resp.media = after


class DrawCollection(AdminResource):
    """``POST .../draws`` ``{"keyword", "answer", "winners", "prize"}``; ``GET`` lists them."""

    actions = {"GET": "draws.read", "POST": "draws.write"}

    def on_get(self, req, resp, tenant: str) -> None:
        resp.media = {"draws": [d.to_json() for d in Draws(self.ctx.client, tenant).list()]}

    def on_post(self, req, resp, tenant: str) -> None:
        body = fields(req)
        keyword = body.str("keyword", required=True, limit=16)
        answer = body.str("answer", required=True, limit=64)
        winners = body.int("winners", minimum=1) or 1
        prize = body.str("prize", limit=300) or ""
        body.done()
        found = Draws(self.ctx.client, tenant, clock=self.ctx.clock).open(
            keyword, answer, winners, prize)
        self.ctx.audit(req, tenant, "draw.open", f"draw/{found.keyword}", None, found.to_json())
        resp.status = 201
        resp.media = found.to_json()


class DrawOne(AdminResource):
    actions = {"GET": "draws.read"}

    def on_get(self, req, resp, tenant: str, keyword: str) -> None:
        resp.media = Draws(self.ctx.client, tenant).get(keyword).to_json()


class DrawClose(AdminResource):
    """``POST .../draws/{keyword}/close`` ``{"seed"?}``: pick, notify, audit the seed."""

    actions = {"POST": "draws.write"}

    def on_post(self, req, resp, tenant: str, keyword: str) -> None:
        body = fields(req)
        seed = body.str("seed", limit=128)
        body.done()
        found, record = Draws(self.ctx.client, tenant, clock=self.ctx.clock).close(keyword, seed)
        self.ctx.audit(req, tenant, "draw.close", f"draw/{found.keyword}", None, record)
        resp.media = {"draw": found.to_json(), "pick": record}


def _alerts_public(config: dict) -> dict:
    return {**config, "webhook_secret": bool(config["webhook_secret"])}


class AlertConfig(AdminResource):
    actions = {"GET": "alerts.read", "PUT": "alerts.write"}

    def on_get(self, req, resp, tenant: str) -> None:
        store = Alerts(self.ctx.client, tenant, master=self.ctx.key_store.master)
        resp.media = _alerts_public(store.config())

    def on_put(self, req, resp, tenant: str) -> None:
        store = Alerts(self.ctx.client, tenant, master=self.ctx.key_store.master)
        before = _alerts_public(store.config())
        after = _alerts_public(store.configure(_object(req)))
        self.ctx.audit(req, tenant, "alerts.set", "alerts", before, after)
        resp.media = after


class FeedbackList(AdminResource):
    """``GET .../feedback?status=open|answered&limit=50``: the inbox, newest first."""

    actions = {"GET": "feedback.read"}

    def on_get(self, req, resp, tenant: str) -> None:
        status = req.get_param("status")
        if status not in (None, "open", "answered"):
            raise InvalidField("status", "'status' is open or answered")
        limit = query_int(req.params, "limit", 50, 1, 500)
        found = FeedbackInbox(self.ctx.client, tenant).list(limit, status)
        resp.media = {"feedback": [f.to_json() for f in found]}


class FeedbackAnswer(AdminResource):
    """``POST .../feedback/{id}/answer`` ``{"text"}``: SMS the answer through the sender."""

    actions = {"POST": "feedback.answer"}

    def on_post(self, req, resp, tenant: str, feedback_id: str) -> None:
        body = fields(req)
        text = body.str("text", required=True, limit=500)
        body.done()
        if not text.strip():
            raise InvalidField("text", "'text' must not be empty")
        inbox = FeedbackInbox(self.ctx.client, tenant)
        before = inbox.get(feedback_id)
        phone = phone_of(self.ctx.client, tenant, before.phone)
        digest = hashlib.sha256(text.strip().encode()).hexdigest()[:16]  # a retry sends once
        queued = Outbox(self.ctx.client, tenant, clock=self.ctx.clock).enqueue(
            f"f.{feedback_id}.{digest}", phone, text.strip(), ANSWER)
        after = inbox.mark_answered(feedback_id, text.strip(), int(self.ctx.clock()))
        self.ctx.audit(req, tenant, "feedback.answer", f"feedback/{feedback_id}",
                       before.to_json(), after.to_json())
        resp.media = {"feedback": after.to_json(), "sms": queued}


def routes(ctx: AdminContext) -> list[tuple[str, AdminResource]]:
    return [
        ("/segments/preview", SegmentPreview(ctx)),
        ("/sms-campaigns", SmsCampaignSend(ctx)),
        ("/sms-campaigns/{sms_campaign_id}", SmsCampaignOne(ctx)),
        ("/sms-report", SmsReport(ctx)),
        ("/care", CareConfig(ctx)),
        ("/draws", DrawCollection(ctx)),
        ("/draws/{keyword}", DrawOne(ctx)),
        ("/draws/{keyword}/close", DrawClose(ctx)),
        ("/alerts", AlertConfig(ctx)),
        ("/feedback", FeedbackList(ctx)),
        ("/feedback/{feedback_id}/answer", FeedbackAnswer(ctx)),
    ]
