"""CLI commands for the rewards catalogue, redemptions and coupons (``itemseal reward``,
``itemseal coupon``). Each parses, calls ``points_bridge/rewards.py`` and prints."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from codegen.commands.options import (
    Config,
    echo_json,
    echo_rows,
    iso_time,
    json_option,
    pass_config,
    tenant_option,
)
from codegen.coupons import printed
from points_bridge.commands.members import _find, key_option, who
from points_bridge.rewards import KINDS, Redemption, Reward, RewardStore


def _store(config: Config, tenant: str) -> RewardStore:
    return RewardStore(config.redis, tenant, key_store=config.key_store)


def _when(text: str | None) -> int | None:
    """``2026-06-01`` or ``2026-06-01T08:00:00+08:00`` -> unix seconds (UTC when no offset)."""
    if text is None or text == "":
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a date or time, e.g. 2026-06-01") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def _tiers(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    return tuple(t.strip() for t in text.split(",") if t.strip())


def _row(reward: Reward, stock: int) -> tuple:
    return (reward.item, reward.kind, reward.name, reward.points, stock,
            ",".join(reward.tiers) or "any", iso_time(reward.starts_at),
            iso_time(reward.ends_at), reward.status, reward.grants or "-")


HEADER = ("item", "kind", "name", "points", "stock", "tiers", "starts", "ends", "status",
          "grants")


def _show(reward: Reward, stock: int, as_json: bool) -> None:
    if as_json:
        echo_json({**reward.to_json(), "stock": stock,
                   "starts_at": iso_time(reward.starts_at), "ends_at": iso_time(reward.ends_at)})
    else:
        echo_rows(HEADER, [_row(reward, stock)])


@click.group()
def reward() -> None:
    """The rewards catalogue: gifts, coupons and tier upgrades members redeem with points.

    A member redeems by SMS (DH#<item>), on their own page (/m/<tenant>), through
    the admin API or with `reward redeem`; points and stock are taken exactly
    once per idempotency key, never below zero.
    """


@reward.command("add")
@tenant_option
@click.argument("item")
@click.option("--name", required=True, help="What members see (Chinese or the tenant's language).")
@click.option("--name-en", default="", help="The English name on the member page.")
@click.option("--kind", type=click.Choice(KINDS), default="gift", show_default=True,
              help="gift, coupon (issues a signed code for a till) or tier (an upgrade).")
@click.option("--points", type=int, required=True, help="Price in points.")
@click.option("--stock", type=int, required=True, help="Items available.")
@click.option("--tiers", help="Only members of these tiers, comma-separated (default: all).")
@click.option("--grants", help="The tier a tier upgrade gives (a floor, like a manual pin).")
@click.option("--starts", help="Redeemable from (date or ISO time; default: now).")
@click.option("--ends", help="Redeemable until, exclusive (default: no end).")
@click.option("--coupon-days", type=int, default=30, show_default=True,
              help="Days a coupon stays valid after it is issued.")
@json_option
@pass_config
def reward_add(config: Config, tenant: str, item: str, name: str, name_en: str, kind: str,
               points: int, stock: int, tiers, grants, starts, ends, coupon_days: int,
               as_json: bool) -> None:
    """Add ITEM (its id: letters, digits, - or _; members text DH#ITEM).

    \b
    Example:
      itemseal reward add --tenant ACME mug --name "马克杯" --points 500 --stock 100
      itemseal reward add --tenant ACME c20 --kind coupon --name "20元券" --points 200 \\
          --stock 1000 --coupon-days 60
      itemseal reward add --tenant ACME gold --kind tier --grants gold --name "升级金卡" \\
          --points 3000 --stock 50 --tiers silver
    """
    new = Reward(item.strip().lower(), kind, name, points, _tiers(tiers) or (), _when(starts),
                 _when(ends), grants=grants or None, coupon_days=coupon_days, name_en=name_en)
    _show(*_store(config, tenant).add(new, stock), as_json)


@reward.command("list")
@tenant_option
@json_option
@pass_config
def reward_list(config: Config, tenant: str, as_json: bool) -> None:
    """List the catalogue with the stock left, cheapest first."""
    items = _store(config, tenant).list()
    if as_json:
        echo_json([{**r.to_json(), "stock": s} for r, s in items])
    else:
        echo_rows(HEADER, [_row(r, s) for r, s in items])


@reward.command("set")
@tenant_option
@click.argument("item")
@click.option("--name")
@click.option("--name-en")
@click.option("--points", type=int)
@click.option("--stock", type=int, help="Set the items left.")
@click.option("--add-stock", type=int, help="Add (or, negative, remove) items, atomically.")
@click.option("--tiers", help="Only these tiers, comma-separated; '' for everyone.")
@click.option("--grants")
@click.option("--starts", help="Date or ISO time; '' for no start.")
@click.option("--ends", help="Date or ISO time; '' for no end.")
@click.option("--status", type=click.Choice(("active", "paused")))
@click.option("--coupon-days", type=int)
@json_option
@pass_config
def reward_set(config: Config, tenant: str, item: str, name, name_en, points, stock, add_stock,
               tiers, grants, starts, ends, status, coupon_days, as_json: bool) -> None:
    """Change ITEM: any option given; the others stay.

    \b
    Example:
      itemseal reward set --tenant ACME mug --add-stock 50
      itemseal reward set --tenant ACME mug --status paused
    """
    changes = {"name": name, "name_en": name_en, "points": points, "tiers": _tiers(tiers),
               "grants": grants, "status": status, "coupon_days": coupon_days,
               "starts_at": "" if starts == "" else _when(starts),
               "ends_at": "" if ends == "" else _when(ends)}
    _show(*_store(config, tenant).set(item, stock=stock, add_stock=add_stock, **changes),
          as_json)


def _redemption_rows(found: list[Redemption]) -> None:
    echo_rows(("redemption", "at", "item", "points", "state", "coupon"),
              [(r.redemption_id, iso_time(r.at), r.item, r.points, r.state,
                printed(r.coupon) if r.coupon else "-") for r in found])


@reward.command("redeem")
@tenant_option
@who
@click.argument("item")
@key_option
@json_option
@pass_config
def reward_redeem(config: Config, tenant: str, phone, card, item: str, idem, as_json) -> None:
    """Redeem ITEM for a member: takes the price and one item, once per --key.

    \b
    Example:
      itemseal reward redeem --tenant ACME --phone 13812345678 mug --key order-1
    """
    m = _find(config, tenant, phone, card)
    done = _store(config, tenant).redeem(m.card, item, key=idem, channel="cli")
    if as_json:
        echo_json(done.to_json())
    else:
        _redemption_rows([done])


@reward.command("cancel")
@tenant_option
@who
@click.argument("redemption")
@json_option
@pass_config
def reward_cancel(config: Config, tenant: str, phone, card, redemption: str, as_json) -> None:
    """Cancel a redemption: the points and the item come back (once); not after its coupon
    was used."""
    m = _find(config, tenant, phone, card)
    done = _store(config, tenant).cancel(m.card, redemption)
    if as_json:
        echo_json(done.to_json())
    else:
        _redemption_rows([done])


@reward.command("history")
@tenant_option
@who
@json_option
@pass_config
def reward_history(config: Config, tenant: str, phone, card, as_json) -> None:
    """A member's redemptions, newest first."""
    m = _find(config, tenant, phone, card)
    found = _store(config, tenant).redemptions(m.card)
    if as_json:
        echo_json([r.to_json() for r in found])
    else:
        _redemption_rows(found)


@reward.command("settle")
@tenant_option
@pass_config
def reward_settle(config: Config, tenant: str) -> None:
    """Finish or release redemptions a crash left half-way (older than 10 minutes)."""
    done, released = _store(config, tenant).settle_held()
    click.echo(f"{done} finished, {released} released")


@click.group()
def coupon() -> None:
    """Coupons issued by coupon rewards: check one, or use it at a till (once)."""


@coupon.command("show")
@tenant_option
@click.argument("code")
@json_option
@pass_config
def coupon_show(config: Config, tenant: str, code: str, as_json: bool) -> None:
    """Say whether CODE is issued, used, expired, void — or mistyped or forged."""
    found = _store(config, tenant).coupon(code)
    if as_json:
        echo_json(found.to_json())
    else:
        echo_rows(("coupon", "state", "item", "card", "expires", "used_at", "shop"),
                  [(printed(found.code), found.state, found.item, found.card,
                    iso_time(found.expires_at or None), iso_time(found.used_at), found.shop)])


@coupon.command("redeem")
@tenant_option
@click.argument("code")
@click.option("--shop", default="", help="Where it was used (kept with the coupon).")
@pass_config
def coupon_redeem(config: Config, tenant: str, code: str, shop: str) -> None:
    """Use CODE once at a shop; a used, expired or forged coupon is refused with the reason."""
    found = _store(config, tenant).use_coupon(code, shop)
    click.echo(f"coupon {printed(found.code)} used: {found.name or found.item}")


COMMANDS = (reward, coupon)
