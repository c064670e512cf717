"""Alerts for brand managers: a code turned high-risk, or counterfeits surge in a region.

Where the rules run: in ``itemseal alerts run`` (a background command, once
or every ``--every`` seconds), never in the verify path, which keeps every
check at the round trips it has. The price is latency: an alert comes at
the next run, not with the check.

* **risk**: every scanned code's risk is computed from its scan record
  (``risk.risk_level``, as the verify answer does); a code at ``high`` is
  alerted once (``SET NX`` on ``alerts:sent:risk.<serial>``).
* **counterfeit surge**: the per-day counters already count counterfeit
  answers per region (``stats.py``, ``cf_region:R``). Each run stores a
  snapshot of today's and yesterday's counts (the tenant's days, in its
  time zone, as the counters are kept) (a sorted set scored by time);
  the counts in the window are the current counts minus those of the newest
  snapshot at least ``window_minutes`` old, day by day, so a day rolling
  over subtracts nothing it should not (``window_counts``, pure). A region
  at or above ``counterfeit_threshold`` is alerted once per window.

An alert goes to the webhook (a JSON POST signed with
``X-Itemseal-Signature`` when a secret is set) and/or as SMS to the
managers' phones through the outbound queue (kind ``alert``: transactional,
so quiet hours do not hold it).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta

import redis

from codegen.keys import MasterKey, check_secret
from codegen.store.keyspace import TenantKeys
from codegen.times import iso
from codegen.webhooks import Delivery, PrivateWebhook, check_public_url, http_client, post
from codegen.words import plural
from points_bridge.sms.outbound import ALERT, Outbox
from verify_api.admin.reports import Reports
from verify_api.channels import signatures
from verify_api.check.risk import (
    HIGH,
    PHONE_SKETCH_BITS,
    REGION_SKETCH_BITS,
    distinct_estimate,
    risk_level,
)
from verify_api.exc import SettingError

log = logging.getLogger(__name__)

DEFAULTS = {"webhook_url": "", "webhook_secret": "", "sms_phones": [], "risk_high": True,
            "counterfeit_threshold": 0, "window_minutes": 60}
SENT_SECONDS = 30 * 86400


def check_config(
    data: Mapping[str, object], *, changed_url: bool = False, changed_secret: bool = False
) -> dict:
    """Validate alert settings; keys not given keep their defaults.

    The webhook URL's host and the secret's length are checked when they are
    set (``changed_*``): one stored before these checks still reads.
    """
    out = dict(DEFAULTS)
    for name, value in data.items():
        if name not in DEFAULTS:
            raise SettingError(f"unknown alert setting {name!r}: use {', '.join(DEFAULTS)}")
        want = type(DEFAULTS[name])
        if not isinstance(value, want) or (want is int and isinstance(value, bool)):
            raise SettingError(f"alert setting {name!r} must be a {want.__name__}")
        out[name] = value
    url = out["webhook_url"]
    if url and not url.startswith(("http://", "https://")):
        raise SettingError(f"bad webhook URL {url!r}: give an http(s) URL")
    if url and changed_url:
        check_public_url(url, "the alert webhook")
    if out["webhook_secret"] and changed_secret:
        check_secret(out["webhook_secret"], "the alert webhook secret")
    if out["window_minutes"] < 1 or out["window_minutes"] > 24 * 60:
        raise SettingError("window_minutes is 1-1440 (the counters keep two days)")
    if out["counterfeit_threshold"] < 0:
        raise SettingError("counterfeit_threshold is 0 (off) or more")
    if not all(isinstance(p, str) and p for p in out["sms_phones"]):
        raise SettingError("sms_phones is a list of phone numbers")
    return out


def window_counts(
    current: Mapping[str, Mapping[str, int]], baseline: Mapping[str, Mapping[str, int]]
) -> Counter:
    """Counts per region since ``baseline``, both given per day (``{day: {region: n}}``)."""
    out: Counter = Counter()
    for day, regions in current.items():
        before = baseline.get(day, {})
        for region, n in regions.items():
            grown = n - before.get(region, 0)
            if grown > 0:
                out[region] += grown
    return out


def breaches(counts: Mapping[str, int], threshold: int) -> list[tuple[str, int]]:
    """Regions at or over the threshold, busiest first (threshold 0: the rule is off)."""
    if threshold <= 0:
        return []
    return sorted(((r, n) for r, n in counts.items() if n >= threshold),
                  key=lambda item: (-item[1], item[0]))


@dataclass(frozen=True)
class Alert:
    alert_id: str
    kind: str
    message: str
    detail: dict

    def to_json(self, tenant: str, at: int) -> dict:
        return {"id": self.alert_id, "tenant": tenant, "kind": self.kind,
                "message": self.message, "detail": self.detail, "at": iso(at)}


class Alerts:
    """One tenant's alert settings and the run that evaluates and delivers them."""

    def __init__(
        self,
        client: redis.Redis,
        tenant: str,
        *,
        master: MasterKey,
        clock: Callable[[], float] = time.time,
        timeout: float = 10.0,
    ) -> None:
        self._redis = client
        self.tenant = tenant
        self._master = master
        self._clock = clock
        self._timeout = timeout
        self._keys = TenantKeys(tenant)
        self._context = f"itemseal/alert-webhook-secret/{tenant}".encode()

    def config(self) -> dict:
        """The settings, the webhook secret opened (it is stored sealed under the master key)."""
        raw = self._redis.get(self._keys.alerts_config)
        stored = json.loads(raw) if raw else {}
        sealed = stored.pop("webhook_secret", "")
        if isinstance(sealed, dict):
            what = f"the alert webhook secret of tenant {self.tenant!r}"
            opened = self._master.open_record(sealed, self._context, what)
            stored["webhook_secret"] = opened.decode()
        return check_config(stored)

    def configure(self, changes: Mapping[str, object]) -> dict:
        checked = check_config({**self.config(), **changes},
                               changed_url=bool(changes.get("webhook_url")),
                               changed_secret=bool(changes.get("webhook_secret")))
        stored = dict(checked)
        if checked["webhook_secret"]:
            secret = str(checked["webhook_secret"]).encode()
            stored["webhook_secret"] = self._master.seal_record(
                secret, self._context, os.urandom(12)
            )
        self._redis.set(self._keys.alerts_config, json.dumps(stored))
        return checked

    def run(self) -> list[Alert]:
        """Evaluate both rules; deliver and return the alerts not delivered before."""
        config = self.config()
        now = int(self._clock())
        found = self._risk_alerts() if config["risk_high"] else []
        found += self._surge_alerts(config, now)
        fresh = []
        for alert in found:
            key = self._keys.alert_sent(alert.alert_id)
            if self._redis.set(key, now, nx=True, ex=SENT_SECONDS):
                self._deliver(config, alert, now)
                fresh.append(alert)
        return fresh

    def _risk_alerts(self) -> list[Alert]:
        now = self._clock()
        out = []
        for s in Reports(self._redis, self.tenant, clock=self._clock).scanned():
            r = s.record
            level = risk_level(r.count, now - r.first_at,
                               distinct_estimate(r.phone_sketch, PHONE_SKETCH_BITS),
                               distinct_estimate(r.region_sketch, REGION_SKETCH_BITS))
            if level == HIGH:
                out.append(Alert(f"risk.{s.serial}", "risk_high",
                                 f"code serial {s.serial} ({s.sku}) checked"
                                 f" {plural(r.count, 'time')}: high risk of a copied label",
                                 {"serial": s.serial, "batch": s.batch_id, "sku": s.sku,
                                  "count": r.count}))
        return out

    def _surge_alerts(self, config: dict, now: int) -> list[Alert]:
        reports = Reports(self._redis, self.tenant, clock=lambda: now)
        today = reports.today()  # the tenant's: its counters' days are
        per_day = reports.per_day(today - timedelta(days=1), today)
        current = {day: dict(c["cf_region"]) for day, c in per_day.items()}
        snaps = self._keys.alert_snapshots
        window = config["window_minutes"] * 60
        older = self._redis.zrevrangebyscore(snaps, now - window, "-inf", start=0, num=1)
        if not older:
            oldest = self._redis.zrange(snaps, 0, 0)
            older = oldest
        self._redis.zadd(snaps, {json.dumps({"at": now, "days": current}): now})
        self._redis.zremrangebyscore(snaps, "-inf", now - 2 * 86400)
        if not older:
            return []  # the first run only takes a snapshot
        baseline = json.loads(older[0])["days"]
        period = now // window
        return [
            Alert(f"cf.{region}.{period}", "counterfeit_surge",
                  f"{n} counterfeit answers from {region} in {config['window_minutes']} min",
                  {"region": region, "count": n, "window_minutes": config["window_minutes"]})
            for region, n in breaches(window_counts(current, baseline),
                                      config["counterfeit_threshold"])
        ]

    def _deliver(self, config: dict, alert: Alert, now: int) -> None:
        if config["webhook_url"]:
            body = json.dumps(alert.to_json(self.tenant, now), ensure_ascii=False).encode()
            headers = {"Content-Type": "application/json"}
            if config["webhook_secret"]:
                headers["X-Itemseal-Signature"] = signatures.itemseal_signature(
                    config["webhook_secret"], body)
            try:
                check_public_url(config["webhook_url"], "the alert webhook",
                                 resolve_fail_ok=False)
                with http_client(self._timeout) as client:  # no redirects: a 3xx is a failure
                    sent = post(client, config["webhook_url"], body, headers)
            except PrivateWebhook as exc:
                sent = Delivery(0, str(exc))
            if not sent.ok:
                log.warning("alert %s of %s not delivered: %s", alert.alert_id, self.tenant,
                            sent.reason)
                self._redis.delete(self._keys.alert_sent(alert.alert_id))  # next run tries again
        outbox = Outbox(self._redis, self.tenant, clock=self._clock)
        for phone in config["sms_phones"]:
            outbox.enqueue(f"a.{alert.alert_id}.{phone}", phone, alert.message[:300], ALERT)
