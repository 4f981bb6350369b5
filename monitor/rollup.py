"""Hourly rollups: fold probe results into per-(target, vantage, workload, hour) counts and
histograms, and merge them into what is stored. Pure."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from monitor.results import Outcome, ProbeResult, monitor_fault
from monitor.sketch import LogHistogram, merge_many

ROLLUP_METRICS = ("ttft_ms", "ttfa_ms", "latency_ms", "decode_tps", "e2e_tps", "network_ms")
"""Metrics kept as histograms, over ok probes only (failed probes have partial timings);
`network_ms` is connect + TLS of the probe's fresh connection."""

RollupKey = tuple[tuple[str, str, str], str, str, datetime]
"""(target key (model, provider, route), vantage, workload, hour)."""


def hour_of(ts: datetime) -> datetime:
    return ts.replace(minute=0, second=0, microsecond=0)


def bin_of(ts: datetime, bin_s: int) -> datetime:
    """The start of the `bin_s`-second bin holding `ts` (bins aligned to the hour)."""
    hour = hour_of(ts)
    offset = int((ts - hour).total_seconds()) // bin_s * bin_s
    return hour + timedelta(seconds=offset)


@dataclass(slots=True)
class Rollup:
    n: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    error_kinds: Counter[str] = field(default_factory=Counter)
    histograms: dict[str, LogHistogram] = field(default_factory=dict)
    cost_usd: float = 0.0
    qualities: Counter[str] = field(default_factory=Counter)
    """Quality verdicts of ok probes of a quality workload (`ProbeResult.quality`)."""

    def add(self, r: ProbeResult) -> None:
        self.n += 1
        self.outcomes[r.outcome.value] += 1
        if r.error_kind:
            self.error_kinds[r.error_kind] += 1
        if r.quality:
            self.qualities[r.quality] += 1
        self.cost_usd += r.cost_usd or 0.0
        if r.outcome is Outcome.OK:
            for name in ROLLUP_METRICS:
                value = getattr(r, name)
                if value is not None:
                    self.histograms.setdefault(name, LogHistogram()).add(float(value))

    def merge(self, other: Rollup) -> None:
        self.n += other.n
        self.outcomes.update(other.outcomes)
        self.error_kinds.update(other.error_kinds)
        self.qualities.update(other.qualities)
        self.cost_usd += other.cost_usd
        for name, h in other.histograms.items():
            self.histograms.setdefault(name, LogHistogram()).merge(h)

    def to_columns(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "outcomes": dict(self.outcomes),
            "error_kinds": dict(self.error_kinds),
            "histograms": {k: h.to_json() for k, h in sorted(self.histograms.items())},
            "cost_usd": self.cost_usd,
            "qualities": dict(self.qualities),
        }

    @classmethod
    def from_columns(
        cls,
        n: int,
        outcomes: Mapping[str, int],
        error_kinds: Mapping[str, int],
        histograms: Mapping[str, Any],
        cost_usd: float,
        metrics: Collection[str] | None = None,
        qualities: Mapping[str, int] | None = None,
    ) -> Rollup:
        """From stored columns; `metrics` limits which histograms are decoded."""
        return cls(
            n=n,
            outcomes=Counter(outcomes),
            error_kinds=Counter(error_kinds),
            histograms={
                k: LogHistogram.from_json(v)
                for k, v in histograms.items()
                if metrics is None or k in metrics
            },
            cost_usd=cost_usd,
            qualities=Counter(qualities or {}),
        )


def merge_rollups(parts: Iterable[Rollup], *, histograms: bool = True) -> Rollup:
    """The sum of many rollups, histograms summed in one vectorised pass per metric (or left
    out, when only the counts are wanted)."""
    parts = list(parts)
    out = Rollup()
    for r in parts:
        out.n += r.n
        out.outcomes.update(r.outcomes)
        out.error_kinds.update(r.error_kinds)
        out.qualities.update(r.qualities)
        out.cost_usd += r.cost_usd
    for name in sorted({m for r in parts for m in r.histograms}) if histograms else ():
        out.histograms[name] = merge_many(
            [r.histograms[name] for r in parts if name in r.histograms]
        )
    return out


def fold(results: Iterable[ProbeResult], bin_s: int = 3600) -> dict[RollupKey, Rollup]:
    """Results per (target, vantage, workload, bin); hourly bins are what is stored."""
    out: dict[RollupKey, Rollup] = {}
    for r in results:
        at = hour_of(r.started_at) if bin_s == 3600 else bin_of(r.started_at, bin_s)
        key = (r.target_key, r.vantage, r.workload, at)
        rollup = out.get(key)
        if rollup is None:
            rollup = out[key] = Rollup()
        rollup.add(r)
    return out


def monitor_fault_deltas(failed: Iterable[ProbeResult], kind: str) -> dict[RollupKey, Rollup]:
    """What storing these failed probes again as the monitor's own fault (`monitor_fault`, error
    kind `kind`) does to their hourly rollups: per rollup, the counts that move (negative where
    they leave). The probes stay counted (`n`) and keep their cost; failed probes and
    `monitor_error` ones add no histogram, so none changes."""
    out: dict[RollupKey, Rollup] = {}
    for r in failed:
        fault = monitor_fault(r, kind)
        key = (r.target_key, r.vantage, r.workload, hour_of(r.started_at))
        delta = out.get(key)
        if delta is None:
            delta = out[key] = Rollup()
        delta.outcomes[r.outcome.value] -= 1
        delta.outcomes[fault.outcome.value] += 1
        if r.error_kind:
            delta.error_kinds[r.error_kind] -= 1
        if fault.error_kind:
            delta.error_kinds[fault.error_kind] += 1
    return out


def recounted(stored: Rollup, delta: Rollup) -> Rollup:
    """`stored` with the counts of `delta` added (some may be negative: `monitor_fault_deltas`);
    a count that reaches zero is dropped. Histograms and cost are `stored`'s."""
    return Rollup(
        n=stored.n + delta.n,
        outcomes=stored.outcomes + delta.outcomes,
        error_kinds=stored.error_kinds + delta.error_kinds,
        histograms=stored.histograms,
        cost_usd=stored.cost_usd,
        qualities=stored.qualities,
    )
