"""The HTML of the live pages, server-rendered so the tables work without JavaScript. Pure.

Every string from a provider, a model name or the database goes through `escape` (text and
attribute values alike); links quote their path segments. Nothing inline runs: no `<script>`
body, no `on*` attribute, no `style` attribute (the Content-Security-Policy forbids them), and
the only script is /static/provmon.js, which draws the charts and refreshes the numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from html import escape
from typing import Any
from urllib.parse import quote

from monitor.alert_model import Incident
from monitor.terminal import duration_text
from monitor.web.history import WINDOWS, Bar, TargetBars

DASH = "–"
PERCENTILE_BUTTONS = ("p50", "p75", "p90", "p99")
CHARTS: tuple[tuple[str, str, str], ...] = (
    ("ttft_ms", "TTFT", "ms"),
    ("e2e_tps", "Throughput", "tokens/s"),
    ("latency_ms", "E2E latency", "ms"),
)


def e(value: object) -> str:
    return escape(str(value), quote=True)


def model_path(model: str) -> str:
    return quote(model, safe="/")


def pct(v: float | None) -> str:
    return DASH if v is None else f"{v:.1f}%"


def ms(v: float | None) -> str:
    return DASH if v is None else f"{v:,.0f} ms"


def tps(v: float | None) -> str:
    return DASH if v is None else f"{v:,.1f} tok/s"


def count(v: int | None) -> str:
    return DASH if v is None else f"{v:,}"


def price(v: float | None) -> str:
    return DASH if v is None else f"${v:,.2f}"


def utc(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%d %H:%M:%S UTC")


def ago(ts: datetime, now: datetime) -> str:
    s = max(0, round((now - ts).total_seconds()))
    if s < 120:
        return f"{s} s ago"
    if s < 7200:
        return f"{s // 60} min ago"
    return f"{s // 3600} h ago" if s < 172800 else f"{s // 86400} days ago"


def _value_cell(field: str, value: float | None, text: str) -> str:
    raw = "" if value is None else repr(value)
    return f'<td class="num" data-field="{field}" data-value="{e(raw)}">{e(text)}</td>'


def layout(title: str, body: str, now: datetime, vantage: str, page: str, data: str = "") -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(title)} · provmon</title>"
        '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">'
        '<link rel="stylesheet" href="/static/provmon.css">'
        '<script src="/static/provmon.js" defer></script></head>'
        f'<body data-page="{page}"{data}><header class="top"><a class="brand" href="/">provmon</a>'
        f'<span class="muted">vantage {e(vantage)}</span>'
        f'<span id="updated" class="muted">updated {e(utc(now))}</span></header>'
        f"<main>{body}</main></body></html>"
    )


# --- the index -------------------------------------------------------------------------------


def index_rows(models: Sequence[dict[str, Any]]) -> str:
    if not models:
        return '<tr><td colspan="7">No models configured or measured yet.</td></tr>'
    out = []
    for m in models:
        providers = ", ".join(m["providers"])
        out.append(
            f'<tr data-model="{e(m["id"])}">'
            f'<td><a href="/models/{e(model_path(m["id"]))}">{e(m["name"])}</a></td>'
            f'<td class="num">{m["targets"]}</td><td>{e(providers)}</td>'
            + _value_cell("uptime_last_1d", m["uptime_last_1d"], pct(m["uptime_last_1d"]))
            + _value_cell(
                "best_ttft_p50_ms_last_1d",
                m["best_ttft_p50_ms_last_1d"],
                ms(m["best_ttft_p50_ms_last_1d"]),
            )
            + _value_cell(
                "best_throughput_p50_tps_last_1d",
                m["best_throughput_p50_tps_last_1d"],
                tps(m["best_throughput_p50_tps_last_1d"]),
            )
            + f'<td class="num{" bad" if m["open_incidents"] else ""}">{m["open_incidents"]}</td>'
            "</tr>"
        )
    return "".join(out)


def index_page(models: Sequence[dict[str, Any]], now: datetime, vantage: str) -> str:
    body = (
        "<h1>Monitored models</h1>"
        '<p class="sub">Measured by this monitor. Uptime over the last day, all providers '
        "pooled; TTFT and throughput: the best provider's median over the last day. "
        '<a href="/api/v1/models">JSON</a></p>'
        '<div class="scroll"><table class="models"><thead><tr><th>Model</th>'
        "<th>Targets</th><th>Providers</th><th>Uptime 1d</th><th>Best TTFT p50</th>"
        "<th>Best throughput p50</th><th>Open incidents</th></tr></thead>"
        f'<tbody id="models-body" data-live="1">{index_rows(models)}</tbody></table></div>'
    )
    return layout("Models", body, now, vantage, "index")


# --- the model page --------------------------------------------------------------------------

PROVIDER_HEADERS = (
    "Provider",
    "Route",
    "Endpoint",
    "Context",
    "Max output",
    "Price in / out ($/M tokens)",
    "Status",
    "Uptime 30m",
    "Uptime 1d",
    "TTFT p50",
    "Throughput p50",
    "Last probe",
)


QUALITY_COLUMNS = (
    ("tool_call_error_pct_last_1d", "Tool-call errors 1d"),
    ("structured_error_pct_last_1d", "Structured errors 1d"),
)


def quality_columns(endpoints: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    """(field, header) of each quality share some target has a value of: none, and the table
    is the one without quality probes."""
    return [c for c in QUALITY_COLUMNS if any(ep[c[0]] is not None for ep in endpoints)]


def endpoint_text(tag: str | None, quantization: str | None) -> str:
    """`deepinfra/fp8`, or the tag and the quantization when the tag does not name it."""
    if tag and quantization and not tag.endswith(f"/{quantization}"):
        return f"{tag} · {quantization}"
    return tag or quantization or DASH


def provider_rows(endpoints: Sequence[dict[str, Any]], now: datetime) -> str:
    if not endpoints:
        return f'<tr><td colspan="{len(PROVIDER_HEADERS)}">No targets.</td></tr>'
    quality = quality_columns(endpoints)
    out = []
    for ep in endpoints:
        tag = endpoint_text(ep["tag"], ep["quantization"])
        p = ep["pricing"]
        prices = (
            DASH
            if p["prompt"] is None and p["completion"] is None
            else f"{price(p['prompt'])} / {price(p['completion'])}"
        )
        status = ep["status"]
        latency = (ep["latency_last_30m"] or {}).get("p50")
        speed = (ep["throughput_last_30m"] or {}).get("p50")
        last = ep["last_probe_at"]
        last_at = datetime.fromisoformat(last) if last else None
        last_text = ago(last_at, now) if last_at else DASH
        last_title = utc(last_at) if last_at else ""
        out.append(
            f'<tr data-provider="{e(ep["provider_name"])}" data-route="{e(ep["route"])}">'
            f'<td class="provider">{e(ep["provider_name"])}</td><td>{e(ep["route"])}</td>'
            f'<td>{e(tag)}</td><td class="num">{e(count(ep["context_length"]))}</td>'
            f'<td class="num">{e(count(ep["max_completion_tokens"]))}</td>'
            f'<td class="num">{e(prices)}</td>'
            f'<td data-field="status"><span class="status s-{e(status)}">'
            f"{e(status.upper())}</span></td>"
            + _value_cell("uptime_last_30m", ep["uptime_last_30m"], pct(ep["uptime_last_30m"]))
            + _value_cell("uptime_last_1d", ep["uptime_last_1d"], pct(ep["uptime_last_1d"]))
            + _value_cell("latency_last_30m.p50", latency, ms(latency))
            + _value_cell("throughput_last_30m.p50", speed, tps(speed))
            + "".join(_value_cell(f, ep[f], pct(ep[f])) for f, _ in quality)
            + f'<td data-field="last_probe_at" data-value="{e(last or "")}" '
            f'title="{e(last_title)}">{e(last_text)}</td>'
            "</tr>"
        )
    return "".join(out)


def _uptime_class(bar: Bar) -> str:
    if bar.uptime_pct is None:
        return "u-maint" if bar.maintenance else "u-none"
    for floor, name in ((99.5, "u-100"), (98, "u-98"), (95, "u-95"), (90, "u-90")):
        if bar.uptime_pct >= floor:
            return name
    return "u-low"


def _bar_title(bar: Bar, hourly: bool) -> str:
    when = (
        f"{bar.start.strftime('%Y-%m-%d %H:%M')}–{bar.end.strftime('%H:%M')} UTC"
        if hourly
        else f"{bar.start.strftime('%Y-%m-%d')} (UTC)"
    )
    parts = [f"{when}: uptime {pct(bar.uptime_pct)}"]
    parts.append(f"ok {bar.ok}, failed {bar.failed}, rate-limited {bar.rate_limited}")
    if bar.other:
        parts.append(f"other (client or monitor errors) {bar.other}")
    if bar.maintenance:
        parts.append("maintenance window")
    for i in bar.incidents:
        state = "open" if i.ended_at is None else f"{duration_text(i.duration_s or 0)}"
        parts.append(f"incident #{i.id} {i.kind.value} from {i.started_at:%m-%d %H:%M} ({state})")
    return "\n".join(parts)


def bars_svg(bars: Sequence[Bar], hourly: bool) -> str:
    width, gap = 10, 2
    total = len(bars) * (width + gap) - gap
    rects = "".join(
        f'<rect x="{i * (width + gap)}" y="0" width="{width}" height="24" rx="2" '
        f'class="{_uptime_class(b)}{" has-incident" if b.incidents else ""}">'
        f"<title>{e(_bar_title(b, hourly))}</title></rect>"
        for i, b in enumerate(bars)
    )
    label = "hourly" if hourly else "daily"
    return (
        f'<svg class="bars" viewBox="0 0 {total} 24" width="{total}" height="24" role="img" '
        f'aria-label="{label} uptime bars">{rects}</svg>'
    )


def uptime_rows(bars: Sequence[TargetBars]) -> str:
    if not bars:
        return '<tr><td colspan="5">No targets.</td></tr>'
    return "".join(
        f'<tr data-provider="{e(tb.key[1])}" data-route="{e(tb.key[2])}">'
        f'<td class="provider">{e(tb.key[1])} <span class="muted">{e(tb.key[2])}</span></td>'
        f"<td>{bars_svg(tb.hours, True)}</td>"
        + _value_cell("uptime_last_24h", tb.uptime_24h, pct(tb.uptime_24h))
        + f"<td>{bars_svg(tb.days, False)}</td>"
        + _value_cell("uptime_period", tb.uptime_period, pct(tb.uptime_period))
        + "</tr>"
        for tb in bars
    )


def incident_rows(incidents: Iterable[Incident], now: datetime) -> str:
    out = []
    for i in incidents:
        _, provider, route = i.target or ("", "(monitor)", DASH)
        end = i.ended_at or now
        duration = duration_text((end - i.started_at).total_seconds())
        kinds = ", ".join(
            f"{k} ×{n}" for k, n in sorted(i.error_kinds.items(), key=lambda x: -x[1])
        )
        state = "open" if i.ended_at is None else f"resolved {utc(i.ended_at)}"
        out.append(
            f'<tr class="{"open" if i.ended_at is None else "resolved"}">'
            f"<td>#{i.id}</td><td>{e(provider)}</td><td>{e(route)}</td>"
            f"<td>{e(i.kind.value)}</td><td>{e(utc(i.started_at))}</td>"
            f'<td class="num">{e(duration + ("+" if i.ended_at is None else ""))}</td>'
            f"<td>{e(state)}</td><td>{e(kinds or DASH)}</td></tr>"
        )
    return "".join(out) or '<tr><td colspan="8">No incidents in this period.</td></tr>'


def _controls(window: str) -> str:
    windows = "".join(
        f'<button type="button" data-window="{w}" aria-pressed="{str(w == window).lower()}">'
        f"{w}</button>"
        for w in WINDOWS
    )
    pcts = "".join(
        f'<button type="button" data-pct="{p}" aria-pressed="{str(p == "p50").lower()}">'
        f"{p}</button>"
        for p in PERCENTILE_BUTTONS
    )
    return (
        f'<div class="controls" id="perf-controls" hidden><span class="muted">Window</span>'
        f'{windows}<span class="muted">Percentile</span>{pcts}</div>'
    )


def model_page(
    model: str,
    endpoints: Sequence[dict[str, Any]],
    bars: Sequence[TargetBars],
    incidents: Sequence[Incident],
    *,
    now: datetime,
    vantage: str,
    days: int,
    accounting: Sequence[str],
    refresh_s: float,
    window: str = "24h",
) -> str:
    """`window`: the performance charts' window shown first."""
    name = e(model)
    path = model_path(model)
    api = f"/api/v1/models/{path}"
    charts = "".join(
        f'<figure class="chart" data-metric="{metric}" data-unit="{unit}">'
        f'<figcaption>{label} <span class="muted">({unit})</span></figcaption>'
        '<div class="plot"></div></figure>'
        for metric, label, unit in CHARTS
    )
    method = "".join(f"<li>{e(line)}</li>" for line in accounting)
    quality = quality_columns(endpoints)
    headers = [*PROVIDER_HEADERS[:-1], *(h for _, h in quality), PROVIDER_HEADERS[-1]]
    body = (
        f"<h1>{name}</h1>"
        f'<p class="sub">{len(endpoints)} targets, measured by this monitor · '
        f'<a href="{e(api)}/endpoints">endpoints JSON</a> · '
        f'<a href="{e(api)}/uptime?days={days}">uptime JSON</a></p>'
        f'<section id="providers"><h2>Providers for {name}</h2>'
        '<div class="scroll"><table class="providers"><thead id="providers-head" data-live="1">'
        "<tr>"
        + "".join(f"<th>{h}</th>" for h in headers)
        + f'</tr></thead><tbody id="providers-body" data-live="1">{provider_rows(endpoints, now)}'
        "</tbody></table></div>"
        '<p class="note">Uptime = ok ÷ (ok + failures); rate-limited, client-error and monitor '
        "probes are left out. TTFT and throughput: the median over the last 30 minutes of ok "
        "probes; throughput is output tokens ÷ latency. Status is the alert state."
        + (
            " Tool-call and structured errors: of the last day's ok probes of those quality "
            "workloads, the share whose answer was broken (not counted as downtime)."
            if quality
            else ""
        )
        + "</p></section>"
        f'<section id="performance"><h2>Performance for {name}</h2>{_controls(window)}'
        f'<div class="charts" id="charts" data-api="{e(api)}" data-window="{e(window)}">'
        f"{charts}</div>"
        '<p class="note">Tail percentiles point at the slow side: p90 TTFT is the time 90 % '
        "of probes beat, p90 throughput the speed 90 % of probes reach.</p>"
        f'<noscript><p>The charts need JavaScript; their numbers are at <a href="{e(api)}'
        '/series?metric=ttft_ms&amp;window=24h">the series API</a>.</p></noscript></section>'
        f'<section id="uptime"><h2>Uptime stats for {name}</h2>'
        '<p class="legend"><span class="key u-100"></span>≥ 99.5 % <span class="key u-98">'
        '</span>≥ 98 % <span class="key u-95"></span>≥ 95 % <span class="key u-90"></span>'
        '≥ 90 % <span class="key u-low"></span>&lt; 90 % <span class="key u-none"></span>'
        'no data <span class="key u-maint"></span>maintenance · hover a bar for its counts '
        "and incidents</p>"
        '<div class="scroll"><table class="uptime"><thead><tr><th>Provider</th>'
        f"<th>Last 24 hours (hourly)</th><th>24 h</th><th>Last {days} days (daily)</th>"
        f"<th>{days} d</th></tr></thead>"
        f'<tbody id="uptime-body" data-live="1">{uptime_rows(bars)}</tbody></table></div>'
        "</section>"
        '<section id="incidents"><h2>Incidents</h2><div class="scroll"><table class="incidents">'
        "<thead><tr><th>#</th><th>Provider</th><th>Route</th><th>Kind</th><th>Started</th>"
        "<th>Duration</th><th>State</th><th>Error kinds</th></tr></thead>"
        f'<tbody id="incidents-body" data-live="1">{incident_rows(incidents, now)}</tbody>'
        "</table></div></section>"
        '<section id="methodology"><h3>How these numbers are measured</h3>'
        "<p>Each probe is one streamed chat completion with a unique prompt, sent by this "
        "monitor on a schedule, on a fresh connection. TTFT: request sent → first content, "
        "reasoning or tool-call token. E2E latency: request sent → end of stream. Throughput: "
        "output tokens ÷ e2e latency; decode speed (API only): tokens after the first ÷ the "
        "time they took. Windows of 5 and 30 minutes use raw probes; a day and longer use "
        "hourly rollups (percentiles within 1 %). The numbers are this monitor's, from where "
        f"it runs; OpenRouter's own figures come from its traffic.</p><ul>{method}</ul></section>"
    )
    data = f' data-model="{name}" data-refresh-s="{refresh_s:g}"'
    return layout(model, body, now, vantage, "model", data)


def error_page(status: int, message: str, now: datetime, vantage: str) -> str:
    body = f'<h1>{status}</h1><p>{e(message)}</p><p><a href="/">All models</a></p>'
    return layout(str(status), body, now, vantage, "error")
