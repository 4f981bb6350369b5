"""Summary statistics: percentiles (p50/p75/p90/p99, mean, min, max, n) and which way tails point.

Tails point at the bad side, as OpenRouter's do: pN of a metric is the value that N % of probes
match or beat. For times (TTFT, latency) that is the ordinary N-th percentile, the high tail; for
speeds (tokens/s) it is the (100 − N)-th, the low tail, so p90 throughput ≤ p50 throughput.
`tail_rank` is that one definition; raw values (`summarize`) and histograms
(`LogHistogram.tail_quantile`, `aggregate.summary_of`) both go through it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

PERCENTILES = (50, 75, 90, 99)

HIGHER_IS_BETTER = frozenset({"decode_tps", "e2e_tps"})
"""Metrics where more is better: their tail percentiles are the low tail."""

PERCENTILE_CONVENTION = "tail"
"""Recorded in every report's JSON: its percentiles point at the bad side (see module doc).
Reports frozen before this convention carry none and had ordinary upper quantiles throughout."""


def tail_rank(p: float, metric: str | None) -> float:
    """The ordinary percentile rank (0–100) behind tail percentile `p` of `metric`."""
    return 100.0 - p if metric in HIGHER_IS_BETTER else p


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default) over sorted values."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    if len(sorted_values) == 1:
        return float(sorted_values[0])
    rank = (len(sorted_values) - 1) * p / 100.0
    lo = math.floor(rank)
    hi = min(lo + 1, len(sorted_values) - 1)
    frac = rank - lo
    return float(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * frac)


def tail_percentile(sorted_values: Sequence[float], p: float, metric: str | None) -> float:
    """Tail percentile `p` of `metric` over sorted values: the value p % of them match or beat."""
    return percentile(sorted_values, tail_rank(p, metric))


@dataclass(frozen=True, slots=True)
class Summary:
    """One metric's summary; p50–p99 are tail percentiles (the bad side, see the module doc)."""

    n: int
    mean: float
    min: float
    max: float
    p50: float
    p75: float
    p90: float
    p99: float


def summarize(values: Iterable[float | None], metric: str | None = None) -> Summary | None:
    """Summary of the non-null values of `metric`; None when there are none.

    `metric` (a ProbeResult field name) sets which way the tails point; None means a time.
    """
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return None
    p50, p75, p90, p99 = (tail_percentile(vals, p, metric) for p in PERCENTILES)
    return Summary(len(vals), sum(vals) / len(vals), vals[0], vals[-1], p50, p75, p90, p99)
