"""CLI commands for members: show, join, profile, status, rebind, points (``itemseal member``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime

import click

from codegen.amounts import yuan
from codegen.commands.options import Config, iso_time, pass_config, tenant_option
from codegen.exc import ItemsealError
from codegen.store.audit import AuditLog
from points_bridge.cards import format_card
from points_bridge.commands.purchases import echo_purchases
from points_bridge.ledger import Entry, Ledger
from points_bridge.members import Member, MemberStore, earned_for_tier
from points_bridge.purchases import PurchaseDesk
from points_bridge.tiers import tier_for

reason_option = click.option("--reason", default="", help="Why (kept in the ledger).")
key_option = click.option(
    "--key", "idem", help="Idempotency key: a repeat with the same key does nothing more."
)


def who(func: Callable) -> Callable:
    """Add --phone / --card: how a command finds its member."""
    func = click.option("--card", help="Card number (12 digits, spaces allowed).")(func)
    return click.option("--phone", help="Phone as typed; local numbers use the tenant region.")(
        func
    )


def _find(config: Config, tenant: str, phone: str | None, card: str | None) -> Member:
    if (phone is None) == (card is None):
        raise click.UsageError("give exactly one of --phone or --card")
    return MemberStore(config.redis, tenant).find(phone=phone, card=card)


def _entry_line(e: Entry) -> str:
    extra = " ".join(f"{k}={v}" for k, v in sorted(e.fields.items())
                     if v and v not in ("{}", "[]") and k != "rules")
    return f"{e.entry_id}\t{iso_time(e.at)}\t{e.kind}\t{e.delta:+d}\t{e.balance}\t{extra}"


@click.group()
def member() -> None:
    """Find members by phone or card; change status, profile, phone and points.

    A member is created by the first claim with a phone, by the SMS join
    keyword, by the API, by `member join` or by `import members`.
    """


@member.command("show")
@tenant_option
@who
@click.option("--history", default=10, show_default=True, help="Ledger entries to list.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--purchases", "purchases", is_flag=True,
              help="Also list the last 20 purchases, refunds and stored-value movements.")
@pass_config
def member_show(
    config: Config, tenant: str, phone: str | None, card: str | None, history: int,
    as_json: bool, purchases: bool,
) -> None:
    """Show a member: card, phone, status, balance, tier and recent ledger entries.

    \b
    Example:
      itemseal member show --tenant ACME --phone 13812345678
      itemseal member show --tenant ACME --card "2300 7457 8089" --history 50
    """
    m = _find(config, tenant, phone, card)
    store = MemberStore(config.redis, tenant)
    settings = store.settings()
    now = int(datetime.now(UTC).timestamp())
    pin = m.pinned_tier if m.pinned_tier in settings.ladder.names else None
    status = tier_for(earned_for_tier(m, settings, now), settings.ladder, pin)
    entries = Ledger(config.redis, tenant).history(m.card, history)
    bought = PurchaseDesk(config.redis, tenant).history(m.card, 20) if purchases else []
    if as_json:
        record = {k: v for k, v in asdict(m).items() if k not in ("days", "version")}
        record.update(created_at=iso_time(m.created_at), next_tier=status.next_name,
                      points_to_next=status.points_to_next,
                      history=[{**asdict(e), "at": iso_time(e.at)} for e in entries])
        if purchases:
            record["purchases"] = [{**d, "at": iso_time(d["at"])} for d in bought]
        click.echo(json.dumps(record, ensure_ascii=False))
        return
    to_next = "-" if status.next_name is None else f"{status.points_to_next} to {status.next_name}"
    pinned = f" (pinned floor {m.pinned_tier})" if m.pinned_tier else ""
    for name, value in [
        ("card", format_card(m.card)), ("phone", m.phone), ("status", m.status),
        ("balance", m.balance), ("earned", m.earned),
        ("stored value", yuan(m.stored)),
        ("tier", f"{m.tier}{pinned}"),
        ("next tier", to_next), ("birthday", m.birthday or "-"),
        ("created", iso_time(m.created_at)),
        *sorted(m.attributes.items()),
    ]:
        click.echo(f"{name}\t{value}")
    for entry in entries:
        click.echo(_entry_line(entry))
    if purchases:
        click.echo("purchases")
        echo_purchases(bought)


def _attributes(pairs: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"{pair!r}: write NAME=VALUE", param_hint="--attr")
        out[name.strip()] = value
    return out


attr_option = click.option(
    "--attr", "attrs", multiple=True, help="NAME=VALUE of a declared attribute (repeatable)."
)


@member.command("join")
@tenant_option
@click.option("--phone", required=True, help="The member's phone.")
@click.option("--birthday", help="YYYY-MM-DD or MM-DD.")
@attr_option
@pass_config
def member_join(
    config: Config, tenant: str, phone: str, birthday: str | None, attrs: tuple[str, ...]
) -> None:
    """Register a member by phone (an existing member keeps its card and points).

    \b
    Example:
      itemseal member join --tenant ACME --phone 13812345678 --birthday 1990-05-01 \\
        --attr skin_type=dry
    """
    store = MemberStore(config.redis, tenant, master=config.master_key())
    m, created = store.join(phone, birthday=birthday, attributes=_attributes(attrs), source="cli")
    click.echo(f"{'created' if created else 'exists'}\t{m.card}\t{m.phone}")


@member.command("set")
@tenant_option
@who
@click.option("--birthday", help="YYYY-MM-DD or MM-DD.")
@attr_option
@pass_config
def member_set(config: Config, tenant: str, phone, card, birthday, attrs) -> None:
    """Set a member's birthday and declared attributes (NAME= removes one).

    \b
    Example:
      itemseal member set --tenant ACME --phone 13812345678 --attr skin_type=oily
    """
    m = _find(config, tenant, phone, card)
    MemberStore(config.redis, tenant).update_profile(
        m.card, birthday=birthday, attributes=_attributes(attrs)
    )
    click.echo(f"member {m.card} updated")


def _status_command(action: str, summary: str, example: str) -> click.Command:
    @tenant_option
    @who
    @reason_option
    @pass_config
    def command(config: Config, tenant: str, phone, card, reason: str) -> None:
        m = _find(config, tenant, phone, card)
        _, note = MemberStore(config.redis, tenant).change_status(m.card, action, reason)
        click.echo(note)

    command.__doc__ = f"{summary}\n\n\b\nExample:\n  {example}\n"
    return member.command(action)(command)


_status_command(
    "freeze", "Freeze a member: it earns and spends nothing until unfrozen.",
    'itemseal member freeze --tenant ACME --phone 13812345678 --reason "card lost"',
)
_status_command(
    "unfreeze", "Unfreeze a frozen member: it earns and spends again.",
    "itemseal member unfreeze --tenant ACME --phone 13812345678",
)
_status_command(
    "cancel", "Cancel a membership: history is kept, nothing more is earned or spent.",
    'itemseal member cancel --tenant ACME --card 230074578089 --reason "asked by member"',
)
_status_command(
    "restore",
    "Restore a cancelled member; says whether the balance was kept or forfeited.",
    "itemseal member restore --tenant ACME --card 230074578089",
)


@member.command("rebind")
@tenant_option
@who
@click.option("--new-phone", required=True, help="The phone to bind to the card from now on.")
@pass_config
def member_rebind(config: Config, tenant: str, phone, card, new_phone: str) -> None:
    """Bind a new phone to a member's card; points, tier and history stay.

    \b
    Example:
      itemseal member rebind --tenant ACME --card 230074578089 --new-phone 13912345678
    """
    m = _find(config, tenant, phone, card)
    moved = MemberStore(config.redis, tenant).rebind(m.card, new_phone)
    click.echo(f"card {moved.card}: phone {m.phone} -> {moved.phone}")


@member.command("adjust")
@tenant_option
@who
@click.option("--points", type=int, required=True,
              help="Points to add (or, negative, remove): at most 1000000000 either way.")
@click.option("--reason", required=True, help="Why: kept in the ledger and sent to the CRM.")
@key_option
@pass_config
def member_adjust(config: Config, tenant: str, phone, card, points: int, reason: str, idem):
    """Correct a member's balance by a number of points, with a reason.

    Accepted and refused adjustments are both written to the audit log.

    \b
    Example:
      itemseal member adjust --tenant ACME --phone 13812345678 --points 200 \\
        --reason "complaint #4411" --key complaint-4411
    """
    m = _find(config, tenant, phone, card)
    settings = MemberStore(config.redis, tenant).settings()
    audit = AuditLog(config.redis, tenant)
    before = {"balance": m.balance, "status": m.status}
    try:
        posted = Ledger(config.redis, tenant).adjust(
            m.card, points, reason=reason, idem=idem,
            expiry=(settings.expiry_months, settings.timezone),
        )
    except ItemsealError as exc:
        audit.record("cli", "member.adjust.refused", f"member/{m.card}", before,
                     {"points": points, "reason": reason, "key": idem,
                      "refused": {"code": exc.code, "message": str(exc)}})
        raise
    if not posted.duplicate:
        audit.record("cli", "member.adjust", f"member/{m.card}", before,
                     {"balance": posted.entry.balance, "entry_id": posted.entry.entry_id,
                      "delta": posted.entry.delta, "reason": reason})
    _posted(posted)


@member.command("redeem")
@tenant_option
@who
@click.option("--points", type=click.IntRange(min=1), required=True, help="Points to spend.")
@reason_option
@key_option
@pass_config
def member_redeem(config: Config, tenant: str, phone, card, points: int, reason: str, idem):
    """Spend a member's points; refused over the balance or when not active.

    \b
    Example:
      itemseal member redeem --tenant ACME --phone 13812345678 --points 500 \\
        --reason "gift: travel kit" --key order-88123
    """
    m = _find(config, tenant, phone, card)
    _posted(Ledger(config.redis, tenant).redeem(m.card, points, idem=idem, reason=reason))


def _posted(posted) -> None:
    e = posted.entry
    repeat = " (repeat: nothing changed)" if posted.duplicate else ""
    click.echo(f"{e.kind} {e.delta:+d}: balance {e.balance}{repeat}")


@member.command("pin-tier")
@tenant_option
@who
@click.argument("tier", required=False)
@click.option("--clear", is_flag=True, help="Lift the pin: the points alone decide.")
@reason_option
@pass_config
def member_pin_tier(config: Config, tenant, phone, card, tier, clear: bool, reason: str):
    """Pin a member's tier as a floor (the member still climbs above it).

    \b
    Example:
      itemseal member pin-tier --tenant ACME --phone 13812345678 gold --reason VIP
      itemseal member pin-tier --tenant ACME --phone 13812345678 --clear
    """
    if bool(tier) == clear:
        raise click.UsageError("give a TIER or --clear")
    m = _find(config, tenant, phone, card)
    pinned = MemberStore(config.redis, tenant).pin_tier(m.card, None if clear else tier, reason)
    click.echo(f"member {m.card}: tier {pinned.tier} (pin: {pinned.pinned_tier or 'none'})")


COMMANDS = (member,)
