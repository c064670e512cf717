"""The brand manager's dashboard as one HTML page with server-side SVG charts.

Pure rendering: report tables in, markup out. No script and no external
asset, so the page works offline and under a strict Content-Security-Policy;
every value that came from data (product names, regions, labels) goes
through ``html.escape`` before it reaches the page.
"""

from __future__ import annotations

from html import escape

from verify_api.admin.report_math import Table

COLOURS = {
    "genuine": "#2e7d32", "already_verified": "#f9a825", "not_activated": "#6d4c41",
    "recalled": "#8e24aa", "revoked": "#455a64", "counterfeit": "#c62828",
    "mistyped": "#1565c0", "malformed": "#9e9e9e",
}
BAR = "#1565c0"
STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222;background:#fff}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left}
td.n{text-align:right}svg{display:block;margin:.5rem 0}form.out{float:right}
"""


def _e(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def column_chart(
    points: list[tuple[str, int]], *, chart_id: str, title: str, width: int = 640,
    height: int = 220,
) -> str:
    """Vertical bars, one per point (e.g. checks per day), labelled under the axis."""
    top = max((v for _, v in points), default=0) or 1
    pad, base = 30, height - 40
    step = (width - 2 * pad) / max(len(points), 1)
    bars = []
    for i, (label, value) in enumerate(points):
        h = round((base - 10) * value / top, 1)
        x = round(pad + i * step + step * 0.1, 1)
        bars.append(
            f'<rect x="{x}" y="{round(base - h, 1)}" width="{round(step * 0.8, 1)}"'
            f' height="{h}" fill="{BAR}"><title>{_e(label)}: {value}</title></rect>'
        )
        if len(points) <= 16 or i % max(len(points) // 8, 1) == 0:
            bars.append(f'<text x="{x}" y="{base + 14}" font-size="10">{_e(label[5:])}</text>')
    axis = f'<line x1="{pad}" y1="{base}" x2="{width - pad}" y2="{base}" stroke="#444"/>'
    return (
        f'<svg id="{_e(chart_id)}" role="img" aria-label="{_e(title)}" width="{width}"'
        f' height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
        f'<text x="{pad}" y="16" font-size="12">{_e(title)} (max {top})</text>'
        f'{axis}{"".join(bars)}</svg>'
    )


def bar_chart(
    items: list[tuple[str, int]], *, chart_id: str, title: str, width: int = 640,
) -> str:
    """Horizontal bars, one per item (e.g. checks per result), with their counts."""
    row, label_w = 22, 140
    height = 30 + row * max(len(items), 1)
    top = max((v for _, v in items), default=0) or 1
    parts = []
    for i, (label, value) in enumerate(items):
        y = 24 + i * row
        w = round((width - label_w - 60) * value / top, 1)
        colour = COLOURS.get(label, BAR)
        parts.append(
            f'<text x="0" y="{y + 13}" font-size="12">{_e(label)}</text>'
            f'<rect x="{label_w}" y="{y}" width="{w}" height="{row - 6}" fill="{colour}"/>'
            f'<text x="{label_w + w + 4}" y="{y + 13}" font-size="12">{value}</text>'
        )
    return (
        f'<svg id="{_e(chart_id)}" role="img" aria-label="{_e(title)}" width="{width}"'
        f' height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
        f'<text x="0" y="14" font-size="12">{_e(title)}</text>{"".join(parts)}</svg>'
    )


def html_table(table: Table, table_id: str, columns: tuple[str, ...] | None = None) -> str:
    columns = columns or table.columns
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = []
    for record in table.records():
        cells = "".join(
            f'<td class="n">{_e(v)}</td>' if isinstance(v, int | float) else f"<td>{_e(v)}</td>"
            for v in (record[c] for c in columns)
        )
        body.append(f"<tr>{cells}</tr>")
    if not body:
        body.append(f'<tr><td colspan="{len(columns)}">none</td></tr>')
    return f'<table id="{_e(table_id)}"><tr>{head}</tr>{"".join(body)}</table>'


def page(
    tenant: str, title: str, span: tuple[str, str], zone: str, by_day: Table, regions: Table,
    counterfeits: Table, suspicious: Table, *, csrf: str = "",
) -> str:
    """The dashboard: checks over time, results by kind, regions, suspicious codes.

    ``zone`` names the tenant's time zone, whose days the span and the charts count.
    """
    days = [(r["day"], r["checks"]) for r in by_day.records()]
    results = [(name, sum(r[name] for r in by_day.records())) for name in by_day.columns[2:]]
    fakes = {r["region"]: r["counterfeit"] for r in counterfeits.records()}
    region_rows = Table("regions", ("region", "checks", "counterfeit"), [
        (r["region"], r["checks"], fakes.get(r["region"], 0)) for r in regions.records()
    ])
    return _document(
        f"{title} — itemseal",
        f'<form class="out" method="post" action="/admin/{_e(tenant)}/logout">'
        f'<input type="hidden" name="csrf" value="{_e(csrf)}">'
        f'<button type="submit">Log out</button></form>'
        f'<h1>{_e(title)}</h1><p id="span">{_e(span[0])} to {_e(span[1])}'
        f" (days in {_e(zone)})</p>"
        f"<h2>Checks over time</h2>"
        + column_chart(days, chart_id="chart-checks", title="checks per day")
        + "<h2>Results by kind</h2>"
        + bar_chart(results, chart_id="chart-results", title="checks by result")
        + "<h2>Regions</h2>" + html_table(region_rows, "regions")
        + "<h2>Suspicious codes</h2>"
        + html_table(suspicious, "suspicious", ("code", "sku", "checks", "phones", "regions",
                                                "first_region", "risk", "score")),
    )


def login_page(tenant: str, message: str = "", *, csrf: str = "") -> str:
    note = f'<p role="alert">{_e(message)}</p>' if message else ""
    return _document(
        f"{tenant} — itemseal login",
        f"<h1>itemseal — {_e(tenant)}</h1>{note}"
        f'<form method="post" action="/admin/{_e(tenant)}/login">'
        f'<input type="hidden" name="csrf" value="{_e(csrf)}">'
        f'<label>Admin token <input type="password" name="token" id="token"'
        f' autocomplete="off" required></label> <button type="submit" id="login">Log in</button>'
        f"</form>",
    )


def _document(title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
        f"<style>{STYLE}</style></head><body>{body}</body></html>"
    )
