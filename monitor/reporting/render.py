"""Renders a model report as self-contained HTML, GitHub Markdown, CSV and JSON.

Every provider-supplied string (names, error kinds, model ids) is escaped for its format, so a
provider cannot inject markup into a report.
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Callable, Mapping

from monitor.reporting.charts_meta import CHART_TITLES
from monitor.reporting.methodology import methodology_lines
from monitor.reporting.model import Metric, ModelReport, ProviderRow
from monitor.reporting.render_catalogue import sections_html, sections_md
from monitor.reporting.render_csv import render_csv as render_csv


def _num(value: float | None, spec: str = ".0f") -> str:
    return "–" if value is None else format(value, spec)


def _p(m: Metric | None, q: str, spec: str = ".0f") -> str:
    return "–" if m is None else format(getattr(m, q), spec)


def _kinds(row: ProviderRow, limit: int = 4) -> str:
    items = list(row.error_kinds.items())
    text = ", ".join(f"{k} ×{n}" for k, n in items[:limit])
    return text + (f", +{len(items) - limit} more" if len(items) > limit else "")


def _quality(row: ProviderRow) -> float | None:
    """A quality workload's row: its tool_call_error_pct or structured_error_pct."""
    if row.tool_call_error_pct is not None:
        return row.tool_call_error_pct
    return row.structured_error_pct


def table_cells(row: ProviderRow) -> list[str]:
    price = (
        f"${row.input_price_per_mtok:g} / ${row.output_price_per_mtok:g}"
        if row.input_price_per_mtok is not None and row.output_price_per_mtok is not None
        else "–"
    )
    return [
        row.provider,
        row.route,
        row.workload,
        f"{row.context_length:,}" if row.context_length else "–",
        price,
        _num(row.uptime_pct, ".2f"),
        _p(row.ttft_ms, "p50"),
        _p(row.ttft_ms, "p90"),
        _p(row.network_ms, "p50", ".1f"),
        _p(row.decode_tps, "p50", ".1f"),
        _p(row.e2e_tps, "p50", ".1f"),
        _num(row.failure_pct, ".1f"),
        _num(_quality(row), ".1f"),
        _num(row.rate_limited_pct, ".1f"),
        f"{row.ok}/{row.probes}",
        _kinds(row) or "–",
    ]


TABLE_HEADERS = (
    "provider",
    "route",
    "workload",
    "context",
    "price in/out per M",
    "uptime %",
    "TTFT p50 ms",
    "TTFT p90 ms",
    "network p50 ms",
    "decode p50 tok/s",
    "e2e p50 tok/s",
    "errors %",
    "quality errors %",
    "rate-limited %",
    "ok/probes",
    "error kinds",
)


def _change_text(c_metric: str, delta: float) -> str:
    unit = {"uptime_pct": " pp", "ttft_ms_p50": " ms"}.get(c_metric, " tok/s")
    return f"{delta:+.1f}{unit}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "ongoing"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes}m {int(seconds % 60)}s"
    return f"{minutes // 60}h {minutes % 60}m"


# --- HTML ------------------------------------------------------------------------------------

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#111827;
max-width:1100px;margin:24px auto;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid
#e5e7eb;padding-bottom:4px}.sub{color:#6b7280}table{border-collapse:collapse;width:100%;
font-size:12.5px}th,td{padding:5px 7px;border-bottom:1px solid #e5e7eb;text-align:right;
vertical-align:top}th{background:#f9fafb;font-weight:600}td.t,th.t{text-align:left}
.good{color:#15803d}.bad{color:#b91c1c}.flag{font-weight:600}img{max-width:100%;height:auto}
figure{margin:6px 0}ul{margin:4px 0 4px 18px;padding:0}
@media print{body{margin:0;max-width:none}h2{break-after:avoid}table,figure{break-inside:avoid}}
"""


def render_html(report: ModelReport, charts: Mapping[str, bytes]) -> str:
    e = html.escape
    out: list[str] = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>{e(report.model)} — provider report {e(report.period)}</title>",
        '<meta name=viewport content="width=device-width, initial-scale=1">',
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{e(report.model)}</h1>",
        f"<div class=sub>Providers, performance and uptime · {e(report.period)} · "
        f"{e(report.start.strftime('%Y-%m-%d %H:%M'))} – "
        f"{e(report.end.strftime('%Y-%m-%d %H:%M'))} UTC"
        + ("" if report.finished else " · period not finished yet")
        + (" · frozen" if report.frozen else "")
        + f" · vantages: {e(', '.join(report.vantages) or '–')}</div>",
        "<h2>Providers</h2>",
    ]
    if not report.rows:
        out.append("<p>No probes in this period.</p>")
    else:
        out.append("<table><thead><tr>")
        out += [
            f"<th class=t>{e(h)}</th>" if i < 3 or i == 13 else f"<th>{e(h)}</th>"
            for i, h in enumerate(TABLE_HEADERS)
        ]
        out.append("</tr></thead><tbody>")
        for row in report.rows:
            cells = table_cells(row)
            out.append("<tr>")
            for i, cell in enumerate(cells):
                cls = " class=t" if i < 3 or i == 13 else ""
                if i == 5 and row.uptime_pct is not None:
                    cls = f" class={'good' if row.uptime_pct >= 99 else 'bad'}"
                out.append(f"<td{cls}>{e(cell)}</td>")
            out.append("</tr>")
        out.append("</tbody></table>")
    out.append("<h2>Performance</h2>")
    for name in ("performance", "distributions"):
        if name in charts:
            out.append(_figure_html(name, charts[name]))
    out.append("<h2>Uptime</h2>")
    if "uptime" in charts:
        out.append(_figure_html("uptime", charts["uptime"]))
    out.append("<h3>Incidents</h3>")
    if report.incidents:
        out.append(
            "<table><thead><tr><th class=t>provider</th><th class=t>route</th><th class=t>"
            "kind</th><th class=t>start (UTC)</th><th class=t>end</th><th>duration</th>"
            "<th class=t>vantages</th><th class=t>error kinds</th></tr></thead><tbody>"
        )
        for inc in report.incidents:
            kinds = ", ".join(f"{k} ×{n}" for k, n in inc.error_kinds.items())
            out.append(
                f"<tr><td class=t>{e(inc.provider)}</td><td class=t>{e(inc.route)}</td>"
                f"<td class=t>{e(inc.kind)}</td>"
                f"<td class=t>{e(f'{inc.started_at:%Y-%m-%d %H:%M:%S}')}</td>"
                f"<td class=t>{e(f'{inc.ended_at:%Y-%m-%d %H:%M:%S}' if inc.ended_at else '–')}"
                f"</td><td>{e(_duration(inc.duration_s))}</td>"
                f"<td class=t>{e(', '.join(inc.vantages))}</td><td class=t>{e(kinds)}</td></tr>"
            )
        out.append("</tbody></table>")
    else:
        out.append("<p>No incidents in this period.</p>")
    out.append("<h2>Change against the previous period</h2>")
    out.append(_changes_html(report))
    out += sections_html(report)
    out.append("<h2>Methodology</h2>")
    out.append("<ul>" + "".join(f"<li>{e(x)}</li>" for x in methodology_lines(report)) + "</ul>")
    generated = report.generated_at.isoformat(timespec="seconds")
    out.append(f"<p class=sub>Generated by provmon at {e(generated)}.</p></body></html>")
    return "\n".join(out)


def _figure_html(name: str, png: bytes) -> str:
    data = base64.b64encode(png).decode()
    title = html.escape(CHART_TITLES.get(name, name))
    return f'<figure><img alt="{title}" src="data:image/png;base64,{data}"></figure>'


def _changes_html(report: ModelReport) -> str:
    e = html.escape
    if not report.changes:
        return "<p>No previous period with data to compare with.</p>"
    rows = []
    for c in report.changes:
        flag = "beyond noise" if c.significant else "within noise"
        rows.append(
            f"<tr><td class=t>{e(c.provider)}</td><td class=t>{e(c.route)}</td>"
            f"<td class=t>{e(c.workload)}</td><td class=t>{e(c.metric)}</td>"
            f"<td>{c.previous:.1f}</td><td>{c.current:.1f}</td>"
            f"<td{' class=flag' if c.significant else ''}>{e(_change_text(c.metric, c.delta))}</td>"
            f"<td>[{c.ci_low:+.1f}, {c.ci_high:+.1f}]</td><td class=t>{flag}</td></tr>"
        )
    return (
        f"<p class=sub>Against {e(report.previous_period or '–')}; 95 % confidence intervals. "
        "A change is flagged only where the interval excludes no change.</p>"
        "<table><thead><tr><th class=t>provider</th><th class=t>route</th><th class=t>workload"
        "</th><th class=t>metric</th><th>before</th><th>now</th><th>change</th><th>95 % CI</th>"
        "<th class=t></th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


# --- Markdown --------------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>|~])")


def md_escape(text: str) -> str:
    """Escape Markdown and inline-HTML syntax; newlines become spaces (table-safe)."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def render_markdown(report: ModelReport, chart_files: Mapping[str, str]) -> str:
    m = md_escape
    out = [
        f"# {m(report.model)}",
        "",
        f"Providers, performance and uptime · **{m(report.period)}** · "
        f"{report.start:%Y-%m-%d %H:%M} – {report.end:%Y-%m-%d %H:%M} UTC"
        + ("" if report.finished else " · period not finished yet")
        + f" · vantages: {m(', '.join(report.vantages) or '–')}",
        "",
        "## Providers",
        "",
    ]
    if report.rows:
        out.append("| " + " | ".join(TABLE_HEADERS) + " |")
        out.append("|" + "|".join(":--" if i < 3 or i == 13 else "--:" for i in range(14)) + "|")
        for row in report.rows:
            out.append("| " + " | ".join(m(c) for c in table_cells(row)) + " |")
    else:
        out.append("No probes in this period.")
    out += ["", "## Performance", ""]
    out += _md_charts(chart_files, ("performance", "distributions"))
    out += ["## Uptime", ""]
    out += _md_charts(chart_files, ("uptime",))
    out += ["### Incidents", ""]
    if report.incidents:
        out.append("| provider | route | kind | start (UTC) | end | duration | error kinds |")
        out.append("|:--|:--|:--|:--|:--|--:|:--|")
        for i in report.incidents:
            kinds = ", ".join(f"{k} ×{n}" for k, n in i.error_kinds.items())
            end = f"{i.ended_at:%Y-%m-%d %H:%M:%S}" if i.ended_at else "–"
            out.append(
                f"| {m(i.provider)} | {m(i.route)} | {m(i.kind)} | "
                f"{i.started_at:%Y-%m-%d %H:%M:%S} | {end} | {_duration(i.duration_s)} | "
                f"{m(kinds)} |"
            )
    else:
        out.append("No incidents in this period.")
    out += ["", "## Change against the previous period", ""]
    if report.changes:
        out.append(
            f"Against {m(report.previous_period or '–')}, with 95 % confidence intervals; "
            "**bold** where the change is beyond noise."
        )
        out.append("")
        out.append("| provider | route | workload | metric | before | now | change | 95 % CI |")
        out.append("|:--|:--|:--|:--|--:|--:|--:|--:|")
        for c in report.changes:
            delta = m(_change_text(c.metric, c.delta))
            delta = f"**{delta}**" if c.significant else delta
            out.append(
                f"| {m(c.provider)} | {m(c.route)} | {m(c.workload)} | {m(c.metric)} | "
                f"{c.previous:.1f} | {c.current:.1f} | {delta} | "
                f"\\[{c.ci_low:+.1f}, {c.ci_high:+.1f}\\] |"
            )
    else:
        out.append("No previous period with data to compare with.")
    out += sections_md(report, md_escape)
    out += ["", "## Methodology", ""]
    out += [f"- {m(line)}" for line in methodology_lines(report)]
    out += ["", f"Generated by provmon at {report.generated_at.isoformat(timespec='seconds')}.", ""]
    return "\n".join(out)


def _md_charts(chart_files: Mapping[str, str], names: tuple[str, ...]) -> list[str]:
    out = []
    for name in names:
        if name in chart_files:
            out += [f"![{CHART_TITLES.get(name, name)}]({chart_files[name]})", ""]
    return out


# --- CSV and JSON ----------------------------------------------------------------------------


def render_json(report: ModelReport) -> str:
    return json.dumps(report.to_json(), indent=2, sort_keys=False, allow_nan=False) + "\n"


RENDERERS: dict[str, Callable[[ModelReport], str]] = {"csv": render_csv, "json": render_json}
