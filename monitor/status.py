"""Live status: each target's state and its 5m / 30m / 1d uptime, latency and throughput
(OpenRouter's windows), plus a per-model summary. Pure."""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from monitor.aggregate import Accounting, uptime_pct
from monitor.aggregate import quality_error_pct as rollup_error_pct
from monitor.results import Outcome, ProbeResult, TargetKey
from monitor.rollup import Rollup, RollupKey, merge_rollups
from monitor.stats import tail_percentile

RAW_WINDOWS = (("5m", 300), ("30m", 1800))
DAY_WINDOW = "1d"


@dataclass(slots=True)
class WindowStats:
    probes: int = 0
    uptime_pct: float | None = None
    ttft_p50_ms: float | None = None
    decode_p50_tps: float | None = None
    e2e_p50_tps: float | None = None
    rate_limited: int = 0
    tool_call_error_pct: float | None = None
    structured_error_pct: float | None = None


@dataclass(slots=True)
class TargetStatus:
    model: str
    provider: str
    route: str
    state: str
    windows: dict[str, WindowStats] = field(default_factory=dict)
    last_outcome: str | None = None
    last_probe_at: datetime | None = None


def _window(r: Rollup, acct: Accounting) -> WindowStats:
    def p50(name: str) -> float | None:
        h = r.histograms.get(name)
        return h.tail_quantile(50, name) if h is not None and h.n else None

    return WindowStats(
        probes=r.n,
        uptime_pct=uptime_pct(r, acct),
        ttft_p50_ms=p50("ttft_ms"),
        decode_p50_tps=p50("decode_tps"),
        e2e_p50_tps=p50("e2e_tps"),
        rate_limited=r.outcomes.get("rate_limited", 0),
    )


def _p50(metric: str, probes: Sequence[ProbeResult]) -> float | None:
    """p50 of `metric` over `probes`, through the one tail definition (`monitor.stats`)."""
    present = sorted(v for p in probes if (v := getattr(p, metric)) is not None)
    return tail_percentile(present, 50, metric) if present else None


def quality_error_pct(
    probes: Iterable[ProbeResult], kinds: Mapping[str, str], kind: str
) -> float | None:
    """Of the ok probes of workloads of `kind` (by `kinds`: workload name → kind), the share
    (%) whose quality is not ok; None when there were none."""
    verdicts = [
        p.quality
        for p in probes
        if p.outcome is Outcome.OK and p.quality is not None and kinds.get(p.workload) == kind
    ]
    if not verdicts:
        return None
    return 100 * sum(v != "ok" for v in verdicts) / len(verdicts)


def rollup_quality_pct(r: Rollup | None) -> float | None:
    return None if r is None else rollup_error_pct(r)


def _raw_window(
    probes: Sequence[ProbeResult], acct: Accounting, kinds: Mapping[str, str]
) -> WindowStats:
    """A short window from raw probes: exact medians, no histograms needed."""
    if not probes:  # what the rest computes for none, without building it (the index's case)
        return WindowStats()
    outcomes = Counter(p.outcome.value for p in probes)
    ok = [p for p in probes if p.outcome is Outcome.OK]
    q = Counter(p.quality for p in ok if p.quality)
    return WindowStats(
        probes=len(probes),
        uptime_pct=uptime_pct(Rollup(n=len(probes), outcomes=outcomes, qualities=q), acct),
        ttft_p50_ms=_p50("ttft_ms", ok),
        decode_p50_tps=_p50("decode_tps", ok),
        e2e_p50_tps=_p50("e2e_tps", ok),
        rate_limited=outcomes.get("rate_limited", 0),
        tool_call_error_pct=quality_error_pct(ok, kinds, "tool_call"),
        structured_error_pct=quality_error_pct(ok, kinds, "structured"),
    )


def target_status(
    targets: Iterable[TargetKey],
    recent: Sequence[ProbeResult],
    day_rollups: Mapping[RollupKey, Rollup],
    states: Mapping[TargetKey, Mapping[str, str]],
    now: datetime,
    acct: Accounting,
    kinds: Mapping[str, str] | None = None,
) -> list[TargetStatus]:
    """`recent`: raw probes of the last 30 minutes; `day_rollups`: the last 24 hours' rollups
    (the current hour's included, so the day window is 24–25 hours); `kinds`: each workload's
    kind, for the quality error shares."""
    kinds = kinds or {}
    quick = Accounting(acct.failure_outcomes, 1, acct.exclude_maintenance, False)
    quick = dataclasses.replace(quick, quality_counts=acct.quality_counts)
    keys = list(dict.fromkeys([*targets, *(r.target_key for r in recent)]))
    by_target: dict[TargetKey, list[ProbeResult]] = defaultdict(list)
    for r in recent:
        by_target[r.target_key].append(r)
    hourly: dict[TargetKey, list[Rollup]] = defaultdict(list)
    verdicts: dict[tuple[TargetKey, str], Rollup] = defaultdict(Rollup)
    for (key, _v, workload, _h), one_hour in day_rollups.items():
        hourly[key].append(one_hour)
        if one_hour.qualities:  # an empty tally reads as no verdict, as a missing one does
            verdicts[key, kinds.get(workload, "plain")].qualities.update(one_hour.qualities)
    day = {key: rs[0] if len(rs) == 1 else merge_rollups(rs) for key, rs in hourly.items()}
    out = []
    for key in keys:
        probes = sorted(by_target.get(key, []), key=lambda r: r.started_at)
        s = TargetStatus(*key, state=_state(states.get(key, {})))
        for name, seconds in RAW_WINDOWS:
            since = now - timedelta(seconds=seconds)
            s.windows[name] = _raw_window(
                [p for p in probes if p.started_at >= since], quick, kinds
            )
        s.windows[DAY_WINDOW] = w = _window(day.get(key, Rollup()), quick)
        w.tool_call_error_pct = rollup_quality_pct(verdicts.get((key, "tool_call")))
        w.structured_error_pct = rollup_quality_pct(verdicts.get((key, "structured")))
        if probes:
            s.last_outcome = probes[-1].outcome.value
            s.last_probe_at = probes[-1].started_at
        out.append(s)
    return out


def _state(by_vantage: Mapping[str, str]) -> str:
    if "*" in by_vantage:
        return by_vantage["*"]
    if not by_vantage:
        return "unknown"
    states = set(by_vantage.values())
    return states.pop() if len(states) == 1 else "mixed"


def by_model(statuses: Iterable[TargetStatus]) -> dict[str, list[TargetStatus]]:
    """The statuses of each model, in their order: one pass, not one per model (the index
    has hundreds)."""
    out: dict[str, list[TargetStatus]] = {}
    for s in statuses:
        out.setdefault(s.model, []).append(s)
    return out


def model_summary(statuses: Sequence[TargetStatus]) -> dict[str, dict[str, Any]]:
    """Per model and window: providers with data, probes, pooled uptime, best p50 TTFT."""
    out: dict[str, dict[str, Any]] = {}
    for model, rows in sorted(by_model(statuses).items()):
        summary: dict[str, Any] = {
            "targets": len(rows),
            "down": sum(s.state == "down" for s in rows),
        }
        for name in (*(n for n, _ in RAW_WINDOWS), DAY_WINDOW):
            ws = [s.windows[name] for s in rows if s.windows[name].probes]
            ups = [w.uptime_pct for w in ws if w.uptime_pct is not None]
            ttfts = [w.ttft_p50_ms for w in ws if w.ttft_p50_ms is not None]
            summary[name] = {
                "providers_with_data": len(ws),
                "probes": sum(w.probes for w in ws),
                "best_uptime_pct": max(ups) if ups else None,
                "best_ttft_p50_ms": min(ttfts) if ttfts else None,
            }
        out[model] = summary
    return out
