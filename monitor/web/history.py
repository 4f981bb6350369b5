"""History for the model page: performance over time per target (time buckets with p50–p99)
and uptime bars (one per hour for 24 h, one per day for 30 days). Pure.

Short windows (1 h, 24 h) are bucketed from raw probes, exactly; long ones (7 d, 30 d) from
the hourly rollups' histograms (within 1 % of exact), so 30 days never reads raw probes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from monitor.aggregate import Accounting, counted_uptime
from monitor.alert_model import Incident
from monitor.maintenance import Window
from monitor.results import Outcome, ProbeResult, TargetKey
from monitor.rollup import Rollup, RollupKey, hour_of
from monitor.sketch import LogHistogram, merge_many
from monitor.stats import PERCENTILES, tail_percentile
from monitor.web.views import live_accounting

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_OK, _RATE_LIMITED = Outcome.OK.value, Outcome.RATE_LIMITED.value


@dataclass(frozen=True, slots=True)
class SeriesWindow:
    seconds: int
    bucket_s: int
    raw: bool


WINDOWS: dict[str, SeriesWindow] = {
    "1h": SeriesWindow(3600, 60, True),
    "24h": SeriesWindow(86400, 1200, True),
    "7d": SeriesWindow(7 * 86400, 3600, False),
    "30d": SeriesWindow(30 * 86400, 6 * 3600, False),
}
FINE_BUCKETS_S = (5, 10, 15, 30, 60, 120, 300, 600, 1200)
TARGET_POINTS = 60


def raw_bucket_s(window: SeriesWindow, span_s: float) -> int:
    """Buckets for a raw window whose data spans `span_s` seconds: about TARGET_POINTS of them
    (a monitor started ten minutes ago gets 10 s buckets), never coarser than the window's."""
    for b in FINE_BUCKETS_S:
        if b >= window.bucket_s or span_s / b <= TARGET_POINTS:
            return min(b, window.bucket_s)
    return window.bucket_s


METRICS: dict[str, tuple[str, str]] = {
    "ttft_ms": ("TTFT", "ms"),
    "e2e_tps": ("Throughput", "tokens/s"),
    "latency_ms": ("E2E latency", "ms"),
    "decode_tps": ("Decode speed", "tokens/s"),
}


def bucket_start(ts: datetime, bucket_s: int) -> datetime:
    """The start of the `bucket_s` bucket holding `ts`, buckets aligned to the UTC epoch."""
    seconds = int((ts - EPOCH).total_seconds()) // bucket_s * bucket_s
    return EPOCH + timedelta(seconds=seconds)


Points = dict[TargetKey, dict[datetime, dict[str, Any]]]
"""Per target, per bucket start: {"t", "n", "p50", "p75", "p90", "p99"}."""


def _point(at: datetime, n: int, tails: Iterable[float | None]) -> dict[str, Any]:
    """A bucket: n and its tail percentiles p50, p75, p90, p99 (the slow side)."""
    point: dict[str, Any] = {"t": at.isoformat(), "n": n}
    for p, value in zip(PERCENTILES, tails, strict=True):
        point[f"p{p}"] = None if value is None else round(value, 3)
    return point


def raw_points(
    samples: Iterable[ProbeResult], metric: str, start: datetime, end: datetime, bucket_s: int
) -> Points:
    """The buckets of [start, end) with ok probes, from raw probes: exact percentiles."""
    values: dict[TargetKey, dict[datetime, list[float]]] = {}
    for r in samples:
        v = getattr(r, metric)
        if r.outcome is not Outcome.OK or v is None or not start <= r.started_at < end:
            continue
        at = bucket_start(r.started_at, bucket_s)
        values.setdefault(r.target_key, {}).setdefault(at, []).append(float(v))
    out: Points = {}
    for key, buckets in values.items():
        out[key] = {}
        for at, vs in buckets.items():
            vs.sort()
            tails = [tail_percentile(vs, p, metric) for p in PERCENTILES]
            out[key][at] = _point(at, len(vs), tails)
    return out


def rollup_points(
    rollups: Mapping[RollupKey, Rollup], metric: str, start: datetime, end: datetime, bucket_s: int
) -> Points:
    """The buckets of the hours in [start, end), from hourly histograms (vantages and
    workloads merged); `bucket_s` is a whole number of hours."""
    parts: dict[TargetKey, dict[datetime, list[LogHistogram]]] = {}
    for (key, _v, _w, hour), r in rollups.items():
        h = r.histograms.get(metric)
        if h is None or not h.n or not start <= hour < end:
            continue
        parts.setdefault(key, {}).setdefault(bucket_start(hour, bucket_s), []).append(h)
    out: Points = {}
    for key, buckets in parts.items():
        out[key] = {}
        for at, hs in buckets.items():
            merged = merge_many(hs)
            tails = [merged.tail_quantile(p, metric) for p in PERCENTILES]
            out[key][at] = _point(at, merged.n, tails)
    return out


def series_list(keys: Sequence[TargetKey], parts: Iterable[Points]) -> list[dict[str, Any]]:
    """Per target (in `keys` order), its points of every part, oldest first."""
    merged: dict[TargetKey, dict[datetime, dict[str, Any]]] = {k: {} for k in keys}
    for part in parts:
        for key, points in part.items():
            if key in merged:
                merged[key].update(points)
    return [
        {
            "provider_name": key[1],
            "route": key[2],
            "points": [merged[key][at] for at in sorted(merged[key])],
        }
        for key in keys
    ]


# --- uptime bars --------------------------------------------------------------------------------


@dataclass(slots=True)
class Bar:
    """One hour or day of one target: outcome counts, uptime, maintenance, incidents."""

    start: datetime
    end: datetime
    outcomes: Counter[str] = field(default_factory=Counter)
    maintenance: bool = False
    incidents: list[Incident] = field(default_factory=list)
    ok: int = 0
    failed: int = 0
    rate_limited: int = 0
    other: int = 0
    uptime_pct: float | None = None

    def finish(self, acct: Accounting) -> None:
        """Counts and uptime from the outcomes added (`aggregate.uptime_pct`'s rule: a bar has
        no quality verdicts and no gaps, so its two counts decide)."""
        outcomes = self.outcomes
        self.ok = outcomes.get(_OK, 0)
        self.failed = sum(n for o, n in outcomes.items() if o in acct.failure_outcomes)
        self.rate_limited = outcomes.get(_RATE_LIMITED, 0)
        self.other = sum(outcomes.values()) - self.ok - self.failed - self.rate_limited
        self.uptime_pct = counted_uptime(self.ok, self.failed, acct)

    def to_json(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "ok": self.ok,
            "failed": self.failed,
            "rate_limited": self.rate_limited,
            "other": self.other,
            "uptime": self.uptime_pct,
            "maintenance": self.maintenance,
            "incidents": [i.id for i in self.incidents],
        }


@dataclass(slots=True)
class TargetBars:
    key: TargetKey
    hours: list[Bar]
    days: list[Bar]
    uptime_24h: float | None = None
    uptime_period: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "provider_name": self.key[1],
            "route": self.key[2],
            "uptime_last_24h": self.uptime_24h,
            "uptime_period": self.uptime_period,
            "hours": [b.to_json() for b in self.hours],
            "days": [b.to_json() for b in self.days],
        }


Hourly = Mapping[TargetKey, Mapping[datetime, Counter[str]]]
"""Outcome counts per target and hour (`monitor.storage.web.hourly_outcomes`)."""


@dataclass(slots=True)
class Tally:
    """A day's outcome counts of one target, maintenance hours left out when excluded."""

    outcomes: Counter[str] = field(default_factory=Counter)
    maintenance: bool = False


def _touched(key: TargetKey, hour: datetime, windows: Sequence[Window]) -> bool:
    return any(w.covers(key) and w.touches(hour) for w in windows)


def day_tallies(
    hourly: Hourly, acct: Accounting, windows: Sequence[Window] = ()
) -> dict[TargetKey, dict[datetime, Tally]]:
    """Hourly counts summed per UTC day (keyed by its midnight)."""
    out: dict[TargetKey, dict[datetime, Tally]] = {}
    for key, hours in hourly.items():
        days = out.setdefault(key, {})
        for hour, counts in hours.items():
            tally = days.setdefault(hour.replace(hour=0), Tally())
            if _touched(key, hour, windows):
                tally.maintenance = True
                if acct.exclude_maintenance:
                    continue
            tally.outcomes.update(counts)
    return out


def _bars(first: datetime, step: timedelta, count: int) -> list[Bar]:
    return [Bar(first + i * step, first + (i + 1) * step) for i in range(count)]


def _total(bars: Sequence[Bar], acct: Accounting) -> float | None:
    """Uptime over finished bars: their counts summed (as their outcomes summed would be)."""
    return counted_uptime(sum(b.ok for b in bars), sum(b.failed for b in bars), acct)


def uptime_bars(
    keys: Sequence[TargetKey],
    settled: Mapping[TargetKey, Mapping[datetime, Tally]],
    settled_until: datetime,
    recent: Hourly,
    incidents: Iterable[Incident],
    now: datetime,
    acct: Accounting,
    *,
    days: int = 30,
    windows: Sequence[Window] = (),
) -> list[TargetBars]:
    """Per target: 24 hourly bars ending with the current hour and `days` daily bars (UTC)
    ending today. Days before `settled_until` (a midnight) come from `settled` (`day_tallies`),
    the others and the hourly bars from `recent` (hourly counts since at least then). Uptime
    per bar as the report's bars count it: `acct`'s failure outcomes, a value as soon as one
    probe counts; hours touched by a maintenance window covering the target are marked, and
    left out of uptime when `acct` excludes maintenance."""
    quick = live_accounting(acct)
    this_hour = hour_of(now)
    today = this_hour.replace(hour=0)
    recent_days = day_tallies(recent, acct, windows)
    incidents = list(incidents)
    out = []
    for key in keys:
        tb = TargetBars(
            key,
            _bars(this_hour - timedelta(hours=23), timedelta(hours=1), 24),
            _bars(today - timedelta(days=days - 1), timedelta(days=1), days),
        )
        mine = recent.get(key, {})
        for bar in tb.hours:
            bar.maintenance = _touched(key, bar.start, windows)
            if not (bar.maintenance and acct.exclude_maintenance):
                bar.outcomes.update(mine.get(bar.start, {}))
        for bar in tb.days:
            source = settled if bar.start < settled_until else recent_days
            tally = source.get(key, {}).get(bar.start)
            if tally is not None:
                bar.outcomes.update(tally.outcomes)
                bar.maintenance = tally.maintenance
        for i in incidents:
            if i.target != key:
                continue
            end = i.ended_at or now
            for bar in (*tb.hours, *tb.days):
                if i.started_at < bar.end and end > bar.start:
                    bar.incidents.append(i)
        for bar in (*tb.hours, *tb.days):
            bar.finish(quick)
        tb.uptime_24h = _total(tb.hours, quick)
        tb.uptime_period = _total(tb.days, quick)
        out.append(tb)
    return out
