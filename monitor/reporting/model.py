"""The report's data: plain, JSON-ready values that every format renders. Stable names: the
JSON and CSV columns are documented in README.md."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from monitor.stats import PERCENTILE_CONVENTION, Summary

Metric = Summary
"""p50/p75/p90/p99, mean, min, max and n of one metric over ok probes; the percentiles are
tails on the bad side (high for times, low for tokens/s: `monitor.stats`)."""

UPPER_CONVENTION = "upper"
"""Reports frozen before `percentile_convention` existed: ordinary upper quantiles throughout."""


@dataclass(frozen=True, slots=True)
class ProviderRow:
    model: str
    provider: str
    route: str
    workload: str
    vantages: list[str]
    context_length: int | None
    input_price_per_mtok: float | None
    output_price_per_mtok: float | None
    probes: int
    ok: int
    failures: int
    rate_limited: int
    client_errors: int
    monitor_errors: int
    uptime_pct: float | None
    rate_limited_pct: float | None
    failure_pct: float | None
    ttft_ms: Metric | None
    ttfa_ms: Metric | None
    latency_ms: Metric | None
    decode_tps: Metric | None
    e2e_tps: Metric | None
    error_kinds: dict[str, int]
    cost_usd: float
    hours_with_data: int
    hours_excluded: int
    network_ms: Metric | None = None
    """connect + TLS of each probe's fresh connection (None in reports from before 0003)."""
    tool_call_error_pct: float | None = None
    """Of a tool_call workload's ok probes, the share (%) whose tool call was broken."""
    structured_error_pct: float | None = None
    """Of a structured workload's ok probes, the share (%) whose answer was broken."""

    @property
    def label(self) -> str:
        return f"{self.provider} ({self.route})"


@dataclass(frozen=True, slots=True)
class Change:
    """A metric against the previous period, with a 95 % confidence interval of the change."""

    provider: str
    route: str
    workload: str
    metric: str
    previous: float
    current: float
    delta: float
    ci_low: float
    ci_high: float
    significant: bool


@dataclass(frozen=True, slots=True)
class Incident:
    provider: str
    route: str
    kind: str
    started_at: datetime
    ended_at: datetime | None
    duration_s: float | None
    vantages: list[str]
    error_kinds: dict[str, int]


@dataclass(frozen=True, slots=True)
class PublishedFigure:
    """OpenRouter's figure for an endpoint beside provmon's estimate and its 95 % interval;
    `disagrees` when OpenRouter's lies outside it (None: provmon has too few probes)."""

    published: float
    measured: float | None
    ci_low: float | None
    ci_high: float | None
    disagrees: bool | None


@dataclass(frozen=True, slots=True)
class Published:
    """What OpenRouter published of one endpoint over the period (`polls` catalogue readings),
    beside provmon's numbers for the target that pins it, per workload."""

    provider: str
    route: str
    workload: str
    endpoint: str
    polls: int
    uptime_pct: PublishedFigure | None
    ttft_p50_ms: PublishedFigure | None
    decode_p50_tps: PublishedFigure | None


@dataclass(frozen=True, slots=True)
class CatalogueChange:
    """A change in OpenRouter's endpoints listing of the model (monitor.catalogue.diff)."""

    at: datetime
    endpoint: str
    provider: str
    kind: str
    summary: str
    before: Any
    after: Any


@dataclass(frozen=True, slots=True)
class Point:
    at: datetime
    value: float


@dataclass(slots=True)
class Series:
    """Per provider row label: hourly points (p50 TTFT, p50 decode, uptime), daily uptime."""

    ttft_p50_ms: dict[str, list[Point]] = field(default_factory=dict)
    decode_p50_tps: dict[str, list[Point]] = field(default_factory=dict)
    uptime_hourly: dict[str, list[Point]] = field(default_factory=dict)
    uptime_daily: dict[str, list[Point]] = field(default_factory=dict)
    # Distributions: (value, cumulative share) pairs from the merged histograms.
    ttft_cdf: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    decode_cdf: dict[str, list[tuple[float, float]]] = field(default_factory=dict)


@dataclass(slots=True)
class ModelReport:
    model: str
    period: str
    start: datetime
    end: datetime
    generated_at: datetime
    finished: bool
    rows: list[ProviderRow]
    changes: list[Change]
    incidents: list[Incident]
    series: Series
    cost_usd: float
    vantages: list[str]
    workloads: dict[str, str]
    accounting: list[str]
    previous_period: str | None = None
    frozen: bool = False
    bin_s: int = 3600
    percentile_convention: str = PERCENTILE_CONVENTION
    catalogue_polls: int = 0
    catalogue_changes: list[CatalogueChange] = field(default_factory=list)
    published: list[Published] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = _plain(dataclasses.asdict(self))
        return out


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):  # strict JSON: no NaN, Infinity
        return None
    return value


def _dt(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _metric(d: dict[str, Any] | None) -> Metric | None:
    return None if d is None else Metric(**d)


def report_from_json(d: dict[str, Any]) -> ModelReport:
    """Rebuild a report from its JSON form (frozen reports are stored that way)."""
    rows = [
        ProviderRow(
            **{
                **r,
                **{
                    k: _metric(r[k])
                    for k in (
                        "ttft_ms",
                        "ttfa_ms",
                        "latency_ms",
                        "decode_tps",
                        "e2e_tps",
                        "network_ms",
                    )
                    if k in r
                },
            }
        )
        for r in d["rows"]
    ]
    incidents = [
        Incident(
            **{
                **i,
                "started_at": _dt(i["started_at"]),
                "ended_at": _dt(i["ended_at"]) if i["ended_at"] else None,
            }
        )
        for i in d["incidents"]
    ]
    s = d["series"]

    def points(m: dict[str, list[dict[str, Any]]]) -> dict[str, list[Point]]:
        return {k: [Point(_dt(p["at"]), p["value"]) for p in v] for k, v in m.items()}

    series = Series(
        ttft_p50_ms=points(s["ttft_p50_ms"]),
        decode_p50_tps=points(s["decode_p50_tps"]),
        uptime_hourly=points(s["uptime_hourly"]),
        uptime_daily=points(s["uptime_daily"]),
        ttft_cdf={k: [(a, b) for a, b in v] for k, v in s["ttft_cdf"].items()},
        decode_cdf={k: [(a, b) for a, b in v] for k, v in s["decode_cdf"].items()},
    )

    def figure(f: dict[str, Any] | None) -> PublishedFigure | None:
        return None if f is None else PublishedFigure(**f)

    published = [
        Published(
            **{
                **p,
                **{k: figure(p[k]) for k in ("uptime_pct", "ttft_p50_ms", "decode_p50_tps")},
            }
        )
        for p in d.get("published", [])
    ]
    changes = [CatalogueChange(**{**c, "at": _dt(c["at"])}) for c in d.get("catalogue_changes", [])]
    return ModelReport(
        model=d["model"],
        period=d["period"],
        start=_dt(d["start"]),
        end=_dt(d["end"]),
        generated_at=_dt(d["generated_at"]),
        finished=d["finished"],
        rows=rows,
        changes=[Change(**c) for c in d["changes"]],
        incidents=incidents,
        series=series,
        cost_usd=d["cost_usd"],
        vantages=d["vantages"],
        workloads=d["workloads"],
        accounting=d["accounting"],
        previous_period=d.get("previous_period"),
        frozen=d.get("frozen", False),
        bin_s=d.get("bin_s", 3600),
        # A week frozen before the convention was recorded is shown as it was computed.
        percentile_convention=d.get("percentile_convention", UPPER_CONVENTION),
        catalogue_polls=d.get("catalogue_polls", 0),
        catalogue_changes=changes,
        published=published,
    )
