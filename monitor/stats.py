"""Summary statistics: percentiles (p50/p75/p90/p99, mean, min, max, n) and uptime."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

PERCENTILES = (50, 75, 90, 99)


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


@dataclass(frozen=True, slots=True)
class Summary:
    n: int
    mean: float
    min: float
    max: float
    p50: float
    p75: float
    p90: float
    p99: float


def summarize(values: Iterable[float | None]) -> Summary | None:
    """Summary of the non-null values; None when there are none."""
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return None
    p50, p75, p90, p99 = (percentile(vals, p) for p in PERCENTILES)
    return Summary(len(vals), sum(vals) / len(vals), vals[0], vals[-1], p50, p75, p90, p99)
