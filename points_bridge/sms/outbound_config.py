"""A tenant's outbound SMS settings: which sender, how fast, when not, at what cost.

Stored in one hash in the tenant slot (``PointsKeys.outbound_config``):

==============  ===================================================================
``sender``      ``file`` (default: ``<home>/outbox/<tenant>.jsonl``) or ``http``
``url``         the HTTP gateway's URL
``template``    the JSON payload template (``senders.DEFAULT_TEMPLATE``)
``id_field``    the field of the gateway's JSON answer holding its message id
``auth``        the auth header ``Name: value``, sealed under the master key
``path``        the file sender's JSONL file
``rate``        messages per second, over every ``itemseal sender run`` together
``quiet``       quiet hours ``HH:MM-HH:MM`` in the tenant's points timezone
``cost``        units (e.g. fen) one message costs against the credit
==============  ===================================================================

The credit itself is a counter beside it (``PointsKeys.sms_credit``),
topped up with ``itemseal sender credit`` and spent by the send script.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import redis

from codegen.keys import MasterKey, check_secret
from codegen.store.keyspace import PointsKeys
from codegen.webhooks import check_public_url
from points_bridge.settings import SettingsStore
from points_bridge.sms.senders import (
    DEFAULT_TEMPLATE,
    FileSender,
    HttpGatewaySender,
    Sender,
    SenderError,
    check_template,
)

_QUIET = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-3]):([0-5][0-9])$")
DEFAULT_RATE = 10
FIELDS = ("sender", "url", "template", "id_field", "path", "rate", "quiet", "cost")


def parse_quiet(text: str) -> tuple[time, time] | None:
    """``"21:30-08:00"`` -> (start, end); empty -> None (no quiet hours)."""
    if not text:
        return None
    found = _QUIET.match(text.strip())
    if not found:
        raise SenderError(f"bad quiet hours {text!r}: write HH:MM-HH:MM, e.g. 21:00-08:00")
    h1, m1, h2, m2 = (int(g) for g in found.groups())
    return time(h1, m1), time(h2, m2)


def in_quiet(quiet: tuple[time, time] | None, local: datetime) -> bool:
    """Tell whether a local time falls in the quiet hours (they may wrap midnight)."""
    if quiet is None:
        return False
    start, end = quiet
    now = local.time().replace(tzinfo=None)
    if start <= end:
        return start <= now < end
    return now >= start or now < end


@dataclass(frozen=True)
class OutboundConfig:
    tenant: str
    sender: str = "file"
    url: str = ""
    template: str = DEFAULT_TEMPLATE
    id_field: str = "id"
    path: str = ""
    rate: int = DEFAULT_RATE
    quiet: str = ""
    cost: int = 0
    auth: str = ""
    timezone: ZoneInfo = ZoneInfo("UTC")

    def is_quiet(self, now: float) -> bool:
        return in_quiet(parse_quiet(self.quiet), datetime.fromtimestamp(now, self.timezone))

    def build(self, home: Path) -> Sender:
        """The configured sender (``home`` places the file sender's default file)."""
        if self.sender == "http":
            return HttpGatewaySender(self.url, auth_header=self.auth, template=self.template,
                                     id_field=self.id_field)
        return FileSender(Path(self.path) if self.path else home / "outbox" /
                          f"{self.tenant}.jsonl")

    def public(self) -> dict:
        """The settings without the auth header (shown by the CLI and the admin API)."""
        return {"sender": self.sender, "url": self.url, "template": self.template,
                "id_field": self.id_field, "path": self.path, "rate": self.rate,
                "quiet": self.quiet, "cost": self.cost, "auth_set": bool(self.auth)}


class OutboundSettings:
    """Read and change one tenant's outbound settings and credit."""

    def __init__(self, client: redis.Redis, tenant: str, master: MasterKey | None = None) -> None:
        self._redis = client
        self.tenant = tenant
        self._keys = PointsKeys(tenant)
        self._master = master

    def get(self) -> OutboundConfig:
        raw = {k.decode(): v.decode() for k, v in
               self._redis.hgetall(self._keys.outbound_config).items()}
        zone = SettingsStore(self._redis).get(self.tenant).timezone
        auth = self._open(raw["auth"]) if raw.get("auth") and self._master else ""
        return OutboundConfig(
            tenant=self.tenant, sender=raw.get("sender", "file"), url=raw.get("url", ""),
            template=raw.get("template") or DEFAULT_TEMPLATE, id_field=raw.get("id_field", "id"),
            path=raw.get("path", ""), rate=int(raw.get("rate") or DEFAULT_RATE),
            quiet=raw.get("quiet", ""), cost=int(raw.get("cost") or 0), auth=auth,
            timezone=zone,
        )

    def update(self, changes: Mapping[str, object], auth: str | None = None) -> OutboundConfig:
        """Validate every change first, then store them together."""
        fields: dict[str, str] = {}
        for name, value in changes.items():
            if name not in FIELDS:
                raise SenderError(f"unknown outbound setting {name!r}: use {', '.join(FIELDS)}")
            fields[name] = _checked(name, value)
        if auth is not None:
            if self._master is None:
                raise SenderError("the master key is needed to store an auth header")
            if auth:
                check_secret(auth.partition(":")[2].strip(), "the value of the auth header")
            fields["auth"] = self._seal(auth) if auth else ""
        if fields:
            self._redis.hset(self._keys.outbound_config, mapping=fields)
        return self.get()

    def credit(self) -> int:
        return int(self._redis.get(self._keys.sms_credit) or 0)

    def top_up(self, units: int) -> int:
        """Add units to the credit (negative takes away); return the credit after."""
        return int(self._redis.incrby(self._keys.sms_credit, units))

    def _context(self) -> bytes:
        return f"itemseal/sms-sender-auth/{self.tenant}".encode()

    def _seal(self, secret: str) -> str:
        record = self._master.seal_record(secret.encode(), self._context(), os.urandom(12))
        return json.dumps(record)

    def _open(self, raw: str) -> str:
        what = f"the SMS gateway auth of tenant {self.tenant!r}"
        return self._master.open_record(json.loads(raw), self._context(), what).decode()


def _checked(name: str, value: object) -> str:
    text = str(value).strip()
    if name == "sender" and text not in ("file", "http"):
        raise SenderError("sender is 'file' or 'http'")
    if name == "url" and text:
        if not text.startswith(("http://", "https://")):
            raise SenderError(f"bad gateway URL {text!r}: give an http(s) URL")
        check_public_url(text, "the SMS gateway URL")
    if name == "template":
        check_template(text)
    if name in ("rate", "cost"):
        if not text.isdigit() or (name == "rate" and int(text) < 1):
            raise SenderError(f"{name} must be a whole number{' >= 1' if name == 'rate' else ''}")
    if name == "quiet":
        parse_quiet(text)
    return text
