"""Aggregation over hourly rollups: uptime with its accounting, shares, percentiles, series and
changes with confidence intervals. Pure: callers pass rollups, windows and the period.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from monitor.config.sections import FAILURE_OUTCOMES
from monitor.maintenance import Window
from monitor.results import Outcome
from monitor.rollup import Rollup, RollupKey, hour_of, merge_rollups
from monitor.sketch import LogHistogram
from monitor.stats import PERCENTILES, Summary

Z95 = 1.959964


@dataclass(frozen=True, slots=True)
class Accounting:
    """Which outcomes count against uptime, and how maintenance and gaps are treated."""

    failure_outcomes: frozenset[str]
    min_samples: int = 10
    exclude_maintenance: bool = True
    gaps_down: bool = False
    quality_counts: bool = False  # an ok probe whose quality is not ok counts as a failure

    @property
    def excluded_outcomes(self) -> list[str]:
        """The outcomes that count neither as success nor as failure, in Outcome's order."""
        return [o.value for o in Outcome if o is not Outcome.OK and o not in self.failure_outcomes]

    def describe(self) -> list[str]:
        excluded = self.excluded_outcomes
        out = [
            "uptime = ok / (ok + failures) × 100, where failures are: "
            + ", ".join(sorted(self.failure_outcomes)),
            ", ".join(excluded) + " probes are excluded (shown apart)"
            if excluded
            else "no outcome is excluded",
            f"uptime is left blank below {self.min_samples} counted probes",
        ]
        out.append(
            "hours touched by a maintenance window are excluded"
            if self.exclude_maintenance
            else "maintenance windows are counted like any other time"
        )
        out.append(
            "hours with no probes at all count as down"
            if self.gaps_down
            else "hours with no probes are left out (no data is not downtime)"
        )
        if self.quality_counts:
            out.append("an ok probe whose tool call or structured answer is broken is a failure")
        return out


DEFAULT_ACCOUNTING = Accounting(frozenset(FAILURE_OUTCOMES), min_samples=1)
"""The accounting of DESIGN.md section 3 with no sample floor (one-off probe tables)."""


def bad_quality(r: Rollup) -> int:
    """Ok probes of quality workloads whose answer was not usable."""
    return sum(n for q, n in r.qualities.items() if q != "ok")


def quality_error_pct(r: Rollup) -> float | None:
    """The share (%) of quality-checked ok probes whose quality is not ok."""
    checked = sum(r.qualities.values())
    return 100 * bad_quality(r) / checked if checked > 0 else None


def uptime_pct(
    r: Rollup, acct: Accounting, gap_hours: int = 0, data_hours: int = 1
) -> float | None:
    ok = r.outcomes.get("ok", 0)
    failed = sum(n for o, n in r.outcomes.items() if o in acct.failure_outcomes)
    if acct.quality_counts:
        bad = min(ok, bad_quality(r))
        ok, failed = ok - bad, failed + bad
    pct = counted_uptime(ok, failed, acct)
    if pct is not None and acct.gaps_down and gap_hours > 0 and data_hours > 0:
        pct = min(100.0, pct * data_hours / (data_hours + gap_hours))
    return pct


def counted_uptime(ok: int, failed: int, acct: Accounting) -> float | None:
    """Uptime of `ok` successes and `failed` failures (quality already counted, no gaps): None
    below `acct.min_samples`. `uptime_pct`'s rule, for callers that hold the two counts (the
    page's thousand bars)."""
    if ok + failed < acct.min_samples:
        return None
    return min(100.0, 100.0 * ok / (ok + failed))


def share(r: Rollup, outcome: str) -> float | None:
    return r.outcomes.get(outcome, 0) / r.n if r.n else None


def summary_of(h: LogHistogram | None, metric: str | None = None) -> Summary | None:
    """Summary of a histogram of `metric`, tails on the bad side (`monitor.stats.tail_rank`)."""
    if h is None or h.n == 0:
        return None
    q = [h.tail_quantile(p, metric) or 0.0 for p in PERCENTILES]
    assert h.min is not None
    assert h.max is not None
    return Summary(h.n, h.mean or 0.0, h.min, h.max, q[0], q[1], q[2], q[3])


def median_ci(h: LogHistogram | None) -> tuple[float, float, float] | None:
    """(low, median, high): a 95 % confidence interval of the median from order statistics."""
    if h is None or h.n < 6:
        return None
    n = h.n
    half = Z95 * math.sqrt(n) / 2
    lo_rank = max(0, math.floor(n / 2 - half))
    hi_rank = min(n - 1, math.ceil(n / 2 + half))
    lo = h.quantile(100.0 * lo_rank / (n - 1))
    mid = h.quantile(50)
    hi = h.quantile(100.0 * hi_rank / (n - 1))
    assert lo is not None and mid is not None and hi is not None
    return lo, mid, hi


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval of the proportion successes / n, as shares (0–1)."""
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def proportion_diff_ci(ok1: int, n1: int, ok2: int, n2: int) -> tuple[float, float, float] | None:
    """(low, diff, high) of p2 − p1 in percentage points, 95 %: Newcombe's hybrid score interval.

    Each proportion gets its Wilson interval, and the two are combined by the square root of
    the summed squared distances (Newcombe 1998, method 10). Wald's interval needs a variance
    floor at 100 % and still covers too little near it, where uptimes live; this one does not.
    """
    if n1 == 0 or n2 == 0:
        return None
    p1, p2 = ok1 / n1, ok2 / n2
    l1, u1 = wilson_interval(ok1, n1)
    l2, u2 = wilson_interval(ok2, n2)
    d = p2 - p1
    low = d - math.sqrt((p2 - l2) ** 2 + (u1 - p1) ** 2)
    high = d + math.sqrt((u2 - p2) ** 2 + (p1 - l1) ** 2)
    return 100 * low, 100 * d, 100 * high


RowKey = tuple[str, str, str, str]
"""(model, provider, route, workload): one row of the providers table."""


@dataclass(slots=True)
class RowData:
    """One row's rollups: the total, and per bin (an hour, or finer for short periods)."""

    hours: dict[datetime, Rollup] = field(default_factory=dict)
    excluded: set[datetime] = field(default_factory=set)
    vantages: set[str] = field(default_factory=set)
    bin_s: int = 3600

    @property
    def excluded_hours(self) -> int:
        return len({hour_of(b) for b in self.excluded})

    _total: Rollup | None = None

    @property
    def total(self) -> Rollup:
        """Every bin summed (computed once, after all bins were added)."""
        if self._total is None:
            self._total = merge_rollups(self.hours.values())
        return self._total

    def add(self, hour: datetime, vantage: str, r: Rollup) -> None:
        self._total = None
        self.vantages.add(vantage)
        current = self.hours.get(hour)
        if current is None:
            self.hours[hour] = r  # shared, not copied: it is only ever read from here on
            return
        merged = Rollup()  # a second vantage or workload for this hour: merge into a copy
        merged.merge(current)
        merged.merge(r)
        self.hours[hour] = merged

    def data_hours(self) -> set[datetime]:
        return {hour_of(b) for b, r in self.hours.items() if r.n}

    def gap_hours(self, until: datetime) -> int:
        """Hours with no probe at all from the row's first data to `until` (the period's end,
        or now), maintenance hours left out. Before its first probe a target may not have
        existed yet, so those hours are not counted."""
        data = self.data_hours()
        if not data:
            return 0
        excluded = {hour_of(b) for b in self.excluded}
        hour, last = min(data), hour_of(until - timedelta(microseconds=1))
        gaps = 0
        while hour <= last:
            if hour not in data and hour not in excluded:
                gaps += 1
            hour += timedelta(hours=1)
        return gaps

    def by_day(self) -> dict[date, Rollup]:
        days: dict[date, list[Rollup]] = {}
        for hour, r in self.hours.items():
            days.setdefault(hour.date(), []).append(r)
        # Only counts are read from daily rollups (uptime per day): skip the histograms.
        return {day: merge_rollups(rs, histograms=False) for day, rs in days.items()}


def group_rows(
    rollups: Mapping[RollupKey, Rollup],
    start: datetime,
    end: datetime,
    *,
    model: str | None = None,
    windows: Iterable[Window] = (),
    exclude_maintenance: bool = True,
    bin_s: int = 3600,
) -> dict[RowKey, RowData]:
    """Rollups of [start, end) grouped per (model, provider, route, workload), vantages merged.
    Keys' last element is the start of a `bin_s` bin (hourly rollups: 3600)."""
    windows = list(windows)
    rows: dict[RowKey, RowData] = defaultdict(lambda: RowData(bin_s=bin_s))
    excluded: dict[RowKey, set[datetime]] = defaultdict(set)
    for (target, vantage, workload, hour), r in rollups.items():
        overlaps = hour + timedelta(seconds=bin_s) > start and hour < end
        if not overlaps or (model is not None and target[0] != model):
            continue
        key = (*target, workload)
        if exclude_maintenance and any(
            w.covers(target) and w.touches(hour, bin_s) for w in windows
        ):
            excluded[key].add(hour)
            continue
        rows[key].add(hour, vantage, r)
    for key, bins in excluded.items():
        rows[key].excluded = bins
    return dict(rows)
