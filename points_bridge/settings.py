"""A tenant's points settings: tiers, birthday, daily cap, expiry, attributes.

Stored as ``points_*`` fields of the tenant record (``TenantKeys.meta``, the
hash ``itemseal tenant show`` prints), beside ``region``. Read on every
credit in the same round trip as the product and the campaigns, so a change
applies at once (or within the API's short view cache), without a restart.

======================  ============================  ===========================================
field                   default                       meaning
======================  ============================  ===========================================
``region``              CN                            phones typed without +CC (``tenant set``)
``points_timezone``     Asia/Shanghai (UTC off CN)    what "today", "birthday" and a report's
                                                      days mean
``points_tiers``        silver:0,gold:1000,           the ladder, lowest first
                        diamond:5000
``points_tier_basis``   lifetime                      ``lifetime`` or ``trailing:DAYS``
``points_daily_cap``    (none)                        points a member may earn per day
``points_birthday_bp``  10000                         birthday multiplier in basis points
``points_birthday_bonus`` 0                           fixed birthday points
``points_expiry_months`` 0                            points expire N months after the month
                                                      they were earned in; 0 = never
``points_restore``      keep                          on restore of a cancelled member: ``keep``
                                                      the balance or ``forfeit`` it
``points_attributes``   []                            JSON list of ``[name, type]``, at most 30
``points_earn_rate``    10000                         purchase points per currency unit, in basis
                                                      points (per SKU/category: ``EarnRateStore``)
======================  ============================  ===========================================

Bounds (so every date and window stays computable and every figure exact):
expiry 0-120 months, ``trailing:DAYS`` 1-3660, daily cap 0-10^9, birthday
bonus 0-10^7, tier thresholds 0-10^15 (``codegen/amounts.py``). Each field
has one parser (``PARSERS``), used to check a change and to read the record.
A stored field that does not parse reads as its default, with a warning
logged once per process: a value an older version accepted must never turn
the tenant's credits into 500s.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
import redis

from codegen.amounts import MAX_BALANCE, MAX_ENTRY_POINTS, MAX_RULE_POINTS
from codegen.store.keyspace import PointsKeys
from codegen.tenants import TenantStore
from points_bridge.exc import BadAttribute, BadRegion, BadSetting, PointsError
from points_bridge.phones import DEFAULT_REGION
from points_bridge.rules import MAX_MULTIPLIER_BP, ONE_X_BP, PointsPolicy, multiplier_bp
from points_bridge.tiers import MAX_WINDOW_DAYS, Tier, TierLadder

log = logging.getLogger(__name__)

DEFAULT_TIERS = "silver:0,gold:1000,diamond:5000"
DEFAULT_LADDER = TierLadder((Tier("silver", 0), Tier("gold", 1000), Tier("diamond", 5000)))
MAX_EXPIRY_MONTHS = 120
"""Ten years: every lot's expiry date stays computable for any claim date."""
RESTORE_POLICIES = ("keep", "forfeit")
ATTRIBUTE_TYPES = ("str", "int", "bool", "date")
MAX_ATTRIBUTES = 30
MAX_TEXT = 200
ATTRIBUTE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_TRUE = ("1", "true", "yes", "y")
_FALSE = ("0", "false", "no", "n")


@dataclass(frozen=True)
class PointsSettings:
    """Everything the points side reads from the tenant record, parsed."""

    region: str
    timezone: ZoneInfo
    ladder: TierLadder
    policy: PointsPolicy
    expiry_months: int
    restore: str
    attributes: Mapping[str, str]
    earn_rate_bp: int = ONE_X_BP
    """Points one currency unit of a purchase earns, in basis points (tenant default)."""

    @classmethod
    def parse(cls, fields: Mapping[str, str], *, strict: bool = False) -> PointsSettings:
        """Parse the record's fields, each with the parser that checks it when written.

        ``strict`` (a manager's change): a field that does not parse raises
        ``BadSetting``. Otherwise (every read) it falls back to its default with a
        logged warning: a value an older version accepted must not turn every
        credit of the tenant into a 500.
        """

        def field(name: str, default: object) -> object:
            raw = fields.get(name)
            if raw in (None, ""):
                return default
            try:
                return PARSERS[name](raw)
            except (PointsError, ValueError, TypeError, OverflowError) as exc:
                if strict:
                    if isinstance(exc, PointsError):
                        raise
                    raise BadSetting(name, raw, str(exc)) from exc
                _warn_once(name, raw, exc, default)
                return default

        region = field("region", DEFAULT_REGION)
        zone_default = parse_timezone("Asia/Shanghai" if region == "CN" else "UTC")
        tiers = field("points_tiers", DEFAULT_LADDER.tiers)
        basis = field("points_tier_basis", ("lifetime", None))
        return cls(
            region=region,  # type: ignore[arg-type]
            timezone=field("points_timezone", zone_default),  # type: ignore[arg-type]
            ladder=TierLadder(tiers, *basis),  # type: ignore[arg-type, misc]
            policy=PointsPolicy(
                birthday_multiplier_bp=field("points_birthday_bp", ONE_X_BP),  # type: ignore
                birthday_bonus=field("points_birthday_bonus", 0),  # type: ignore[arg-type]
                daily_cap=field("points_daily_cap", None),  # type: ignore[arg-type]
            ),
            expiry_months=field("points_expiry_months", 0),  # type: ignore[arg-type]
            restore=field("points_restore", "keep"),  # type: ignore[arg-type]
            attributes=field("points_attributes", {}),  # type: ignore[arg-type]
            earn_rate_bp=field("points_earn_rate", ONE_X_BP),  # type: ignore[arg-type]
        )


_warned: set[tuple[str, str]] = set()


def _warn_once(name: str, raw: str, exc: Exception, default: object) -> None:
    """Log a stored setting that does not parse, once per process and value (every credit
    reads the settings; the log must not repeat it thousands of times)."""
    if (name, raw) in _warned:
        return
    if len(_warned) > 1000:
        _warned.clear()
    _warned.add((name, raw))
    log.warning("tenant setting %s=%r does not parse (%s): using the default %r",
                name, raw, exc, default)


def check_region(region: str) -> str:
    """Return ``region`` upper-cased if phonenumbers knows it (``CN``, ``US``, ...)."""
    if region.upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise BadRegion(region)
    return region.upper()


def parse_timezone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise BadSetting("timezone", name, "not an IANA time zone such as Asia/Shanghai") from exc


def parse_tiers(tiers: str) -> tuple[Tier, ...]:
    """Read ``silver:0,gold:1000`` (thresholds up to ``MAX_BALANCE``), each tier optionally
    with its discount in percent and its purchase earn multiplier:
    ``silver:0,gold:1000:5,diamond:5000:12.5:1.5`` (diamond: 12.5% off, 1.5x points).
    """
    try:
        steps = tuple(_tier(item) for item in tiers.split(","))
    except (ValueError, PointsError) as exc:
        raise BadSetting(
            "tiers", tiers,
            "write name:threshold[:discount%[:earn multiplier]], e.g."
            " silver:0,gold:1000:5,diamond:5000:12:1.5",
        ) from exc
    TierLadder(steps)  # the ladder's own checks: from 0, strictly increasing, unique
    return steps


def _tier(item: str) -> Tier:
    name, points, *rest = item.split(":")
    if len(rest) > 2:
        raise ValueError(f"{item!r} has too many parts")
    discount = _percent_bp(rest[0]) if rest and rest[0].strip() else 0
    earn = multiplier_bp(rest[1].strip()) if len(rest) > 1 and rest[1].strip() else ONE_X_BP
    return Tier(name.strip(), _whole(points, MAX_BALANCE), discount, earn)


def _percent_bp(text: str) -> int:
    """``"12.5"`` percent as 1250 basis points, exactly (at most two decimals), 0 to 100%."""
    match = re.fullmatch(r"(\d{1,3})(?:\.(\d{1,2}))?%?", text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a percentage such as 5 or 12.5")
    bp = int(match[1]) * 100 + int((match[2] or "0").ljust(2, "0"))
    if bp > 10_000:
        raise ValueError(f"{text!r} is over 100%")
    return bp


def parse_basis(basis: str) -> tuple[str, int | None]:
    """Read ``lifetime``, ``trailing:DAYS`` (1 to ``MAX_WINDOW_DAYS``) or ``spend`` (tiers
    by the whole currency units a member has spent, purchases less refunds)."""
    kind, _, days = basis.partition(":")
    if kind in ("lifetime", "spend") and not days:
        return kind, None
    if kind == "trailing" and days.isdigit() and 1 <= int(days) <= MAX_WINDOW_DAYS:
        return "trailing", int(days)
    raise BadSetting("tier basis", basis,
                     f"write lifetime, spend or trailing:DAYS with DAYS from 1 to"
                     f" {MAX_WINDOW_DAYS}")


def parse_ladder(tiers: str, basis: str = "lifetime") -> TierLadder:
    """Read ``silver:0,gold:1000`` and ``lifetime`` / ``trailing:365`` into a ladder."""
    return TierLadder(parse_tiers(tiers), *parse_basis(basis))  # type: ignore[arg-type]


def _whole(text: str, high: int) -> int:
    """A whole number from 0 to ``high`` written in plain digits, or ``ValueError``."""
    text = text.strip()
    if not text.isdigit() or int(text) > high:
        raise ValueError(f"{text!r} is not a whole number from 0 to {high}")
    return int(text)


def _bounded(name: str, high: int):
    def parse(text: str) -> int:
        try:
            return _whole(text, high)
        except ValueError:
            raise BadSetting(name, text, f"must be a whole number from 0 to {high}") from None

    return parse


MAX_EARN_RATE_BP = 100 * ONE_X_BP
"""100 points per currency unit: a typo guard, as the 10x multiplier ceiling."""


def earn_rate_bp(text: str) -> int:
    """Read points per currency unit as a manager types it (``1``, ``0.5``) into basis points,
    exactly; 0 to 100."""
    try:
        bp = multiplier_bp(text.strip()) if isinstance(text, str) else multiplier_bp(text)
    except PointsError:
        raise BadSetting("earn_rate", text, "points per currency unit, e.g. 1 or 0.5") from None
    if not 0 <= bp <= MAX_EARN_RATE_BP:
        raise BadSetting("earn_rate", text, "points per currency unit from 0 to 100")
    return bp


def parse_earn_rate_bp(text: str) -> int:
    """The stored form: basis points, 0 to ``MAX_EARN_RATE_BP``."""
    return _whole(text, MAX_EARN_RATE_BP)


def parse_bp(text: str) -> int:
    bp = _whole(text, MAX_MULTIPLIER_BP)
    PointsPolicy(birthday_multiplier_bp=bp)
    return bp


def parse_restore(text: str) -> str:
    if text not in RESTORE_POLICIES:
        raise BadSetting("restore", text, f"use one of {', '.join(RESTORE_POLICIES)}")
    return text


def parse_attributes(text: str) -> dict[str, str]:
    declared = json.loads(text)
    if not isinstance(declared, list) or not all(
        isinstance(d, list) and len(d) == 2 for d in declared
    ):
        raise BadSetting("attributes", text, "a JSON list of [name, type]")
    check_attributes([(str(n), str(k)) for n, k in declared])
    return {str(n): str(k) for n, k in declared}


PARSERS: dict[str, Callable[[str], object]] = {
    "region": check_region,
    "points_timezone": parse_timezone,
    "points_tiers": parse_tiers,
    "points_tier_basis": parse_basis,
    "points_birthday_bp": parse_bp,
    "points_birthday_bonus": _bounded("birthday_bonus", MAX_RULE_POINTS),
    "points_daily_cap": _bounded("daily_cap", MAX_ENTRY_POINTS),
    "points_expiry_months": _bounded("expiry_months", MAX_EXPIRY_MONTHS),
    "points_restore": parse_restore,
    "points_attributes": parse_attributes,
    "points_earn_rate": parse_earn_rate_bp,
}
"""The one parser of each stored field: ``check_setting`` (write) and ``parse`` (read)."""


def check_setting(name: str, value: str) -> tuple[str, str]:
    """Validate one setting as a manager types it; return its record field and value.

    The stored value is checked by the same parser that reads it (``PARSERS``).
    """
    if name == "birthday_multiplier":
        value = str(multiplier_bp(value))
        field = "points_birthday_bp"
    elif name == "earn_rate":
        value = str(earn_rate_bp(value))
        field = "points_earn_rate"
    elif name in ("timezone", "tiers", "tier_basis", "birthday_bonus", "daily_cap",
                  "expiry_months", "restore"):
        field = f"points_{name}"
        value = value.strip()
        if name in ("birthday_bonus", "daily_cap", "expiry_months") and value:
            value = str(int(value)) if value.isdigit() else value
    else:
        raise BadSetting(name, value, "no such points setting")
    if value == "" and name == "daily_cap":
        return field, ""
    try:
        PARSERS[field](value)
    except PointsError:
        raise
    except (ValueError, TypeError, OverflowError) as exc:
        raise BadSetting(name, value, str(exc)) from exc
    return field, value


def check_attributes(declared: list[tuple[str, str]]) -> str:
    """Validate a list of ``(name, type)`` declarations; return the stored JSON."""
    if len(declared) > MAX_ATTRIBUTES:
        raise BadSetting("attributes", len(declared), f"at most {MAX_ATTRIBUTES} attributes")
    seen: set[str] = set()
    for name, kind in declared:
        if not ATTRIBUTE_NAME.match(name):
            raise BadSetting("attributes", name, "names are 1-32 of a-z, 0-9, _, from a letter")
        if kind not in ATTRIBUTE_TYPES:
            raise BadSetting("attributes", kind, f"types are {', '.join(ATTRIBUTE_TYPES)}")
        if name in seen:
            raise BadSetting("attributes", name, "declared twice")
        seen.add(name)
    return json.dumps([[name, kind] for name, kind in declared])


def check_attribute_value(declared: Mapping[str, str], name: str, value: str) -> str:
    """Return the stored form of one attribute value, or raise ``BadAttribute``."""
    kind = declared.get(name)
    if kind is None:
        known = ", ".join(sorted(declared)) or "none declared"
        raise BadAttribute(name, f"not declared by the tenant ({known})")
    text = value.strip()
    if kind == "int":
        if not re.fullmatch(r"-?\d{1,18}", text):
            raise BadAttribute(name, f"{value!r} is not a whole number")
        return str(int(text))
    if kind == "bool":
        if text.lower() not in _TRUE + _FALSE:
            raise BadAttribute(name, f"{value!r} is not true or false")
        return "true" if text.lower() in _TRUE else "false"
    if kind == "date":
        try:
            return date.fromisoformat(text).isoformat()
        except ValueError:
            raise BadAttribute(name, f"{value!r} is not a date (YYYY-MM-DD)") from None
    if len(value) > MAX_TEXT:
        raise BadAttribute(name, f"longer than {MAX_TEXT} characters")
    return value


class SettingsStore:
    """Read and change a tenant's points settings."""

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client

    def raw(self, tenant: str) -> dict[str, str]:
        return TenantStore(self._redis).get(tenant).settings

    def get(self, tenant: str) -> PointsSettings:
        return load(self.raw(tenant))

    def update(self, tenant: str, **changes: str) -> PointsSettings:
        """Validate and store settings; the next credit already uses them."""
        fields = dict(check_setting(name, value) for name, value in changes.items())
        self.raw(tenant)  # an unknown tenant: say so
        if fields:
            self._redis.hset(PointsKeys(tenant).settings, mapping=fields)
        return self.get(tenant)

    def declare_attributes(self, tenant: str, declared: list[tuple[str, str]]) -> PointsSettings:
        """Replace the tenant's attribute declarations (values already stored stay)."""
        self.raw(tenant)
        self._redis.hset(
            PointsKeys(tenant).settings, "points_attributes", check_attributes(declared)
        )
        return self.get(tenant)


def load(fields: Mapping[str, str]) -> PointsSettings:
    """Parse settings as read: a field that no longer parses is its default (and a warning)."""
    return PointsSettings.parse(fields)


def timezone_of(fields: Mapping[str, str]) -> ZoneInfo:
    """The tenant's days' zone, from its record as read (the check counters' days too).

    The same parse as every other reader, so a check's day, a member's "today"
    and a report's days never disagree about the zone.
    """
    return load(fields).timezone
