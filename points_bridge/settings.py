"""A tenant's points settings: tiers, birthday, daily cap, expiry, attributes.

Stored as ``points_*`` fields of the tenant record (``TenantKeys.meta``, the
hash ``itemseal tenant show`` prints), beside ``region``. Read on every
credit in the same round trip as the product and the campaigns, so a change
applies at once, without a restart and without a cache to expire.

======================  ============================  ===========================================
field                   default                       meaning
======================  ============================  ===========================================
``region``              CN                            phones typed without +CC (``tenant set``)
``points_timezone``     Asia/Shanghai (UTC off CN)    what "today" and "birthday" mean
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
======================  ============================  ===========================================
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
import redis

from codegen.store.keyspace import PointsKeys
from codegen.tenants import TenantStore
from points_bridge.exc import BadAttribute, BadRegion, BadSetting, PointsError
from points_bridge.phones import DEFAULT_REGION
from points_bridge.rules import PointsPolicy, multiplier_bp
from points_bridge.tiers import Tier, TierLadder

DEFAULT_TIERS = "silver:0,gold:1000,diamond:5000"
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

    @classmethod
    def parse(cls, fields: Mapping[str, str]) -> PointsSettings:
        region = check_region(fields.get("region") or DEFAULT_REGION)
        zone = fields.get("points_timezone") or ("Asia/Shanghai" if region == "CN" else "UTC")
        return cls(
            region=region,
            timezone=parse_timezone(zone),
            ladder=parse_ladder(
                fields.get("points_tiers") or DEFAULT_TIERS,
                fields.get("points_tier_basis") or "lifetime",
            ),
            policy=PointsPolicy(
                birthday_multiplier_bp=_int(fields, "points_birthday_bp", 10_000),
                birthday_bonus=_int(fields, "points_birthday_bonus", 0),
                daily_cap=_int(fields, "points_daily_cap", None),
            ),
            expiry_months=_int(fields, "points_expiry_months", 0),
            restore=fields.get("points_restore") or "keep",
            attributes=dict(json.loads(fields.get("points_attributes") or "[]")),
        )


def check_region(region: str) -> str:
    """Return ``region`` upper-cased if phonenumbers knows it (``CN``, ``US``, ...)."""
    if region.upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise BadRegion(region)
    return region.upper()


def _int(fields: Mapping[str, str], name: str, default: int | None) -> int | None:
    raw = fields.get(name)
    return default if raw in (None, "") else int(raw)


def parse_timezone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise BadSetting("timezone", name, "not an IANA time zone such as Asia/Shanghai") from exc


def parse_ladder(tiers: str, basis: str = "lifetime") -> TierLadder:
    """Read ``silver:0,gold:1000`` and ``lifetime`` / ``trailing:365`` into a ladder."""
    try:
        pairs = [item.split(":") for item in tiers.split(",")]
        steps = tuple(Tier(name.strip(), int(points)) for name, points in pairs)
    except ValueError as exc:
        raise BadSetting("tiers", tiers, "write name:points, e.g. silver:0,gold:1000") from exc
    kind, _, days = basis.partition(":")
    if kind == "trailing" and not days.isdigit():
        raise BadSetting("tier basis", basis, "write trailing:DAYS, e.g. trailing:365")
    return TierLadder(steps, kind, int(days) if kind == "trailing" else None)  # type: ignore[arg-type]


def _points_field(name: str, value: str) -> str:
    if value == "" and name == "daily_cap":
        return ""
    if not value.isdigit():
        raise BadSetting(name, value, "must be a whole number >= 0")
    return str(int(value))


def check_setting(name: str, value: str) -> tuple[str, str]:
    """Validate one setting as a manager types it; return its record field and value."""
    if name == "timezone":
        parse_timezone(value)
    elif name == "tiers":
        parse_ladder(value)
    elif name == "tier_basis":
        parse_ladder(DEFAULT_TIERS, value)
    elif name == "birthday_multiplier":
        bp = multiplier_bp(value)
        PointsPolicy(birthday_multiplier_bp=bp)
        return "points_birthday_bp", str(bp)
    elif name in ("birthday_bonus", "daily_cap", "expiry_months"):
        value = _points_field(name, value)
    elif name == "restore":
        if value not in RESTORE_POLICIES:
            raise BadSetting(name, value, f"use one of {', '.join(RESTORE_POLICIES)}")
    else:
        raise BadSetting(name, value, "no such points setting")
    return f"points_{name}", value


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
        current = self.raw(tenant)
        load({**current, **fields})  # the combination must parse too
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
    """Parse settings, turning a damaged field into a one-line ``BadSetting``."""
    try:
        return PointsSettings.parse(fields)
    except PointsError:
        raise
    except (ValueError, TypeError) as exc:
        raise BadSetting("record", "points_*", f"damaged: {exc}") from exc
