"""The office's customer-care pages: the feedback inbox, SMS segments and campaigns.

Same actions and audit entries as the admin API (``admin_care.py``):
``feedback.read``/``feedback.answer``; ``segments.read`` to preview a
segment, ``outbound.write`` to send, ``outbound.read`` to follow a campaign.

A campaign to a whole member base takes a while to queue (one outbox entry
per member), so the office queues it on a background thread and shows the
campaign's page at once; that page refreshes itself (a ``<meta
refresh>``, no script) with a progress bar until every message is sent.
The send is idempotent by its key: if the worker dies half-way, the page's
"resume" button queues the rest (``SmsCampaigns.send`` re-queues a campaign
still ``queuing``, and the outbox drops the entries it already has).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading

from codegen.exc import ItemsealError
from codegen.store.keyspace import PointsKeys
from points_bridge.exc import UnknownSmsCampaign
from points_bridge.outreach.segments import Segment, preview
from points_bridge.outreach.sms_campaigns import DONE, MAX_TEXT, QUEUING, SmsCampaigns
from points_bridge.sms.optout import phone_of
from points_bridge.sms.outbound import ANSWER, Outbox
from verify_api.admin.listing import DESC, Sorting, list_page
from verify_api.channels.feedback import FeedbackInbox
from verify_api.exc import InvalidField, NotFound
from verify_api.resources.office import OFFICE, OfficePage, Visit, page

FEEDBACK_SCAN = 10_000  # sorted and paged among the newest messages, as the audit log
FEEDBACK_SORTING = Sorting({  # the stream's id orders messages of the same second
    "at": lambda f: tuple(int(n) for n in f.feedback_id.split("-")),
    "phone": lambda f: f.phone, "channel": lambda f: f.channel, "status": lambda f: f.status,
}, default="at", default_dir=DESC)
FEEDBACK_ID = re.compile(r"\d{1,20}-\d{1,10}")
CAMPAIGN_KEY = re.compile(r"o[0-9a-f]{16}")
SEGMENT_FIELDS = ("tiers", "regions", "points_min", "points_max", "birthday_month",
                  "no_check_days", "status")


def new_key() -> str:
    """The send key a campaign form carries, so sending it twice sends one campaign."""
    return "o" + secrets.token_hex(8)


class UnknownCampaignKey(NotFound):
    code = "unknown_sms_campaign"


class FeedbackPage(OfficePage):
    """``GET .../feedback?status=open|answered&sort=...&dir=...&page=N``;
    ``POST .../feedback/{id}`` answers."""

    @page("feedback.read")
    def on_get(self, req, resp, visit: Visit) -> None:
        self.show(req, resp, visit)

    def show(self, req, resp, visit: Visit, *, errors: dict | None = None,
             typed: dict | None = None, status: int = 200, note: str = "") -> None:
        which = req.get_param("status") or ""
        if which not in ("", "open", "answered"):
            raise InvalidField("status", "'status' is open or answered")
        found = FeedbackInbox(self.ctx.client, visit.tenant).list(FEEDBACK_SCAN, which or None)
        listing = list_page(found, FEEDBACK_SORTING, req.params, keep={"status": which})
        self.ctx.render(resp, "feedback.html", visit=visit, status=status, listing=listing,
                        which=which, scan=FEEDBACK_SCAN, errors=errors or {},
                        typed=typed or {}, note=note)


class FeedbackAnswer(OfficePage):
    def __init__(self, ctx, inbox: FeedbackPage) -> None:
        super().__init__(ctx)
        self.inbox = inbox

    @page("feedback.answer")
    def on_post(self, req, resp, visit: Visit, feedback_id: str) -> None:
        if not FEEDBACK_ID.fullmatch(feedback_id):
            raise NotFound(f"no feedback {feedback_id!r}")
        text = visit.form.get("text", "").strip()
        inbox = FeedbackInbox(self.ctx.client, visit.tenant)
        before = inbox.get(feedback_id)
        if not text or len(text) > 500:
            self.inbox.show(req, resp, visit, status=422, typed={feedback_id: text},
                            errors={feedback_id: "write an answer of 1-500 characters"})
            return
        phone = phone_of(self.ctx.client, visit.tenant, before.phone)
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]  # a resend sends once
        Outbox(self.ctx.client, visit.tenant, clock=self.ctx.clock).enqueue(
            f"f.{feedback_id}.{digest}", phone, text, ANSWER)
        after = inbox.mark_answered(feedback_id, text, int(self.ctx.clock()))
        self.ctx.audit(visit, "feedback.answer", f"feedback/{feedback_id}", before.to_json(),
                       after.to_json())
        self.inbox.show(req, resp, visit, note=f"answered {feedback_id}")


def segment_of(form: dict[str, str]) -> Segment:
    """A segment from the SMS page's fields (lists comma-separated, numbers as typed)."""
    data: dict[str, object] = {}
    for name in ("tiers", "regions"):
        data[name] = [v.strip() for v in form.get(name, "").split(",") if v.strip()]
    for name in ("points_min", "points_max", "birthday_month", "no_check_days"):
        raw = form.get(name, "").strip()
        if raw:
            if not raw.isdigit():
                raise InvalidField(name, "a whole number >= 0")
            data[name] = int(raw)
    data["status"] = form.get("status") or "active"
    try:
        return Segment.parse(data)
    except ItemsealError as exc:
        raise InvalidField(getattr(exc, "field", "tiers"), str(exc)) from None


class SmsPage(OfficePage):
    """``GET .../sms``: the segment form, its preview (``?preview=1``) and the SMS report;
    ``POST .../sms``: send a campaign to the segment, in the background."""

    @page("segments.read")
    def on_get(self, req, resp, visit: Visit) -> None:
        form = {name: req.get_param(name) or "" for name in (*SEGMENT_FIELDS, "text")}
        self.show(resp, visit, form, want_preview=req.get_param("preview") == "1")

    def show(self, resp, visit: Visit, form: dict, *, want_preview: bool = False,
             errors: dict | None = None, status: int = 200) -> None:
        errors = dict(errors or {})
        result = None
        if want_preview:
            try:
                seg = segment_of(form)
                count, sample = preview(self.ctx.client, visit.tenant, seg,
                                        int(self.ctx.clock()), 10,
                                        master=self.ctx.key_store.master)
                result = {"count": count, "sample": sample}
            except InvalidField as exc:
                errors[exc.field] = str(exc)
                status = 422
        report = Outbox(self.ctx.client, visit.tenant).report() if visit.may(
            "outbound.read") else None
        campaigns = sorted(s[2:] for s in (report or {}).get("by_scope", {})
                           if s.startswith("c:"))
        key = form.get("key") or ""
        self.ctx.render(resp, "sms.html", visit=visit, status=status, form=form,
                        errors=errors, result=result, report=report, campaigns=campaigns,
                        send_key=key if CAMPAIGN_KEY.fullmatch(key) else new_key())

    @page("outbound.write")
    def on_post(self, req, resp, visit: Visit) -> None:
        form = {name: visit.form.get(name, "") for name in (*SEGMENT_FIELDS, "text", "key")}
        try:
            seg = segment_of(form)
            text = form.get("text", "").strip()
            if not 1 <= len(text) <= MAX_TEXT:
                raise InvalidField("text", f"write the message: 1-{MAX_TEXT} characters")
        except InvalidField as exc:  # the preview and the send form again, with why
            self.show(resp, visit, form, want_preview=True, errors={exc.field: str(exc)},
                      status=422)
            return
        key = visit.form.get("key", "")
        key = key if CAMPAIGN_KEY.fullmatch(key) else new_key()
        job = self.ctx.jobs.get(key)
        started = (job is not None and job.is_alive()) or self.ctx.client.exists(
            PointsKeys(visit.tenant).sms_campaign_idem(key))
        if not started:  # else a second click, or the form sent again: the same campaign
            self._start(visit, seg, text, key)
        self.ctx.redirect(resp, f"{OFFICE}/{visit.tenant}/sms/{key}")

    def _start(self, visit: Visit, seg: Segment, text: str, key: str) -> None:
        campaigns = SmsCampaigns(self.ctx.client, visit.tenant, clock=self.ctx.clock,
                                 master=self.ctx.key_store.master)

        def run() -> None:
            try:
                campaign = campaigns.send(seg, text, key)
            except ItemsealError:
                return  # the page shows the campaign as not started; the audit has no entry
            if not campaign.duplicate:
                self.ctx.audit(visit, "sms_campaign.send",
                               f"sms_campaign/{campaign.campaign_id}", None, campaign.to_json())

        job = threading.Thread(target=run, name=f"office-campaign-{key}", daemon=True)
        self.ctx.jobs[key] = job
        job.start()


class CampaignPage(OfficePage):
    """``GET .../sms/{key}``: one campaign's progress; ``POST`` resumes a stopped one."""

    def __init__(self, ctx, sms: SmsPage) -> None:
        super().__init__(ctx)
        self.sms = sms

    def _campaign(self, visit: Visit, key: str):
        if not CAMPAIGN_KEY.fullmatch(key) and not re.fullmatch(r"sc[0-9a-f]{12}", key):
            raise UnknownCampaignKey(f"no campaign {key!r}")
        campaigns = SmsCampaigns(self.ctx.client, visit.tenant)
        if key.startswith("sc"):
            return campaigns.get(key)
        found = self.ctx.client.get(PointsKeys(visit.tenant).sms_campaign_idem(key))
        if found is None:
            job = self.ctx.jobs.get(key)
            if job is not None and job.is_alive():
                return None  # being created
            raise UnknownCampaignKey(f"no campaign {key!r}")
        try:
            return campaigns.get(found.decode())
        except UnknownSmsCampaign:
            job = self.ctx.jobs.get(key)
            if job is not None and job.is_alive():
                return None  # its record is being written
            raise

    @page("outbound.read")
    def on_get(self, req, resp, visit: Visit, key: str) -> None:
        campaign = self._campaign(visit, key)
        counters = campaign.counters if campaign else {}
        handled = counters.get("sent", 0) + counters.get("failed", 0)
        targeted = campaign.targeted if campaign else 0
        job = self.ctx.jobs.get(key)
        stalled = bool(campaign and campaign.status == QUEUING
                       and not (job is not None and job.is_alive()))
        self.ctx.render(resp, "campaign.html", visit=visit, key=key, c=campaign,
                        handled=handled, targeted=targeted, counters=counters,
                        refresh=campaign is None or (campaign.status != DONE and not stalled),
                        stalled=stalled)

    @page("outbound.write")
    def on_post(self, req, resp, visit: Visit, key: str) -> None:
        campaign = self._campaign(visit, key)
        if campaign is not None and campaign.status == QUEUING:
            self.sms._start(visit, Segment.parse(campaign.segment), campaign.text,
                            campaign.key)
        self.ctx.redirect(resp, f"{OFFICE}/{visit.tenant}/sms/{key}")


def routes(ctx) -> list[tuple[str, object]]:
    inbox, sms = FeedbackPage(ctx), SmsPage(ctx)
    return [
        ("/{tenant}/feedback", inbox),
        ("/{tenant}/feedback/{feedback_id}", FeedbackAnswer(ctx, inbox)),
        ("/{tenant}/sms", sms),
        ("/{tenant}/sms/{key}", CampaignPage(ctx, sms)),
    ]
