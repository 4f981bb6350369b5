"""Builds a model's report from hourly rollups, incidents and the config. Pure."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from monitor.aggregate import (
    Accounting,
    RowData,
    RowKey,
    group_rows,
    median_ci,
    proportion_diff_ci,
    quality_error_pct,
    share,
    summary_of,
    uptime_pct,
)
from monitor.maintenance import Window
from monitor.reporting.model import (
    CatalogueChange,
    Change,
    Incident,
    ModelReport,
    Point,
    ProviderRow,
    Series,
)
from monitor.reporting.periods import Period
from monitor.reporting.published import Snapshot, published_rows
from monitor.rollup import Rollup, RollupKey
from monitor.sketch import LogHistogram, bucket_value

CDF_POINTS = 60


@dataclass(frozen=True, slots=True)
class TargetInfo:
    """What the config knows of a target beyond its measurements."""

    context_length: int | None = None
    input_price_per_mtok: float | None = None
    output_price_per_mtok: float | None = None


@dataclass(frozen=True, slots=True)
class Catalogue:
    """The period's catalogue readings of the model (oldest first), the changes they showed,
    and, per OpenRouter target's provider label, (what it pins, the provider's name)."""

    snapshots: Sequence[Snapshot] = ()
    changes: Sequence[CatalogueChange] = ()
    pins: Mapping[str, tuple[str, str]] = field(default_factory=dict)


def _count(r: Rollup, outcomes: Iterable[str]) -> int:
    return sum(r.outcomes.get(o, 0) for o in outcomes)


def provider_row(
    key: RowKey,
    data: RowData,
    acct: Accounting,
    info: TargetInfo | None,
    until: datetime,
    kind: str = "plain",
) -> ProviderRow:
    model, provider, route, workload = key
    t = data.total
    quality = quality_error_pct(t)
    info = info or TargetInfo()
    failures = _count(t, acct.failure_outcomes)
    gap_hours = data.gap_hours(until)
    rl = share(t, "rate_limited")
    return ProviderRow(
        model=model,
        provider=provider,
        route=route,
        workload=workload,
        vantages=sorted(data.vantages),
        context_length=info.context_length,
        input_price_per_mtok=info.input_price_per_mtok,
        output_price_per_mtok=info.output_price_per_mtok,
        probes=t.n,
        ok=t.outcomes.get("ok", 0),
        failures=failures,
        rate_limited=t.outcomes.get("rate_limited", 0),
        client_errors=t.outcomes.get("client_error", 0),
        monitor_errors=t.outcomes.get("monitor_error", 0),
        uptime_pct=uptime_pct(t, acct, gap_hours, len(data.data_hours())),
        rate_limited_pct=None if rl is None else 100 * rl,
        failure_pct=100 * failures / t.n if t.n else None,
        ttft_ms=summary_of(t.histograms.get("ttft_ms"), "ttft_ms"),
        ttfa_ms=summary_of(t.histograms.get("ttfa_ms"), "ttfa_ms"),
        latency_ms=summary_of(t.histograms.get("latency_ms"), "latency_ms"),
        decode_tps=summary_of(t.histograms.get("decode_tps"), "decode_tps"),
        e2e_tps=summary_of(t.histograms.get("e2e_tps"), "e2e_tps"),
        error_kinds=dict(sorted(t.error_kinds.items(), key=lambda kv: -kv[1])),
        cost_usd=t.cost_usd,
        hours_with_data=len(data.hours),
        hours_excluded=data.excluded_hours,
        network_ms=summary_of(t.histograms.get("network_ms")),
        tool_call_error_pct=quality if kind == "tool_call" else None,
        structured_error_pct=quality if kind == "structured" else None,
    )


def cdf(h: LogHistogram | None, points: int = CDF_POINTS) -> list[tuple[float, float]]:
    """(value, share of probes at or below it), thinned to about `points` steps."""
    if h is None or h.n == 0:
        return []
    out: list[tuple[float, float]] = []
    seen = h.zeros
    if seen:
        out.append((0.0, seen / h.n))
    for index, count in h.buckets():
        seen += count
        out.append((bucket_value(index), seen / h.n))
    if len(out) > points:
        step = len(out) / points
        out = [out[int(i * step)] for i in range(points)] + [out[-1]]
    return out


def _uptime_points(hours: Mapping[datetime, Rollup], acct: Accounting) -> list[Point]:
    quiet = Accounting(acct.failure_outcomes, 1, acct.exclude_maintenance, False)
    quiet = dataclasses.replace(quiet, quality_counts=acct.quality_counts)
    out = []
    for at in sorted(hours):
        value = uptime_pct(hours[at], quiet)
        if value is not None:
            out.append(Point(at, value))
    return out


def _changes(
    current: dict[RowKey, RowData], previous: dict[RowKey, RowData], acct: Accounting
) -> list[Change]:
    out: list[Change] = []
    for key, cur in sorted(current.items()):
        prev = previous.get(key)
        if prev is None:
            continue
        _, provider, route, workload = key
        c, p = cur.total, prev.total
        c_ok, p_ok = c.outcomes.get("ok", 0), p.outcomes.get("ok", 0)
        c_n = c_ok + _count(c, acct.failure_outcomes)
        p_n = p_ok + _count(p, acct.failure_outcomes)
        ci = proportion_diff_ci(p_ok, p_n, c_ok, c_n)
        if ci is not None and min(c_n, p_n) >= acct.min_samples:
            lo, d, hi = ci
            out.append(
                Change(
                    provider,
                    route,
                    workload,
                    "uptime_pct",
                    100 * p_ok / p_n,
                    100 * c_ok / c_n,
                    d,
                    lo,
                    hi,
                    lo > 0 or hi < 0,
                )
            )
        for metric in ("ttft_ms", "decode_tps", "e2e_tps"):
            pc = median_ci(p.histograms.get(metric))
            cc = median_ci(c.histograms.get(metric))
            if pc is None or cc is None:
                continue
            # The change is beyond noise when the two medians' 95 % intervals do not overlap.
            out.append(
                Change(
                    provider,
                    route,
                    workload,
                    f"{metric}_p50",
                    pc[1],
                    cc[1],
                    cc[1] - pc[1],
                    cc[0] - pc[2],
                    cc[2] - pc[0],
                    cc[0] > pc[2] or cc[2] < pc[0],
                )
            )
    return out


def build_model_report(
    model: str,
    period: Period,
    rollups: Mapping[RollupKey, Rollup],
    *,
    acct: Accounting,
    now: datetime,
    windows: Sequence[Window] = (),
    incidents: Sequence[Incident] = (),
    info: Mapping[tuple[str, str, str], TargetInfo] | None = None,
    workloads: Mapping[str, str] | None = None,
    bin_s: int = 3600,
    catalogue: Catalogue | None = None,
    kinds: Mapping[str, str] | None = None,
) -> ModelReport:
    """The report of `model` over `period`, compared with the period before it.

    `rollups` are the stored hourly ones, or for a short period bins of `bin_s` seconds folded
    from raw probes (so its time series have more than a few points). `catalogue` holds the
    period's readings of OpenRouter's endpoints listing and the changes they showed. `kinds`
    (workload name → kind) says which rows get a tool-call or structured error share.
    """
    rows_data = group_rows(
        rollups,
        period.start,
        period.end,
        model=model,
        windows=windows,
        exclude_maintenance=acct.exclude_maintenance,
        bin_s=bin_s,
    )
    prev_period = period.previous()
    prev_data = group_rows(
        rollups,
        prev_period.start,
        prev_period.end,
        model=model,
        windows=windows,
        exclude_maintenance=acct.exclude_maintenance,
        bin_s=bin_s,
    )
    info, kinds = info or {}, kinds or {}
    rows = [
        provider_row(
            key, data, acct, info.get(key[:3]), min(period.end, now), kinds.get(key[3], "plain")
        )
        for key, data in rows_data.items()
        if data.total.n
    ]
    rows.sort(key=lambda r: (r.workload, r.ttft_ms.p50 if r.ttft_ms else float("inf")))
    multi_workload = len({k[3] for k in rows_data}) > 1

    def label_of(key: RowKey) -> str:
        return f"{key[1]} ({key[2]})" + (f" [{key[3]}]" if multi_workload else "")

    series = Series()
    for key, data in rows_data.items():
        label = label_of(key)
        days = {
            datetime.combine(d, datetime.min.time(), period.start.tzinfo): r
            for d, r in data.by_day().items()
        }
        series.uptime_daily[label] = _uptime_points(days, acct)
        series.ttft_cdf[label] = cdf(data.total.histograms.get("ttft_ms"))
        series.decode_cdf[label] = cdf(data.total.histograms.get("decode_tps"))
    for key, data in rows_data.items():
        label = label_of(key)
        series.ttft_p50_ms[label] = [
            Point(h, v)
            for h in sorted(data.hours)
            if (v := _p50(data.hours[h].histograms.get("ttft_ms"))) is not None
        ]
        series.decode_p50_tps[label] = [
            Point(h, v)
            for h in sorted(data.hours)
            if (v := _p50(data.hours[h].histograms.get("decode_tps"))) is not None
        ]
        series.uptime_hourly[label] = _uptime_points(data.hours, acct)
    vantages = sorted({v for d in rows_data.values() for v in d.vantages})
    return ModelReport(
        model=model,
        period=period.label,
        start=period.start,
        end=period.end,
        generated_at=now,
        finished=period.finished(now),
        rows=rows,
        changes=_changes(rows_data, prev_data, acct),
        incidents=sorted(
            (
                i
                for i in incidents
                if i.started_at < period.end and (i.ended_at or now) > period.start
            ),
            key=lambda i: i.started_at,
        ),
        series=series,
        cost_usd=sum(r.cost_usd for r in rows),
        vantages=vantages,
        workloads=dict(workloads or {}),
        accounting=acct.describe(),
        previous_period=prev_period.label if prev_data else None,
        bin_s=bin_s,
        catalogue_polls=len(catalogue.snapshots) if catalogue else 0,
        catalogue_changes=list(catalogue.changes) if catalogue else [],
        published=published_rows(rows_data, catalogue.snapshots, catalogue.pins, acct)
        if catalogue
        else [],
    )


def _p50(h: LogHistogram | None) -> float | None:
    return h.quantile(50) if h is not None and h.n else None
