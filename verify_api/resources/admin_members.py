"""Admin routes for members: find, status, phone, adjustments, redemptions (support)."""

from __future__ import annotations

from dataclasses import asdict

from codegen.exc import ItemsealError
from codegen.times import iso
from points_bridge.ledger import Ledger, Posted
from points_bridge.members import TRANSITIONS, Member, MemberStore
from verify_api.exc import InvalidField
from verify_api.resources.admin import AdminContext, AdminResource, fields
from verify_api.resources.admin_bodies import query_int


def member_json(m: Member) -> dict:
    return {
        "card": m.card, "phone": m.phone, "status": m.status, "balance": m.balance,
        "earned": m.earned, "tier": m.tier, "pinned_tier": m.pinned_tier,
        "birthday": m.birthday, "created_at": iso(m.created_at), "source": m.source,
        "attributes": m.attributes, "reason": m.reason,
    }


def entry_json(posted: Posted) -> dict:
    e = posted.entry
    return {"entry_id": e.entry_id, "kind": e.kind, "delta": e.delta, "balance": e.balance,
            "at": iso(e.at), "duplicate": posted.duplicate}


class _MemberBase(AdminResource):
    def store(self, tenant: str) -> MemberStore:
        return MemberStore(self.ctx.client, tenant, clock=self.ctx.clock,
                           master=self.ctx.key_store.master)

    def member(self, tenant: str, card: str) -> Member:
        return self.store(tenant).find(card=card)


class Members(_MemberBase):
    """``GET .../members?phone=...`` or ``?card=...``: find one member."""

    actions = {"GET": "members.read"}

    def on_get(self, req, resp, tenant: str) -> None:
        phone, card = req.get_param("phone"), req.get_param("card")
        if (phone is None) == (card is None):
            raise InvalidField("phone", "give exactly one of 'phone' or 'card'")
        resp.media = member_json(self.store(tenant).find(phone=phone, card=card))


class MemberOne(_MemberBase):
    actions = {"GET": "members.read"}

    def on_get(self, req, resp, tenant: str, card: str) -> None:
        m = self.member(tenant, card)
        count = query_int(req.params, "history", 20, 0, 1000)
        history = Ledger(self.ctx.client, tenant).history(m.card, count) if count else []
        resp.media = {**member_json(m), "history": [asdict(e) for e in history]}


class MemberStatus(_MemberBase):
    """``POST .../members/{card}/status`` ``{"action": "freeze|unfreeze|cancel|restore"}``."""

    actions = {"POST": "members.write"}

    def on_post(self, req, resp, tenant: str, card: str) -> None:
        body = fields(req)
        action = body.str("action", required=True, limit=16)
        reason = body.str("reason") or ""
        body.done()
        if action not in TRANSITIONS:
            raise InvalidField("action", f"'action' is one of {', '.join(TRANSITIONS)}")
        before = self.member(tenant, card)
        after, note = self.store(tenant).change_status(before.card, action, reason)
        self.ctx.audit(req, tenant, f"member.{action}", f"member/{before.card}",
                       member_json(before), member_json(after))
        resp.media = {**member_json(after), "note": note}


class MemberRebind(_MemberBase):
    actions = {"POST": "members.write"}

    def on_post(self, req, resp, tenant: str, card: str) -> None:
        body = fields(req)
        phone = body.str("phone", required=True, limit=32)
        body.done()
        before = self.member(tenant, card)
        after = self.store(tenant).rebind(before.card, phone)
        self.ctx.audit(req, tenant, "member.rebind", f"member/{before.card}",
                       member_json(before), member_json(after))
        resp.media = member_json(after)


class MemberPoints(_MemberBase):
    """``.../adjust`` (``points`` may be negative, ``reason`` required) or ``.../redeem``.

    Every adjustment is audited: an accepted one as ``member.adjust`` as soon as
    it is posted, a refused one (out of bounds, over the balance, inactive) as
    ``member.adjust.refused`` with the request and the reason.
    """

    def __init__(self, ctx: AdminContext, kind: str) -> None:
        super().__init__(ctx)
        self.kind = kind
        self.actions = {"POST": "members.write"}

    def on_post(self, req, resp, tenant: str, card: str) -> None:
        body = fields(req)
        points = body.int("points", required=True, minimum=1 if self.kind == "redeem" else None)
        reason = body.str("reason", required=self.kind == "adjust") or ""
        key = body.str("key", limit=128)
        body.done()
        before = self.member(tenant, card)
        ledger = Ledger(self.ctx.client, tenant, clock=self.ctx.clock)
        target = f"member/{before.card}"
        try:
            if self.kind == "redeem":
                posted = ledger.redeem(before.card, points, idem=key, reason=reason)
            else:
                settings = self.store(tenant).settings()
                posted = ledger.adjust(before.card, points, reason=reason, idem=key,
                                       expiry=(settings.expiry_months, settings.timezone))
        except ItemsealError as exc:
            if self.kind == "adjust":
                self.ctx.audit(req, tenant, "member.adjust.refused", target, member_json(before),
                               {"points": points, "reason": reason, "key": key,
                                "refused": {"code": exc.code, "message": str(exc)}})
            raise
        entry = entry_json(posted)
        if not posted.duplicate:
            after = {**member_json(before), "balance": posted.entry.balance, "entry": entry}
            self.ctx.audit(req, tenant, f"member.{self.kind}", target, member_json(before), after)
        resp.media = {"member": member_json(self.member(tenant, card)), "entry": entry}


def routes(ctx: AdminContext) -> list[tuple[str, AdminResource]]:
    return [
        ("/members", Members(ctx)),
        ("/members/{card}", MemberOne(ctx)),
        ("/members/{card}/status", MemberStatus(ctx)),
        ("/members/{card}/rebind", MemberRebind(ctx)),
        ("/members/{card}/adjust", MemberPoints(ctx, "adjust")),
        ("/members/{card}/redeem", MemberPoints(ctx, "redeem")),
    ]
