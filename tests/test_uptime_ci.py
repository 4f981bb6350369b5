"""The uptime change's confidence interval: Newcombe's hybrid score interval, checked against his
published values and by its coverage on simulated pairs of periods near 99.9 % and 100 %."""

from __future__ import annotations

import math

import numpy as np
import pytest

from monitor.aggregate import Z95, proportion_diff_ci, wilson_interval


def wald(ok1: int, n1: int, ok2: int, n2: int) -> tuple[float, float, float]:
    """The interval provmon used before: Wald's, with a variance floor at 0 and 100 %."""
    p1, p2 = ok1 / n1, ok2 / n2
    v1 = max(p1 * (1 - p1), 0.25 / n1) / n1
    v2 = max(p2 * (1 - p2), 0.25 / n2) / n2
    half = Z95 * math.sqrt(v1 + v2)
    return 100 * (p2 - p1 - half), 100 * (p2 - p1), 100 * (p2 - p1 + half)


@pytest.mark.parametrize(
    ("first", "second", "low", "high"),
    [
        # Newcombe (1998), Statistics in Medicine 17:873, table II, method 10 (first − second).
        ((56, 70), (48, 80), 0.0524, 0.3339),
        ((9, 10), (3, 10), 0.1705, 0.8090),
        ((6, 7), (2, 7), 0.0582, 0.8062),
        ((5, 56), (0, 29), -0.0381, 0.1926),
        ((0, 10), (0, 20), -0.1611, 0.2775),
        ((10, 10), (0, 20), 0.6791, 1.0000),
    ],
)
def test_newcombes_published_intervals(
    first: tuple[int, int], second: tuple[int, int], low: float, high: float
) -> None:
    ci = proportion_diff_ci(*second, *first)  # provmon's difference is current − previous
    assert ci is not None
    assert ci[0] / 100 == pytest.approx(low, abs=6e-5)
    assert ci[2] / 100 == pytest.approx(high, abs=6e-5)
    assert ci[1] / 100 == pytest.approx(first[0] / first[1] - second[0] / second[1])


def test_wilson_interval_at_the_edges() -> None:
    assert wilson_interval(500, 500) == (pytest.approx(1 - 0.0076, abs=1e-4), 1.0)
    low, high = wilson_interval(0, 500)
    assert low == 0.0
    assert high == pytest.approx(0.0076, abs=1e-4)


def test_hundred_against_hundred_is_no_change_but_reflects_the_sample_size() -> None:
    small = proportion_diff_ci(100, 100, 100, 100)
    large = proportion_diff_ci(10_000, 10_000, 10_000, 10_000)
    assert small is not None and large is not None
    assert small[0] < 0 < small[2]
    assert large[0] < 0 < large[2]
    assert small[2] - small[0] > 50 * (large[2] - large[0]) > 0
    assert proportion_diff_ci(0, 0, 5, 5) is None


# True uptimes of two periods and their probe counts: near 99.9 % and 100 %, small and large
# periods, equal and unequal (a target added mid-week).
UPTIMES = [(0.999, 0.999), (0.999, 1.0), (1.0, 0.999), (0.998, 0.999), (0.999, 0.9995), (1.0, 1.0)]
COUNTS = [(300, 300), (2000, 500), (5000, 5000)]
PAIRS = 250  # per setting: 4,500 simulated pairs of periods in all


def test_coverage_near_100_pct_beats_wald() -> None:
    rng = np.random.default_rng(2026)
    coverage: dict[str, list[float]] = {"newcombe": [], "wald": []}
    for p1, p2 in UPTIMES:
        for n1, n2 in COUNTS:
            truth = 100 * (p2 - p1)
            hits = {"newcombe": 0, "wald": 0}
            for ok1, ok2 in zip(
                rng.binomial(n1, p1, PAIRS), rng.binomial(n2, p2, PAIRS), strict=True
            ):
                ci = proportion_diff_ci(int(ok1), n1, int(ok2), n2)
                assert ci is not None
                hits["newcombe"] += ci[0] <= truth <= ci[2]
                w = wald(int(ok1), n1, int(ok2), n2)
                hits["wald"] += w[0] <= truth <= w[2]
            for name, n in hits.items():
                coverage[name].append(n / PAIRS)
    newcombe, old = coverage["newcombe"], coverage["wald"]
    print(
        f"coverage, nominal 95 %: Newcombe worst {min(newcombe):.3f} mean {np.mean(newcombe):.3f};"
        f" Wald worst {min(old):.3f} mean {np.mean(old):.3f}"
    )
    assert min(newcombe) >= 0.93
    assert np.mean(newcombe) >= 0.95
    assert min(old) < 0.90  # what the old interval did near 100 % with a few thousand probes
    assert min(newcombe) > min(old) + 0.05
