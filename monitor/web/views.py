"""The numbers of the live pages: one entry per target in OpenRouter's endpoints shape, and one
row per model for the index. Pure: callers pass the statuses, the raw probes and "now".

The windows are `provmon status`'s (`monitor.status.target_status`): the same probes, the same
uptime rule and the same medians, so the page, the API and the terminal agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from monitor.aggregate import Accounting, uptime_pct
from monitor.catalogue.listing import Endpoint, Percentiles
from monitor.results import Outcome, ProbeResult, TargetKey
from monitor.rollup import Rollup, RollupKey, merge_rollups
from monitor.stats import PERCENTILES, tail_percentile
from monitor.status import TargetStatus, by_model, model_summary
from monitor.web.site import Site

API_STATUSES = ("up", "down", "degraded")


def percentiles(metric: str, values: Iterable[float | None]) -> dict[str, float] | None:
    """{"p50", "p75", "p90", "p99"} of the values, tails on the slow side (`monitor.stats`:
    p90 throughput is the speed 90 % of probes reach or beat); None with no values."""
    present = sorted(v for v in values if v is not None)
    if not present:
        return None
    return {f"p{p}": tail_percentile(present, p, metric) for p in PERCENTILES}


def live_accounting(acct: Accounting) -> Accounting:
    """`provmon status`'s rule for its windows: uptime as soon as one probe counts."""
    return Accounting(acct.failure_outcomes, 1, acct.exclude_maintenance, False)


def page_accounting(acct: Accounting) -> list[str]:
    """The methodology lines of the model page: how its uptime figures are counted."""
    return [
        "uptime = ok ÷ (ok + failures) × 100, where failures are: "
        + ", ".join(sorted(acct.failure_outcomes)),
        "rate_limited, client_error and monitor_error probes count neither way (a bar's hover "
        "shows them)",
        "a window or bar without a counted probe shows – (as provmon status does); reports "
        f"leave uptime blank below {acct.min_samples} counted probes",
        "hours touched by a maintenance window are left out of the bars' uptime (marked)"
        if acct.exclude_maintenance
        else "maintenance windows are counted like any other time",
        "hours without probes are grey: no data is not downtime",
        "percentiles p50/p75/p90/p99 of ok probes; for tokens/s the tails are on the slow side",
    ]


def api_status(state: str) -> str:
    """The alert state as the API names it: up, down, degraded, or unknown."""
    return state if state in API_STATUSES else "unknown"


def _iso(ts: datetime | None) -> str | None:
    return ts.isoformat() if ts is not None else None


def _published(e: Endpoint | None, at: datetime | None) -> dict[str, Any] | None:
    """What OpenRouter published of the endpoint in its latest listing (its own traffic)."""
    if e is None or at is None:
        return None

    def tails(p: Percentiles | None) -> dict[str, float | None] | None:
        return None if p is None else {"p50": p.p50, "p75": p.p75, "p90": p.p90, "p99": p.p99}

    return {
        "tag": e.tag,
        "observed_at": at.isoformat(),
        "uptime_last_30m": e.uptime_last_30m,
        "latency_last_30m": tails(e.latency_last_30m),
        "throughput_last_30m": tails(e.throughput_last_30m),
    }


def endpoint_entry(
    s: TargetStatus,
    site: Site,
    recent: Sequence[ProbeResult],
    now: datetime,
    listing: tuple[datetime, Sequence[Endpoint]] | None = None,
) -> dict[str, Any]:
    """One target as an entry of OpenRouter's `endpoints` list (same names where the meaning
    is the same), plus provmon's own fields. `recent`: this target's probes of the last 30
    minutes (more is fine: the window is cut here, as `provmon status` cuts it); `listing`:
    OpenRouter's latest listing of the model (when and its endpoints), for the facts the
    config does not give and OpenRouter's own figures beside provmon's."""
    since = now - timedelta(minutes=30)
    ok = [p for p in recent if p.outcome is Outcome.OK and p.started_at >= since]
    info = site.info_of((s.model, s.provider, s.route))
    listed = info.listed(listing[1]) if listing else None
    info = info.with_listing(listed)
    w5, w30, day = s.windows["5m"], s.windows["30m"], s.windows["1d"]
    return {
        "name": f"{s.provider} | {s.model}",
        "model_id": s.model,
        "provider_name": s.provider,
        "route": s.route,
        "tag": info.tag,
        "quantization": info.quantization,
        "status": api_status(s.state),
        "context_length": info.context_length,
        "max_completion_tokens": info.max_output_tokens,
        "pricing": {
            "prompt": info.input_price_per_mtok,
            "completion": info.output_price_per_mtok,
        },
        "uptime_last_5m": w5.uptime_pct,
        "uptime_last_30m": w30.uptime_pct,
        "uptime_last_1d": day.uptime_pct,
        "latency_last_30m": percentiles("ttft_ms", (p.ttft_ms for p in ok)),
        "throughput_last_30m": percentiles("e2e_tps", (p.e2e_tps for p in ok)),
        "decode_throughput_last_30m": percentiles("decode_tps", (p.decode_tps for p in ok)),
        "e2e_latency_last_30m": percentiles("latency_ms", (p.latency_ms for p in ok)),
        "tool_call_error_pct_last_30m": w30.tool_call_error_pct,
        "tool_call_error_pct_last_1d": day.tool_call_error_pct,
        "structured_error_pct_last_30m": w30.structured_error_pct,
        "structured_error_pct_last_1d": day.structured_error_pct,
        "probes_last_30m": w30.probes,
        "rate_limited_last_30m": w30.rate_limited,
        "probes_last_1d": day.probes,
        "last_probe_at": _iso(s.last_probe_at),
        "last_outcome": s.last_outcome,
        "openrouter_published": _published(listed, listing[0] if listing else None),
    }


def model_keys(
    model: str,
    site: Site,
    recent: Iterable[ProbeResult] = (),
    rollups: Iterable[RollupKey] = (),
) -> list[TargetKey]:
    """The model's targets: configured ones in config order, then any others with data."""
    keys = list(site.targets_of(model))
    seen = set(keys)
    extra = {r.target_key for r in recent} | {k[0] for k in rollups}
    keys += sorted(k for k in extra - seen if k[0] == model)
    return keys


def endpoints_doc(
    model: str,
    statuses: Sequence[TargetStatus],
    site: Site,
    recent: Sequence[ProbeResult],
    now: datetime,
    listing: tuple[datetime, Sequence[Endpoint]] | None = None,
) -> dict[str, Any]:
    """`GET /api/v1/models/{author}/{slug}/endpoints`."""
    by_target: dict[TargetKey, list[ProbeResult]] = {}
    for r in recent:
        by_target.setdefault(r.target_key, []).append(r)
    endpoints = [
        endpoint_entry(s, site, by_target.get((s.model, s.provider, s.route), []), now, listing)
        for s in statuses
        if s.model == model
    ]
    return {
        "data": {"id": model, "name": model, "endpoints": endpoints},
        "generated_at": now.isoformat(),
    }


def model_rows(
    statuses: Sequence[TargetStatus],
    day_rollups: Mapping[RollupKey, Rollup],
    open_incidents: Mapping[str, int],
    acct: Accounting,
) -> list[dict[str, Any]]:
    """`GET /api/v1/models`: per model its targets, pooled and best uptime over the last day,
    best p50 TTFT and throughput over the last day, targets down, open incidents."""
    summary = model_summary(statuses)
    pooled: dict[str, list[Rollup]] = {}
    for (key, _v, _w, _h), r in day_rollups.items():
        pooled.setdefault(key[0], []).append(r)
    quick = live_accounting(acct)
    grouped = by_model(statuses)
    out = []
    for model, m in summary.items():
        rows = grouped[model]
        speeds = [s.windows["1d"].e2e_p50_tps for s in rows]
        present = [v for v in speeds if v is not None]
        day = m["1d"]
        out.append(
            {
                "id": model,
                "name": model,
                "targets": m["targets"],
                "providers": sorted({s.provider for s in rows}),
                "uptime_last_1d": uptime_pct(
                    merge_rollups(pooled.get(model, []), histograms=False), quick
                ),
                "best_uptime_last_1d": day["best_uptime_pct"],
                "best_ttft_p50_ms_last_1d": day["best_ttft_p50_ms"],
                "best_throughput_p50_tps_last_1d": max(present) if present else None,
                "probes_last_1d": day["probes"],
                "down": m["down"],
                "open_incidents": open_incidents.get(model, 0),
            }
        )
    return out
