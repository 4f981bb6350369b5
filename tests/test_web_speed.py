"""The shortcuts the live pages take for speed give exactly what the general paths give. Pure."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from monitor.aggregate import DEFAULT_ACCOUNTING, Accounting, counted_uptime, uptime_pct
from monitor.results import Outcome
from monitor.rollup import Rollup, fold, merge_rollups
from monitor.sketch import SMALL_MERGE, LogHistogram, merge_many
from monitor.status import WindowStats, by_model, target_status
from tests.factories import T0, result

KEY = ("acme/model-1", "Alpha", "direct")
OTHER = ("acme/model-2", "Beta", "direct")


def _probes() -> list:
    return [
        result(started_at=T0 + timedelta(minutes=i), ttft_ms=100.0 + 7 * i, e2e_tps=50.0 + i)
        for i in range(40)
    ] + [result(outcome=Outcome.TIMEOUT, started_at=T0 + timedelta(minutes=50))]


def test_merging_one_histogram_copies_it() -> None:
    h = LogHistogram()
    h.extend([0.0, 1.0, 2.5, 400.0, 401.0])
    merged = merge_many([h, LogHistogram()])
    assert merged == h and merged.counts is not h.counts
    twice = merge_many([h, h])
    assert twice.counts == [2 * c for c in h.counts] and twice.n == 2 * h.n


def test_few_histograms_sum_as_many_do() -> None:
    parts = []
    for i in range(SMALL_MERGE + 3):
        h = LogHistogram()
        h.extend([0.0] * (i % 2) + [10.0 * (1 + i) ** 1.5 + j for j in range(0, 40 * i + 1, 3)])
        parts.append(h)
    for k in range(2, len(parts) + 1):
        few = merge_many(parts[:k])  # SMALL_MERGE and fewer: lists; more: numpy
        by_one = LogHistogram()
        for h in parts[:k]:
            by_one.merge(h)
        assert (few.offset, few.counts, few.zeros, few.n) == (
            by_one.offset,
            by_one.counts,
            by_one.zeros,
            by_one.n,
        )
        assert (few.min, few.max) == (by_one.min, by_one.max)


def test_one_day_rollup_is_read_as_merging_it_would() -> None:
    (rollup,) = fold(_probes()).values()
    now = T0 + timedelta(hours=2)
    hour = T0.replace(minute=0)
    alone = {(KEY, "here", "short", hour): rollup}
    merged = {(KEY, "*", "*", hour): merge_rollups([rollup, Rollup()])}
    a = target_status([KEY], [], alone, {}, now, DEFAULT_ACCOUNTING)
    b = target_status([KEY], [], merged, {}, now, DEFAULT_ACCOUNTING)
    assert a == b and a[0].windows["1d"].ttft_p50_ms is not None


def test_a_target_without_recent_probes_has_empty_short_windows() -> None:
    now = T0 + timedelta(hours=2)
    (s,) = target_status([KEY], [], {}, {}, now, DEFAULT_ACCOUNTING, {"short": "tool_call"})
    assert s.windows["5m"] == s.windows["30m"] == WindowStats()
    assert s.windows["1d"].tool_call_error_pct is None  # no verdicts: none, not 0 %


def test_statuses_by_model_keep_their_order() -> None:
    now = T0 + timedelta(minutes=55)
    statuses = target_status(
        [KEY, OTHER, ("acme/model-1", "Gamma", "direct")],
        _probes(),
        {},
        {},
        now,
        DEFAULT_ACCOUNTING,
    )
    grouped = by_model(statuses)
    assert list(grouped) == ["acme/model-1", "acme/model-2"]
    assert [s.provider for s in grouped["acme/model-1"]] == ["Alpha", "Gamma"]


def test_counted_uptime_is_uptime_pct_of_the_counts() -> None:
    acct = Accounting(DEFAULT_ACCOUNTING.failure_outcomes, min_samples=3)
    for outcomes in (
        {},
        {"ok": 2},
        {"ok": 2, "timeout": 1},
        {"ok": 7, "rate_limited": 4},
        {"timeout": 5},
        {"ok": 1, "server_error": 2, "client_error": 9},
    ):
        c = Counter(outcomes)
        failed = sum(n for o, n in c.items() if o in acct.failure_outcomes)
        want = uptime_pct(Rollup(n=c.total(), outcomes=c), acct)
        assert counted_uptime(c["ok"], failed, acct) == want
