"""Renders a model report's provider rows as CSV (`providers.csv`), one row per target and
workload; cells a spreadsheet would run as formulas are quoted as text."""

from __future__ import annotations

import csv
import io

from monitor.reporting.model import Metric, ModelReport, ProviderRow

CSV_COLUMNS = (
    "model",
    "period",
    "provider",
    "route",
    "workload",
    "vantages",
    "probes",
    "ok",
    "failures",
    "rate_limited",
    "client_errors",
    "monitor_errors",
    "uptime_pct",
    "rate_limited_pct",
    "failure_pct",
    "tool_call_error_pct",
    "structured_error_pct",
    "ttft_p50_ms",
    "ttft_p75_ms",
    "ttft_p90_ms",
    "ttft_p99_ms",
    "ttft_mean_ms",
    "ttfa_p50_ms",
    "network_p50_ms",
    "latency_p50_ms",
    "latency_p90_ms",
    "decode_p50_tps",
    "decode_p90_tps",
    "e2e_p50_tps",
    "e2e_p90_tps",
    "cost_usd",
    "context_length",
    "input_price_per_mtok",
    "output_price_per_mtok",
    "error_kinds",
)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def csv_row(report: ModelReport, row: ProviderRow) -> dict[str, object]:
    def q(m: Metric | None, name: str) -> float | None:
        return None if m is None else round(float(getattr(m, name)), 3)

    return {
        "model": row.model,
        "period": report.period,
        "provider": row.provider,
        "route": row.route,
        "workload": row.workload,
        "vantages": ";".join(row.vantages),
        "probes": row.probes,
        "ok": row.ok,
        "failures": row.failures,
        "rate_limited": row.rate_limited,
        "client_errors": row.client_errors,
        "monitor_errors": row.monitor_errors,
        "uptime_pct": None if row.uptime_pct is None else round(row.uptime_pct, 4),
        "rate_limited_pct": None
        if row.rate_limited_pct is None
        else round(row.rate_limited_pct, 4),
        "failure_pct": None if row.failure_pct is None else round(row.failure_pct, 4),
        "tool_call_error_pct": _round(row.tool_call_error_pct),
        "structured_error_pct": _round(row.structured_error_pct),
        "ttft_p50_ms": q(row.ttft_ms, "p50"),
        "ttft_p75_ms": q(row.ttft_ms, "p75"),
        "ttft_p90_ms": q(row.ttft_ms, "p90"),
        "ttft_p99_ms": q(row.ttft_ms, "p99"),
        "ttft_mean_ms": q(row.ttft_ms, "mean"),
        "ttfa_p50_ms": q(row.ttfa_ms, "p50"),
        "network_p50_ms": q(row.network_ms, "p50"),
        "latency_p50_ms": q(row.latency_ms, "p50"),
        "latency_p90_ms": q(row.latency_ms, "p90"),
        "decode_p50_tps": q(row.decode_tps, "p50"),
        "decode_p90_tps": q(row.decode_tps, "p90"),
        "e2e_p50_tps": q(row.e2e_tps, "p50"),
        "e2e_p90_tps": q(row.e2e_tps, "p90"),
        "cost_usd": round(row.cost_usd, 6),
        "context_length": row.context_length,
        "input_price_per_mtok": row.input_price_per_mtok,
        "output_price_per_mtok": row.output_price_per_mtok,
        "error_kinds": ";".join(f"{k}:{n}" for k, n in row.error_kinds.items()),
    }


def render_csv(report: ModelReport) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in report.rows:
        values = csv_row(report, row)
        writer.writerow({k: _csv_safe(v) for k, v in values.items()})
    return buf.getvalue()


def _csv_safe(value: object) -> object:
    # A cell starting with = + - @ is a formula in spreadsheets: quote it as text.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return "" if value is None else value
