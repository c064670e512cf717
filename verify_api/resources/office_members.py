"""The office's member pages: search, the paged list, one member, and every change to one.

The same stores and the same audit actions as the admin API
(``admin_members.py``): ``members.read`` to look, ``members.write`` to
change. A refused change shows the member's page again with the reason
next to the form that was sent, and what was typed still in it.
"""

from __future__ import annotations

import csv
import io
import json
import re
import secrets
import threading

from codegen.amounts import yuan
from codegen.exc import ItemsealError
from codegen.store.keyspace import PointsKeys, TenantKeys
from codegen.times import iso
from points_bridge.cards import format_card, is_valid_card, normalize_card
from points_bridge.ledger import Ledger
from points_bridge.members import TRANSITIONS, Member, MemberStore
from points_bridge.outreach.segments import records
from points_bridge.purchases import PurchaseDesk
from verify_api.admin.ledger_details import entry_details
from verify_api.admin.listing import DESC, Sorting, list_page
from verify_api.channels.feedback import FeedbackInbox
from verify_api.exc import InvalidField, NotFound
from verify_api.resources.admin_members import entry_json, member_json
from verify_api.resources.office import OFFICE, OfficePage, Visit, page

SORTING = Sorting({
    "card": lambda m: m.card, "phone": lambda m: m.phone,
    "name": lambda m: _fold(m.attributes["name"]) if m.attributes.get("name") else None,
    "tier": lambda m: m.tier, "status": lambda m: m.status, "balance": lambda m: m.balance,
    "created": lambda m: m.created_at,
}, default="created", default_dir=DESC)
STATUSES = ("active", "frozen", "cancelled")
CHANGES = ("adjust", "status", "rebind", "pin", "profile")


def _fold(text: str) -> str:
    return text.strip().casefold()


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


def _matches(m: Member, record: dict, *, tier: str, status: str, region: str, attr: str,
             words: str) -> bool:
    if tier and m.tier != tier:
        return False
    if status and m.status != status:
        return False
    if region:
        where = m.attributes.get("region") or record.get("last_region") or ""
        if _fold(where) != _fold(region):
            return False
    if attr:
        name, _, value = attr.partition("=")
        have = m.attributes.get(name.strip())
        if have is None or (value and _fold(have) != _fold(value)):
            return False
    if words:
        digits = "".join(c for c in words if c.isdigit())
        hay = [_fold(v) for v in m.attributes.values()]
        if not (any(_fold(words) in h for h in hay)
                or (len(digits) >= 4 and (digits in m.phone or digits in m.card))):
            return False
    return True


class MemberList(OfficePage):
    """``GET .../members``: find by phone, card or name; filters; sort; pages.

    A phone or card that names exactly one member goes straight to its page.
    The list reads every member record in pipelined chunks (the segments'
    reader), fine for a brand's tens of thousands of members.
    """

    @page("members.read")
    def on_get(self, req, resp, visit: Visit) -> None:
        self._show(req, resp, visit)

    def _show(self, req, resp, visit: Visit, *, errors: dict | None = None,
              typed: dict | None = None, status: int = 200) -> None:
        q = (req.get_param("q") or "").strip()
        store = MemberStore(self.ctx.client, visit.tenant, clock=self.ctx.clock,
                            master=self.ctx.key_store.master)
        if q and errors is None:
            found = self._exact(store, q)
            if found is not None:
                self.ctx.redirect(resp, f"{OFFICE}/{visit.tenant}/members/{found.card}")
                return
        filters = {name: (req.get_param(name) or "").strip()
                   for name in ("tier", "status", "region", "attr")}
        found = []
        master = self.ctx.key_store.master
        for card, record in records(self.ctx.client, visit.tenant, master=master):
            if not record.get("status"):
                continue
            member = Member.from_record(visit.tenant, card, record)
            if _matches(member, record, words=q, **filters):
                found.append(member)
        listing = list_page(found, SORTING, req.params, keep={"q": q, **filters})
        settings = store.settings()
        self.ctx.render(
            resp, "members.html", visit=visit, status=status, q=q, filters=filters,
            listing=listing, tiers=[t.name for t in settings.ladder.tiers], statuses=STATUSES,
            attributes=list(settings.attributes), errors=errors or {}, typed=typed or {},
            format_card=format_card,
        )

    @staticmethod
    def _exact(store: MemberStore, q: str) -> Member | None:
        digits = normalize_card(q)
        if digits and is_valid_card(digits):
            found = store.get(digits)
            if found is not None:
                return found
        if sum(c.isdigit() for c in q) >= 7:
            try:
                return store.find(phone=q)
            except ItemsealError:
                return None
        return None

    @page("members.write")
    def on_post(self, req, resp, visit: Visit) -> None:
        """Add a member by hand (the seeds' 手工添加会员): phone, birthday, attributes."""
        form = visit.form
        store = MemberStore(self.ctx.client, visit.tenant, clock=self.ctx.clock,
                            master=self.ctx.key_store.master)
        declared = store.settings().attributes
        attributes = {name: form.get(f"a.{name}", "").strip() for name in declared}
        attributes = {k: v for k, v in attributes.items() if v}
        try:
            member, created = store.join(form.get("phone", ""),
                                         birthday=form.get("birthday", "").strip() or None,
                                         attributes=attributes, source="office")
        except ItemsealError as exc:
            name = getattr(exc, "field", None) or "phone"
            field = "phone" if name in ("phone", "member") else name
            self._show(req, resp, visit, errors={field: str(exc)}, typed=form, status=422)
            return
        if created:
            self.ctx.audit(visit, "member.add", f"member/{member.card}", None,
                           member_json(member))
        self.ctx.redirect(resp, f"{OFFICE}/{visit.tenant}/members/{member.card}")


def purchase_rows(found: list[dict]) -> list[dict]:
    """The history's purchases (newest first), each with the lines its refunds took back.

    Refunds are newer than their purchase, so a refund shown names lines of a purchase
    shown further down (or of one older than the page: then only the refund row shows it).
    """
    refunded: dict[str, list[str]] = {}
    for document in found:
        if document["kind"] == "refund":
            refunded.setdefault(document["refund_of"], []).extend(
                f"{ln['sku']}×{ln['qty']}" for ln in document["lines"])
    return [{**d, "refunded": refunded.get(d["purchase_id"], []) if d["kind"] == "purchase"
             else []} for d in found]


PURCHASES_SHOWN = 50


class MemberPage(OfficePage):
    """``GET .../members/{card}``: balances, profile, ledger, checks, and the change forms."""

    @page("members.read")
    def on_get(self, req, resp, visit: Visit, card: str) -> None:
        self.show(resp, visit, card)

    def show(self, resp, visit: Visit, card: str, *, errors: dict | None = None,
             typed: dict | None = None, status: int = 200, note: str = "") -> None:
        store = MemberStore(self.ctx.client, visit.tenant, clock=self.ctx.clock,
                            master=self.ctx.key_store.master)
        member = store.find(card=card)
        record = {k.decode(): v.decode()
                  for k, v in self.ctx.client.hgetall(store.keys.member(member.card)).items()}
        history = list(reversed(Ledger(self.ctx.client, visit.tenant).history(member.card, 50)))
        checks = {
            "last": iso(int(record["last_check_at"])) if record.get("last_check_at") else "",
            "region": record.get("last_region", ""),
            "skus": sorted((k[4:], iso(int(v))) for k, v in record.items()
                           if k.startswith("sku:")),
        }
        settings = store.settings()
        purchases = []
        if visit.may("purchases.read"):  # as GET .../members/{card}/purchases reads them
            purchases = purchase_rows(PurchaseDesk(self.ctx.client, visit.tenant,
                                                   clock=self.ctx.clock).history(
                member.card, PURCHASES_SHOWN))
        messages = []
        if visit.may("feedback.read"):  # the member's own messages, however the gateway spelt
            tail = _digits(member.phone)[-11:]  # the sender (the inbox keeps it as received)
            messages = [f for f in FeedbackInbox(self.ctx.client, visit.tenant).list(500)
                        if _digits(f.phone)[-11:] == tail]
        self.ctx.render(
            resp, "member.html", messages=messages, visit=visit, status=status, m=member,
            purchases=purchases, yuan=yuan, entry_details=entry_details,
            card_text=format_card(member.card), history=history, checks=checks,
            tiers=[t.name for t in settings.ladder.tiers], attributes=list(settings.attributes),
            transitions=[a for a, (before, _) in TRANSITIONS.items() if member.status in before],
            errors=errors or {}, typed=typed or {}, note=note, iso=iso,
            adjust_key=f"office:{secrets.token_hex(12)}",
        )


class MemberChange(OfficePage):
    """``POST .../members/{card}/{change}``: adjust, status, rebind, pin or profile.

    Audited as the admin API audits them (``member.adjust``, a refused
    adjustment as ``member.adjust.refused``, ``member.freeze`` ...).
    """

    def __init__(self, ctx, page_: MemberPage) -> None:
        super().__init__(ctx)
        self.page = page_

    @page("members.write")
    def on_post(self, req, resp, visit: Visit, card: str, change: str) -> None:
        if change not in CHANGES:
            raise InvalidField("change", f"the change is one of {', '.join(CHANGES)}")
        store = MemberStore(self.ctx.client, visit.tenant, clock=self.ctx.clock,
                            master=self.ctx.key_store.master)
        before = store.find(card=card)
        form = visit.form
        target = f"member/{before.card}"
        try:
            note = getattr(self, f"_{change}")(visit, store, before, form, target)
        except ItemsealError as exc:
            self.page.show(resp, visit, before.card, errors={change: str(exc)},
                           typed={change: form}, status=exc.status if exc.status < 500 else 422)
            return
        self.page.show(resp, visit, before.card, note=note)

    def _adjust(self, visit, store, before, form, target) -> str:
        raw = form.get("points", "").strip()
        reason = form.get("reason", "").strip()
        try:
            points = int(raw)
        except ValueError:
            raise InvalidField("points", "points are a whole number, e.g. 50 or -20") from None
        if not reason:
            raise InvalidField("reason", "an adjustment needs a reason")
        ledger = Ledger(self.ctx.client, visit.tenant, clock=self.ctx.clock)
        settings = store.settings()
        try:
            posted = ledger.adjust(before.card, points, reason=reason,
                                   idem=(form.get("key") or "")[:128] or None,
                                   expiry=(settings.expiry_months, settings.timezone))
        except ItemsealError as exc:
            self.ctx.audit(visit, "member.adjust.refused", target, member_json(before),
                           {"points": points, "reason": reason,
                            "refused": {"code": exc.code, "message": str(exc)}})
            raise
        if not posted.duplicate:
            after = {**member_json(before), "balance": posted.entry.balance,
                     "entry": entry_json(posted)}
            self.ctx.audit(visit, "member.adjust", target, member_json(before), after)
        return f"{points:+d} points: {reason}"

    def _status(self, visit, store, before, form, target) -> str:
        action = form.get("action", "")
        if action not in TRANSITIONS:
            raise InvalidField("action", f"the action is one of {', '.join(TRANSITIONS)}")
        after, note = store.change_status(before.card, action, form.get("reason", "").strip())
        self.ctx.audit(visit, f"member.{action}", target, member_json(before), member_json(after))
        return note

    def _rebind(self, visit, store, before, form, target) -> str:
        after = store.rebind(before.card, form.get("phone", ""))
        self.ctx.audit(visit, "member.rebind", target, member_json(before), member_json(after))
        return f"phone is now {after.phone}"

    def _pin(self, visit, store, before, form, target) -> str:
        tier = form.get("tier", "").strip() or None
        after = store.pin_tier(before.card, tier, form.get("reason", "").strip())
        self.ctx.audit(visit, "member.pin", target, member_json(before), member_json(after))
        return f"tier floor: {tier or '-'}; tier {after.tier}"

    def _profile(self, visit, store, before, form, target) -> str:
        declared = store.settings().attributes
        attributes = {name: form.get(f"a.{name}", "").strip() for name in declared
                      if f"a.{name}" in form}
        birthday = form.get("birthday", "").strip() or None
        after = store.update_profile(before.card, birthday=birthday, attributes=attributes)
        self.ctx.audit(visit, "member.update", target, member_json(before), member_json(after))
        return "profile saved"


EXPORT_SECONDS = 3600
EXPORT_COLUMNS = ("card", "phone", "status", "tier", "balance", "earned", "birthday",
                  "created_at", "source", "attributes")
EXPORT_ID = re.compile(r"x[0-9a-f]{16}")


class UnknownExport(NotFound):
    code = "unknown_export"


def _export_row(m: Member) -> tuple:
    return (m.card, m.phone, m.status, m.tier, m.balance, m.earned, m.birthday or "",
            iso(m.created_at), m.source, json.dumps(m.attributes, ensure_ascii=False))


class Exports(OfficePage):
    """``POST .../exports``: export every member as CSV in the background (a big member
    base takes a while); ``GET .../exports/{job}``: its progress bar, refreshing itself,
    then the download (``?download=1``). Progress and the file live in Redis for an hour,
    so any worker can show them."""

    @page("members.read")
    def on_post(self, req, resp, visit: Visit) -> None:
        job_id = "x" + secrets.token_hex(8)
        key = TenantKeys(visit.tenant).office_export(job_id)
        total = int(self.ctx.client.get(PointsKeys(visit.tenant).card_counter) or 0)
        self.ctx.client.hset(key, mapping={"status": "running", "done": "0",
                                           "total": str(total), "by": visit.actor})
        self.ctx.client.expire(key, EXPORT_SECONDS)
        self.ctx.audit(visit, "members.export", f"export/{job_id}", None, {"total": total})
        job = threading.Thread(target=self._run, args=(visit.tenant, key), daemon=True,
                               name=f"office-export-{job_id}")
        self.ctx.jobs[job_id] = job
        job.start()
        self.ctx.redirect(resp, f"{OFFICE}/{visit.tenant}/exports/{job_id}")

    def _run(self, tenant: str, key: str) -> None:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(EXPORT_COLUMNS)
        done = 0
        for card, record in records(self.ctx.client, tenant, master=self.ctx.key_store.master):
            if record.get("status"):
                writer.writerow(_export_row(Member.from_record(tenant, card, record)))
            done += 1
            if done % 500 == 0:
                self.ctx.client.hset(key, "done", str(done))
        self.ctx.client.hset(key, mapping={"done": str(done), "total": str(done),
                                           "status": "done", "csv": out.getvalue()})
        self.ctx.client.expire(key, EXPORT_SECONDS)


class ExportOne(OfficePage):
    @page("members.read")
    def on_get(self, req, resp, visit: Visit, job_id: str) -> None:
        if not EXPORT_ID.fullmatch(job_id):
            raise UnknownExport(f"no export {job_id!r}")
        key = TenantKeys(visit.tenant).office_export(job_id)
        if req.get_param("download") == "1":
            raw = self.ctx.client.hget(key, "csv")
            if raw is None:
                raise UnknownExport(f"export {job_id!r} is not ready or has expired")
            resp.content_type = "text/csv; charset=utf-8"
            resp.downloadable_as = f"{visit.tenant}-members-{job_id}.csv"
            resp.set_header("Cache-Control", "no-store")
            resp.data = raw
            return
        names = ("status", "done", "total")
        values = self.ctx.client.hmget(key, *names)
        found = {n: v.decode() for n, v in zip(names, values, strict=True) if v is not None}
        if not found:
            raise UnknownExport(f"no export {job_id!r}: exports are kept for an hour")
        self.ctx.render(resp, "export.html", visit=visit, job_id=job_id,
                        state=found["status"], done=int(found["done"]),
                        total=int(found["total"]), refresh=found["status"] != "done")


def routes(ctx) -> list[tuple[str, object]]:
    one = MemberPage(ctx)
    return [
        ("/{tenant}/members", MemberList(ctx)),
        ("/{tenant}/members/{card}", one),
        ("/{tenant}/members/{card}/{change}", MemberChange(ctx, one)),
        ("/{tenant}/exports", Exports(ctx)),
        ("/{tenant}/exports/{job_id}", ExportOne(ctx)),
    ]

