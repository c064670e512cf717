"""A tenant's check limits: the rate limits and the check cap, as a manager sets them.

The fields are those ``verify_api/check/catalog.py`` reads on every check
(``verify_rate_ip``, ``verify_rate_phone``, ``verify_rate_batch``,
``verify_check_cap``). A value is checked when written by the very parser
that reads it (``catalog.PARSERS``), so what is stored always parses, and is
stored in its canonical form (``300/60``, ``off``, ``5``). Every worker sees a
change within its catalog cache time (``itemseal serve --catalog-seconds``).
Set with ``itemseal tenant set --rate-ip ...`` or ``PATCH .../limits``.
"""

from __future__ import annotations

from collections.abc import Mapping

import redis

from codegen.store.keyspace import TenantKeys
from codegen.tenants import TenantStore
from verify_api.check.catalog import DEFAULTS, PARSERS
from verify_api.check.ratelimit import Limit
from verify_api.exc import SettingError

FIELDS = {
    "rate_ip": "verify_rate_ip",
    "rate_phone": "verify_rate_phone",
    "rate_batch": "verify_rate_batch",
    "check_cap": "verify_check_cap",
}
"""Name a manager uses -> field of the tenant record."""


def canonical(field: str, value: object) -> str:
    """The stored text of one limit, parsed by the catalog's own parser; or ``SettingError``."""
    text = str(value).strip()
    try:
        parsed = PARSERS[field](text)
    except (ValueError, TypeError) as exc:
        raise SettingError(f"{field.removeprefix('verify_')}: {exc}") from None
    if isinstance(parsed, Limit):
        return f"{parsed.count}/{parsed.seconds}"
    if parsed is None:
        return "off"
    return str(parsed)


def limits_json(settings: Mapping[str, str]) -> dict[str, object]:
    """The limits in force, as the catalog reads them (a damaged field shows its default)."""
    out: dict[str, object] = {}
    for name, field in FIELDS.items():
        raw = settings.get(field) or DEFAULTS[field]
        try:
            text = canonical(field, raw)
        except SettingError:
            text = canonical(field, DEFAULTS[field])
        out[name] = int(text) if name == "check_cap" else text
    return out


class VerifyLimits:
    """Read and change one tenant's check limits."""

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client
        self._tenants = TenantStore(client)

    def get(self, tenant: str) -> dict[str, object]:
        return limits_json(self._tenants.get(tenant).settings)

    def update(self, tenant: str, **changes: object) -> dict[str, object]:
        """Check every change with the reading parser, then store them all or none."""
        unknown = set(changes) - set(FIELDS)
        if unknown:
            raise SettingError(f"unknown limit {sorted(unknown)[0]!r}: use {', '.join(FIELDS)}")
        fields = {FIELDS[name]: canonical(FIELDS[name], value) for name, value in changes.items()}
        self._tenants.get(tenant)
        if fields:
            self._redis.hset(TenantKeys(tenant).meta, mapping=fields)
        return self.get(tenant)
