"""Automatic care: birthday greetings, "we miss you" reminders, tier congratulations,
points-expiry warnings, configured per tenant and run by ``itemseal care run``.

``due`` is pure: from one member's record, its oldest expiry lot, the
tenant's care settings and the local date it returns the care messages the
member is owed, each with a *period* (the birthday's year, the inactivity
spell's last check, the tier reached, the lot's expiry). The run enqueues
each with a dedup key ``care:<kind>:<period>:<card>`` that the enqueue
script claims with ``SET NX`` in the same step that queues the message, so
two schedulers running at once on two hosts queue each message once, and a
run repeated tomorrow does not greet anyone twice for the same period.

Settings (``PointsKeys.care_settings``, JSON), each kind with ``on`` and a
``text`` (``{card}``, ``{balance}``, ``{tier}``, and for birthdays
``{multiplier}``, e.g. "x2", from the tenant's birthday multiplier):
``birthday``; ``reminder`` with ``days``; ``tier`` (only tiers above the
first); ``expiry`` with ``days`` before the oldest lot expires.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime

from points_bridge.exc import BadInput
from points_bridge.members import ACTIVE, LOTS, Member, member_lots
from points_bridge.outreach.segments import DAY, records
from points_bridge.outreach.sms_campaigns import personalise
from points_bridge.scoped import TenantScoped
from points_bridge.settings import SettingsStore
from points_bridge.sms.outbound import CARE, Outbox

BIRTHDAY, REMINDER, TIER, EXPIRY = "birthday", "reminder", "tier", "expiry"
KINDS = (BIRTHDAY, REMINDER, TIER, EXPIRY)
DEFAULTS: dict[str, dict] = {
    BIRTHDAY: {"on": False, "text": "Happy birthday! Points count {multiplier} today."},
    REMINDER: {"on": False, "days": 90, "text": "We miss you: check a code to earn points."},
    TIER: {"on": False, "text": "Congratulations, you are now {tier}!"},
    EXPIRY: {"on": False, "days": 30, "text": "Some of your {balance} points expire soon."},
}


def check_config(data: Mapping[str, object]) -> dict[str, dict]:
    """Validate care settings (partial: kinds not given keep their defaults)."""
    out = {k: dict(v) for k, v in DEFAULTS.items()}
    for kind, value in data.items():
        if kind not in KINDS or not isinstance(value, Mapping):
            raise BadInput("care", kind, f"give objects for {', '.join(KINDS)}")
        for name, item in value.items():
            if name not in DEFAULTS[kind]:
                raise BadInput(f"care.{kind}", name, f"use {', '.join(DEFAULTS[kind])}")
            want = type(DEFAULTS[kind][name])
            if not isinstance(item, want) or (want is int and (isinstance(item, bool)
                                                               or item < 1)):
                raise BadInput(f"care.{kind}.{name}", item, f"give a {want.__name__}")
            if name == "text" and not 1 <= len(item.strip()) <= 300:
                raise BadInput(f"care.{kind}.text", item, "1-300 characters")
            out[kind][name] = item
    return out


@dataclass(frozen=True)
class Due:
    kind: str
    period: str
    text: str


def due(
    member: Member,
    record: Mapping[str, str],
    config: Mapping[str, Mapping],
    *,
    today: date,
    now: int,
    first_tier: str,
    oldest_lot: int | None,
    multiplier_bp: int,
) -> list[Due]:
    """The care messages ``member`` is owed today, with the period each is for."""
    if member.status != ACTIVE:
        return []
    out = []
    c = config
    if c[BIRTHDAY]["on"] and member.is_birthday(today):
        text = c[BIRTHDAY]["text"].replace("{multiplier}", f"x{multiplier_bp / 10000:g}")
        out.append(Due(BIRTHDAY, str(today.year), text))
    if c[REMINDER]["on"]:
        last = int(record.get("last_check_at") or 0) or member.created_at
        if now - last >= c[REMINDER]["days"] * DAY:
            out.append(Due(REMINDER, str(last), c[REMINDER]["text"]))
    if c[TIER]["on"] and member.tier and member.tier != first_tier:
        out.append(Due(TIER, member.tier, c[TIER]["text"]))
    if c[EXPIRY]["on"] and oldest_lot is not None and member.balance > 0:
        if now < oldest_lot <= now + c[EXPIRY]["days"] * DAY:
            out.append(Due(EXPIRY, str(oldest_lot), c[EXPIRY]["text"]))
    return [Due(d.kind, d.period, personalise(d.text, member)) for d in out]


class Care(TenantScoped):
    """One tenant's care settings and runs."""

    def config(self) -> dict[str, dict]:
        raw = self._redis.get(self.keys.care_settings)
        return check_config(json.loads(raw) if raw else {})

    def configure(self, changes: Mapping[str, Mapping]) -> dict[str, dict]:
        current = self.config()
        merged = {k: {**current[k], **dict(changes.get(k, {}))} for k in KINDS}
        checked = check_config(merged)
        self._redis.set(self.keys.care_settings, json.dumps(checked))
        return checked

    def run(self) -> dict[str, int]:
        """Queue every care message due now; return how many were queued per kind."""
        config = self.config()
        queued = {kind: 0 for kind in KINDS}
        if not any(config[k]["on"] for k in KINDS):
            return queued
        settings = SettingsStore(self._redis).get(self.tenant)
        now = int(self._clock())
        today = datetime.fromtimestamp(now, settings.timezone).date()
        outbox = Outbox(self._redis, self.tenant, clock=self._clock)
        first = settings.ladder.tiers[0].name
        batch: list[tuple[str, dict[str, str]]] = []

        def flush() -> None:
            pipe = self._redis.pipeline(transaction=False)
            for card, _ in batch:
                pipe.lindex(self.keys.lots(card), 0)  # where a version before kept them
            for (card, record), listed in zip(batch, pipe.execute(), strict=True):
                member = Member.from_record(self.tenant, card, record)
                lots = member_lots(record.get(LOTS), [listed] if listed else None)
                oldest = lots[0][0] if lots else None
                for d in due(member, record, config, today=today, now=now, first_tier=first,
                             oldest_lot=oldest,
                             multiplier_bp=settings.policy.birthday_multiplier_bp):
                    once = f"care:{d.kind}:{d.period}:{card}"
                    if outbox.enqueue(once, member.phone, d.text, CARE, once=once,
                                      scope=f"care:{d.kind}") == "queued":
                        queued[d.kind] += 1
            batch.clear()

        for card, record in records(self._redis, self.tenant, master=self._master):
            batch.append((card, record))
            if len(batch) >= 500:
                flush()
        if batch:
            flush()
        return queued
