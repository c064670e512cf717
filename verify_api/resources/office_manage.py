"""The office's manager pages: reports (charts, CSV), the audit log, staff, rules, batches.

Actions as in the admin API: ``reports.read``, ``audit.read``,
``batches.read``/``batches.activate``/``batches.recall``, ``points.write``
for the rules (see ``RulesPage``); staff accounts are ``staff.read`` and
``staff.write``, the manager's.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Mapping

from markupsafe import Markup

from codegen.batches import ACTIVE, RECALLED, BatchRegistry
from codegen.exc import ItemsealError
from codegen.store.audit import AuditLog
from codegen.times import iso
from points_bridge.purchases import SALES_BY, SALES_COLUMNS
from points_bridge.settings import SettingsStore
from verify_api.admin import dashboard
from verify_api.admin.listing import DESC, Sorting, list_page
from verify_api.admin.report_math import Table
from verify_api.admin.reports import Reports, sales_by
from verify_api.admin.roles import ROLES
from verify_api.admin.staff import LoginRefused
from verify_api.check.batch_scans import void_codes
from verify_api.exc import InvalidField, NotFound
from verify_api.resources.admin_batches import batch_json
from verify_api.resources.admin_catalog import SETTINGS, settings_json, tiers_json
from verify_api.resources.office import OfficePage, Visit, page

REPORTS = ("checks", "regions", "counterfeits", "suspicious", "tiers", "points", "sales")
TITLES = {
    "checks": "Checks over time", "regions": "Region", "counterfeits": "Counterfeits by region",
    "suspicious": "Suspicious codes", "tiers": "Members by tier", "points": "Points by product",
    "sales": "Sales",
}
SALES_TITLES = {"day": "Sales by day", "shop": "Sales by shop", "product": "Sales by product",
                "tier": "Sales by tier"}
AUDIT_PAGE = 50
AUDIT_SCAN = 10_000
AUDIT_SORTING = Sorting({  # the stream's id orders entries of the same second
    "at": lambda e: tuple(int(n) for n in e.entry_id.split("-")),
    "actor": lambda e: e.actor, "action": lambda e: e.action, "target": lambda e: e.target,
}, default="at", default_dir=DESC)
MAX_VOID = 20_000
BATCH_SORTING = Sorting({
    "batch": lambda b: b.batch_id, "sku": lambda b: b.sku, "state": lambda b: b.state,
    "count": lambda b: b.count, "created": lambda b: b.created_at,
}, default="batch")


class UnknownReport(NotFound):
    code = "unknown_report"


def report_table(reports: Reports, name: str, first, last) -> Table:
    if name == "checks":
        return reports.checks(first, last, "day")
    if name == "regions":
        return reports.checks(first, last, "region")
    if name == "counterfeits":
        return reports.counterfeits(first, last)
    if name == "suspicious":
        return reports.suspicious(limit=100)
    if name == "tiers":
        return reports.tiers()
    return reports.points()


def report_charts(name: str, table: Table) -> list[Markup]:
    """The dashboard's SVG charts for a report (server-drawn, no script)."""
    rows = table.records()
    if name == "checks":
        days = [(r["day"], r["checks"]) for r in rows]
        results = [(c, sum(r[c] for r in rows)) for c in table.columns[2:]]
        return [Markup(dashboard.column_chart(days, chart_id="chart-checks",
                                              title="checks per day")),
                Markup(dashboard.bar_chart(results, chart_id="chart-results",
                                           title="checks by result"))]
    if name in ("regions", "tiers", "points"):
        column = table.columns[-1]  # the count: regions carry a name column between
        return [Markup(dashboard.bar_chart([(str(r[table.columns[0]]), int(r[column] or 0))
                                            for r in rows][:30],
                                           chart_id=f"chart-{name}", title=column))]
    if name == "counterfeits":
        return [Markup(dashboard.bar_chart([(r["region"], r["counterfeit"]) for r in rows][:30],
                                           chart_id="chart-counterfeits", title="counterfeit"))]
    if name == "sales":
        dims = table.columns[:-len(SALES_COLUMNS)]
        amounts = [(" · ".join(str(r[d]) or "-" for d in dims), int(r["amount_fen"] or 0))
                   for r in rows]
        if dims == ("day",):
            return [Markup(dashboard.column_chart(amounts, chart_id="chart-sales",
                                                  title="amount (fen) per day"))]
        return [Markup(dashboard.bar_chart(amounts[:30], chart_id="chart-sales",
                                           title=f"amount (fen) by {', '.join(dims)}"))]
    return []


def table_csv(table: Table) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(table.columns)
    writer.writerows(table.rows)
    return out.getvalue()


class ReportsPage(OfficePage):
    """``GET .../reports``: every report's link, and the checks chart of the period."""

    @page("reports.read")
    def on_get(self, req, resp, visit: Visit) -> None:
        reports = Reports(self.ctx.client, visit.tenant, clock=self.ctx.clock)
        first, last = reports.span(req.get_param("from"), req.get_param("to"))
        self.ctx.render(resp, "reports.html", visit=visit, names=REPORTS, titles=TITLES,
                        span=(first.isoformat(), last.isoformat()))


class ReportPage(OfficePage):
    """``GET .../reports/{name}``: its charts and table; ``?format=csv`` downloads the table.

    The sales report takes ``by`` (day, shop, product, tier, or several comma-separated)
    and runs ``Reports.sales``, the code of ``itemseal report sales --by``, so the page,
    its CSV and the CLI always agree.
    """

    @page("reports.read")
    def on_get(self, req, resp, visit: Visit, name: str) -> None:
        if name not in REPORTS:
            raise UnknownReport(f"no report {name!r}: {', '.join(REPORTS)}")
        reports = Reports(self.ctx.client, visit.tenant, key_store=self.ctx.key_store,
                          clock=self.ctx.clock)
        first, last = reports.span(req.get_param("from"), req.get_param("to"))
        by = ",".join(sales_by(req.get_param("by") or "day")) if name == "sales" else ""
        table = (reports.sales(first, last, by) if name == "sales"
                 else report_table(reports, name, first, last))
        span = (first.isoformat(), last.isoformat())
        if req.get_param("format") == "csv":
            resp.content_type = "text/csv; charset=utf-8"
            what = f"{name}-by-{by.replace(',', '-')}" if by else name
            resp.downloadable_as = f"{visit.tenant}-{what}-{span[0]}-{span[1]}.csv"
            resp.set_header("Cache-Control", "no-store")
            resp.text = table_csv(table)
            return
        self.ctx.render(resp, "report.html", visit=visit, name=name,
                        title=SALES_TITLES.get(by, TITLES[name]), span=span,
                        zone=reports.timezone.key, by=by, sales_by=SALES_BY,
                        sales_titles=SALES_TITLES, charts=report_charts(name, table),
                        table=Markup(dashboard.html_table(table, f"table-{name}")))


class AuditPage(OfficePage):
    """``GET .../audit?actor=...&sort=...&dir=...&page=N``: the audit trail, newest first.

    Sorted and paged over the newest ``AUDIT_SCAN`` entries (the stream keeps up to
    ``codegen.store.audit.MAX_ENTRIES``): reading all of them for every page view
    would cost more than a look at the recent trail is worth.
    """

    @page("audit.read")
    def on_get(self, req, resp, visit: Visit) -> None:
        actor = (req.get_param("actor") or "").strip()
        entries = AuditLog(self.ctx.client, visit.tenant).entries(AUDIT_SCAN)
        if actor:
            entries = [e for e in entries if e.actor == actor]
        listing = list_page(entries, AUDIT_SORTING, req.params, size=AUDIT_PAGE,
                            keep={"actor": actor})
        rows = [{**e.to_json(), "before": json.dumps(e.before, ensure_ascii=False, indent=1),
                 "after": json.dumps(e.after, ensure_ascii=False, indent=1)}
                for e in listing.rows]
        self.ctx.render(resp, "audit.html", visit=visit, rows=rows, listing=listing,
                        actor=actor, scan=AUDIT_SCAN)


class StaffPage(OfficePage):
    """``GET .../staff``: the accounts; ``POST``: add one (username, role, password)."""

    @page("staff.read")
    def on_get(self, req, resp, visit: Visit) -> None:
        self.show(resp, visit, params=req.params)

    def show(self, resp, visit: Visit, *, errors: dict | None = None, typed: dict | None = None,
             status: int = 200, note: str = "", params: Mapping | None = None) -> None:
        now = self.ctx.clock()
        sorting = Sorting({
            "username": lambda s: s.username, "role": lambda s: s.role,
            "disabled": lambda s: s.disabled, "locked": lambda s: s.locked(now),
            "totp": lambda s: s.totp, "created": lambda s: s.created_at,
        }, default="username")
        listing = list_page(self.ctx.staff(visit.tenant).list(), sorting, params or {})
        self.ctx.render(resp, "staff.html", visit=visit, status=status, now=now,
                        listing=listing, roles=ROLES, errors=errors or {}, typed=typed or {},
                        note=note, iso=iso)

    @page("staff.write")
    def on_post(self, req, resp, visit: Visit) -> None:
        form = visit.form
        username = form.get("username", "").strip()
        try:
            found = self.ctx.staff(visit.tenant).add(username, form.get("role", ""),
                                                     form.get("password", ""))
        except ItemsealError as exc:
            field = getattr(exc, "field", None) or "username"
            self.show(resp, visit, errors={field: str(exc)},
                      typed={"username": username, "role": form.get("role", "")},
                      status=exc.status if exc.status < 500 else 422, params=req.params)
            return
        self.ctx.audit(visit, "staff.add", f"staff/{username}", None, {"role": found.role})
        self.show(resp, visit, note=f"added {username}", params=req.params)


class StaffChange(OfficePage):
    """``POST .../staff/{username}/{change}``: disable, enable, reset (password) or role."""

    CHANGES = ("disable", "enable", "reset", "role")

    def __init__(self, ctx, people: StaffPage) -> None:
        super().__init__(ctx)
        self.people = people

    @page("staff.write")
    def on_post(self, req, resp, visit: Visit, username: str, change: str) -> None:
        if change not in self.CHANGES:
            raise InvalidField("change", f"the change is one of {', '.join(self.CHANGES)}")
        store = self.ctx.staff(visit.tenant)
        before = store.get(username)
        try:
            if change in ("disable", "enable"):
                if username == visit.staff.username and change == "disable":
                    raise InvalidField("disable", "you cannot disable yourself")
                after = store.set_disabled(username, change == "disable")
            elif change == "reset":
                after = store.reset(username, visit.form.get("password", ""),
                                    drop_totp=visit.form.get("drop_totp") == "1")
            else:
                after = store.set_role(username, visit.form.get("role", ""))
        except (InvalidField, LoginRefused) as exc:
            self.people.show(resp, visit, errors={username: str(exc)}, status=422,
                             params=req.params)
            return
        now = self.ctx.clock()
        self.ctx.audit(visit, f"staff.{change}", f"staff/{username}", before.to_json(now),
                       after.to_json(now))
        self.people.show(resp, visit, note=f"{username}: {change}", params=req.params)


class RulesPage(OfficePage):
    """``GET``/``POST .../rules``: the points rules and the tier ladder, as a form.

    The page is an editor, so both methods need ``points.write`` (the
    manager's): support staff read the rules that matter to a member on the
    member's page, and machines keep ``GET /v1/admin/.../points``.
    """

    @page("points.write")
    def on_get(self, req, resp, visit: Visit) -> None:
        self.show(resp, visit)

    def show(self, resp, visit: Visit, *, errors: dict | None = None,
             typed: dict | None = None, status: int = 200, note: str = "") -> None:
        store = SettingsStore(self.ctx.client)
        current = settings_json(store.raw(visit.tenant))
        values = {k: "" if v is None else str(v) for k, v in current.items()}
        values.update(typed or {})
        ladder = tiers_json(store, visit.tenant)
        declared = store.get(visit.tenant).attributes
        values.setdefault("tiers", ", ".join(f"{t['name']}:{t['threshold']}"
                                             for t in ladder["tiers"]))
        values.setdefault("tier_basis", ladder["basis"])
        values.setdefault("attributes", ", ".join(f"{n}:{k}" for n, k in declared.items()))
        self.ctx.render(resp, "rules.html", visit=visit, status=status, names=SETTINGS,
                        values=values, ladder=ladder, errors=errors or {}, note=note)

    @page("points.write")
    def on_post(self, req, resp, visit: Visit) -> None:
        store = SettingsStore(self.ctx.client)
        before = settings_json(store.raw(visit.tenant))
        current = {k: "" if v is None else str(v) for k, v in before.items()}
        changes = {name: visit.form[name].strip() for name in SETTINGS
                   if name in visit.form and visit.form[name].strip() != current.get(name, "")}
        try:
            store.update(visit.tenant, **changes)
        except ItemsealError as exc:
            field = getattr(exc, "field", None) or (next(iter(changes)) if changes else "form")
            self.show(resp, visit, errors={field: str(exc)},
                      typed={k: visit.form.get(k, "") for k in SETTINGS}, status=422)
            return
        after = settings_json(store.raw(visit.tenant))
        if changes:
            self.ctx.audit(visit, "points.update", "points", before, after)
        self.show(resp, visit, note="Saved.")


class RulesPart(OfficePage):
    """``POST .../rules/tiers`` (``tiers.write``: ``tiers`` as ``silver:0, gold:500`` and
    ``tier_basis``) or ``.../rules/attributes`` (``points.write``: ``name:type, ...``, the
    member attributes the office and the API accept; replaces the list)."""

    ACTIONS = {"tiers": "tiers.write", "attributes": "points.write"}

    def __init__(self, ctx, rules: RulesPage) -> None:
        super().__init__(ctx)
        self.rules = rules

    @page(lambda params: RulesPart.ACTIONS.get(params["part"], "tiers.write"))
    def on_post(self, req, resp, visit: Visit, part: str) -> None:
        if part not in self.ACTIONS:
            raise UnknownReport(f"no rules part {part!r}")
        store = SettingsStore(self.ctx.client)
        text = visit.form.get(part, "").strip()
        try:
            if part == "tiers":
                before = tiers_json(store, visit.tenant)
                steps = ",".join(p.strip().replace(" ", "") for p in text.split(",") if p.strip())
                changes = {"tiers": steps}
                if visit.form.get("tier_basis", "").strip():
                    changes["tier_basis"] = visit.form["tier_basis"].strip()
                store.update(visit.tenant, **changes)
                after = tiers_json(store, visit.tenant)
                self.ctx.audit(visit, "tiers.update", "tiers", before, after)
            else:
                before = dict(store.get(visit.tenant).attributes)
                declared = [tuple(a.strip().split(":", 1)) if ":" in a else (a.strip(), "str")
                            for a in text.replace("\n", ",").split(",") if a.strip()]
                after = dict(store.declare_attributes(visit.tenant, declared).attributes)
                self.ctx.audit(visit, "points.attributes", "points", before, after)
        except ItemsealError as exc:
            self.rules.show(resp, visit, errors={part: str(exc)}, status=422,
                            typed={part: text, **({"tier_basis": visit.form.get(
                                "tier_basis", "")} if part == "tiers" else {})})
            return
        self.rules.show(resp, visit, note="Saved.")


class BatchesPage(OfficePage):
    """``GET .../batches``: every batch; ``POST .../batches/{id}/{activate|recall}``."""

    @page("batches.read")
    def on_get(self, req, resp, visit: Visit) -> None:
        self.show(resp, visit, params=req.params)

    def show(self, resp, visit: Visit, *, note: str = "", error: str = "",
             status: int = 200, voided: list | None = None,
             params: Mapping | None = None) -> None:
        found = BatchRegistry(self.ctx.client, visit.tenant, clock=self.ctx.clock).list()
        listing = list_page(found, BATCH_SORTING, params or {})
        self.ctx.render(resp, "batches.html", visit=visit, listing=listing, note=note,
                        error=error, status=status, iso=iso, voided=voided or [])


class BatchChange(OfficePage):
    """``POST .../batches/{id}/activate|recall|void``; ``void`` takes ``codes`` (one a line,
    typed or an uploaded text file) spoiled at printing: they answer ``revoked`` from now on.
    Voiding is a partial recall, so it asks for ``batches.recall`` (the CLI's ``batch void``)."""

    TARGETS = {"activate": (ACTIVE, "batches.activate"), "recall": (RECALLED, "batches.recall"),
               "void": ("", "batches.recall")}

    def __init__(self, ctx, batches: BatchesPage) -> None:
        super().__init__(ctx)
        self.batches = batches

    @page(lambda params: BatchChange.TARGETS.get(params["change"], ("", "batches.recall"))[1])
    def on_post(self, req, resp, visit: Visit, batch_id: str, change: str) -> None:
        if change not in self.TARGETS:
            raise InvalidField("change", "the change is activate or recall")
        registry = BatchRegistry(self.ctx.client, visit.tenant, clock=self.ctx.clock)
        before = batch_json(registry.get(batch_id))
        if change == "void":
            self._void(req, resp, visit, batch_id)
            return
        try:
            _, batch = registry.transition(batch_id, self.TARGETS[change][0])
        except ItemsealError as exc:
            self.batches.show(resp, visit, error=str(exc), status=exc.status,
                              params=req.params)
            return
        self.ctx.audit(visit, f"batch.{change}", f"batch/{batch_id}", before, batch_json(batch))
        self.batches.show(resp, visit, note=f"{batch_id}: {batch.state}", params=req.params)


    def _void(self, req, resp, visit: Visit, batch_id: str) -> None:
        texts = [line.strip() for line in visit.form.get("codes", "").splitlines()
                 if line.strip()]
        if not texts:
            self.batches.show(resp, visit, error="give the spoiled codes, one a line",
                              status=422, params=req.params)
            return
        if len(texts) > MAX_VOID:
            self.batches.show(resp, visit, status=422, params=req.params,
                              error=f"at most {MAX_VOID} codes at a time; split the file")
            return
        outcomes = void_codes(self.ctx.client, self.ctx.key_store, visit.tenant, batch_id,
                              texts)
        tally = Counter(o.outcome for o in outcomes)
        self.ctx.audit(visit, "batch.void", f"batch/{batch_id}", None, dict(tally))
        summary = ", ".join(f"{n} {k}" for k, n in sorted(tally.items()))
        self.batches.show(resp, visit, note=f"{batch_id}: {summary}", voided=outcomes,
                          params=req.params)


def routes(ctx) -> list[tuple[str, object]]:
    people, batches, rules = StaffPage(ctx), BatchesPage(ctx), RulesPage(ctx)
    return [
        ("/{tenant}/reports", ReportsPage(ctx)),
        ("/{tenant}/reports/{name}", ReportPage(ctx)),
        ("/{tenant}/audit", AuditPage(ctx)),
        ("/{tenant}/staff", people),
        ("/{tenant}/staff/{username}/{change}", StaffChange(ctx, people)),
        ("/{tenant}/rules", rules),
        ("/{tenant}/rules/{part}", RulesPart(ctx, rules)),
        ("/{tenant}/batches", batches),
        ("/{tenant}/batches/{batch_id}/{change}", BatchChange(ctx, batches)),
    ]

