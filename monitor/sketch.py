"""Log-bucketed histograms: mergeable, compact, and quantiles within 1 % of the exact ones.

A value v > 0 falls in bucket i = ceil(log(v) / log(γ)) with γ = 1.02, so every bucket spans 2 %
and its representative 2·γ^i / (γ + 1) is within (γ − 1)/(γ + 1) < 1 % of any value in it (the
DDSketch construction). Hourly rollups store one per metric, so long ranges never read raw probes.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

import numpy as np

from monitor.stats import tail_rank

GAMMA = 1.02
_LOG_GAMMA = math.log(GAMMA)
MIN_VALUE = 1e-9  # values at or below this count as zero


def bucket_of(value: float) -> int:
    return math.ceil(math.log(value) / _LOG_GAMMA)


def bucket_value(index: int) -> float:
    return 2.0 * GAMMA**index / (GAMMA + 1.0)


@dataclass(slots=True)
class LogHistogram:
    """Counts of values per log bucket, plus exact n, sum, min and max.

    Buckets are dense: `counts[j]` is bucket `offset + j`. Dense lists merge and serialise much
    faster than dicts, and one hour of one target spans at most a few hundred buckets.
    """

    offset: int = 0
    counts: list[int] = field(default_factory=list)
    zeros: int = 0
    n: int = 0
    total: float = 0.0
    min: float | None = None
    max: float | None = None

    def _span(self, lo: int, hi: int) -> None:
        """Widen the dense range to cover buckets [lo, hi)."""
        if not self.counts:
            self.offset, self.counts = lo, [0] * (hi - lo)
            return
        if lo < self.offset:
            self.counts[:0] = [0] * (self.offset - lo)
            self.offset = lo
        end = self.offset + len(self.counts)
        if hi > end:
            self.counts.extend([0] * (hi - end))

    def add(self, value: float, count: int = 1) -> None:
        if not math.isfinite(value):
            return
        self.n += count
        self.total += value * count
        self.min = value if self.min is None else min(self.min, value)
        self.max = value if self.max is None else max(self.max, value)
        if value <= MIN_VALUE:
            self.zeros += count
            return
        i = bucket_of(value)
        self._span(i, i + 1)
        self.counts[i - self.offset] += count

    def extend(self, values: Iterable[float | None]) -> None:
        for v in values:
            if v is not None:
                self.add(v)

    def merge(self, other: LogHistogram) -> None:
        if other.counts:
            lo, hi = other.offset, other.offset + len(other.counts)
            self._span(lo, hi)
            a = lo - self.offset
            b = a + len(other.counts)
            self.counts[a:b] = [x + y for x, y in zip(self.counts[a:b], other.counts, strict=True)]
        self.zeros += other.zeros
        self.n += other.n
        self.total += other.total
        if other.min is not None:
            self.min = other.min if self.min is None else min(self.min, other.min)
        if other.max is not None:
            self.max = other.max if self.max is None else max(self.max, other.max)

    def buckets(self) -> list[tuple[int, int]]:
        """(bucket index, count) of the non-empty buckets, ascending."""
        return [(self.offset + j, c) for j, c in enumerate(self.counts) if c]

    @property
    def mean(self) -> float | None:
        return self.total / self.n if self.n else None

    def _value_at(self, rank: int, cumulative: list[int]) -> float:
        """The value of the rank-th smallest element (0-based), to bucket precision."""
        if rank < self.zeros:
            return 0.0
        assert self.min is not None
        assert self.max is not None
        j = bisect_right(cumulative, rank - self.zeros)
        if j >= len(cumulative):
            return self.max
        return min(max(bucket_value(self.offset + j), self.min), self.max)

    def quantile(self, p: float) -> float | None:
        """The p-th percentile (0–100), interpolated between ranks as numpy's default does."""
        if self.n == 0:
            return None
        cumulative = list(accumulate(self.counts))
        rank = (self.n - 1) * p / 100.0
        lo = math.floor(rank)
        hi = min(lo + 1, self.n - 1)
        v_lo = self._value_at(lo, cumulative)
        if hi == lo:
            return v_lo
        v_hi = self._value_at(hi, cumulative)
        return v_lo + (v_hi - v_lo) * (rank - lo)

    def tail_quantile(self, p: float, metric: str | None) -> float | None:
        """Tail percentile `p` of `metric`, the bad side (`monitor.stats.tail_rank`)."""
        return self.quantile(tail_rank(p, metric))

    def to_json(self) -> dict[str, Any]:
        return {
            "o": self.offset,
            "c": self.counts,
            "z": self.zeros,
            "n": self.n,
            "s": self.total,
            "min": self.min,
            "max": self.max,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> LogHistogram:
        if not data:
            return cls()
        h = cls(
            offset=int(data.get("o", 0)),
            counts=data["c"] if isinstance(data.get("c"), list) else [],
            zeros=int(data.get("z", 0)),
            n=int(data.get("n", 0)),
            total=float(data.get("s", 0.0)),
            min=data.get("min"),
            max=data.get("max"),
        )
        for i, c in data.get("b", {}).items():  # the sparse form of earlier versions
            h._span(int(i), int(i) + 1)
            h.counts[int(i) - h.offset] += int(c)
        return h


def merge_many(histograms: Sequence[LogHistogram]) -> LogHistogram:
    """One histogram of many (a week of hourly ones): a vectorised sum, about ten times faster
    than merging them one by one."""
    parts = [h for h in histograms if h.n]
    out = LogHistogram()
    if not parts:
        return out
    dense = [h for h in parts if h.counts]
    if dense:
        out.offset, out.counts = _summed(dense)
    out.zeros = sum(h.zeros for h in parts)
    out.n = sum(h.n for h in parts)
    out.total = sum(h.total for h in parts)
    out.min = min(h.min for h in parts if h.min is not None)
    out.max = max(h.max for h in parts if h.max is not None)
    return out


SMALL_MERGE = 8
"""Up to this many histograms are summed with list slices: numpy's conversion of each list
costs more than it saves on a few (a day's cached part and the current hour: 10 against
22 µs for two)."""


def _summed(dense: Sequence[LogHistogram]) -> tuple[int, list[int]]:
    """(offset, counts) of the bucket-wise sum of histograms with buckets."""
    lo = min(h.offset for h in dense)
    hi = max(h.offset + len(h.counts) for h in dense)
    if len(dense) <= SMALL_MERGE:
        first = dense[0]
        counts = [0] * (first.offset - lo) + first.counts
        counts += [0] * (hi - lo - len(counts))
        for h in dense[1:]:
            a = h.offset - lo
            b = a + len(h.counts)
            counts[a:b] = [x + y for x, y in zip(counts[a:b], h.counts, strict=True)]
        return lo, counts
    acc = np.zeros(hi - lo, dtype=np.int64)
    for h in dense:
        start = h.offset - lo
        acc[start : start + len(h.counts)] += h.counts
    return lo, acc.tolist()
