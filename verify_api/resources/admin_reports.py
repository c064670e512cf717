"""Admin routes for the reports (JSON) and the audit trail."""

from __future__ import annotations

from codegen.store.audit import AuditLog
from verify_api.admin.report_math import Table
from verify_api.admin.reports import Reports
from verify_api.resources.admin import AdminContext, AdminResource
from verify_api.resources.admin_bodies import query_int


def table_json(table: Table, **extra) -> dict:
    return {"report": table.name, "columns": list(table.columns), "rows": table.records(),
            **extra}


class Report(AdminResource):
    """``GET .../reports/{checks|counterfeits|suspicious|tiers|points|sms}``."""

    actions = {"GET": "reports.read"}

    def __init__(self, ctx: AdminContext, name: str) -> None:
        super().__init__(ctx)
        self.name = name

    def on_get(self, req, resp, tenant: str) -> None:
        reports = Reports(self.ctx.client, tenant, key_store=self.ctx.key_store,
                          clock=self.ctx.clock)
        if self.name in ("checks", "counterfeits", "sms"):
            first, last = reports.span(req.get_param("from"), req.get_param("to"))
            span = {"from": first.isoformat(), "to": last.isoformat(),
                    "timezone": reports.timezone.key}
            if self.name == "checks":
                table = reports.checks(first, last, req.get_param("by") or "day")
            elif self.name == "sms":
                table = reports.sms(first, last, req.get_param("by") or "kind")
            else:
                table = reports.counterfeits(first, last)
            resp.media = table_json(table, **span)
        elif self.name == "suspicious":
            table = reports.suspicious(query_int(req.params, "min_checks", 2, 1, 65535),
                                       query_int(req.params, "limit", 50, 1, 1000))
            resp.media = table_json(table)
        elif self.name == "tiers":
            resp.media = table_json(reports.tiers())
        else:
            resp.media = table_json(reports.points())


class Audit(AdminResource):
    actions = {"GET": "audit.read"}

    def on_get(self, req, resp, tenant: str) -> None:
        count = query_int(req.params, "count", 100, 1, 10_000)
        log = AuditLog(self.ctx.client, tenant)
        resp.media = {"entries": [e.to_json() for e in log.entries(count)]}


def routes(ctx: AdminContext) -> list[tuple[str, AdminResource]]:
    names = ("checks", "counterfeits", "suspicious", "tiers", "points", "sms")
    return [*((f"/reports/{name}", Report(ctx, name)) for name in names), ("/audit", Audit(ctx))]
