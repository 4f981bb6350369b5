"""Tail percentiles point at the bad side (high for times, low for tokens/s), checked against
numpy from raw probes, from rollup histograms, in every report format, and for frozen weeks."""

from __future__ import annotations

import csv
import io
import json
import random
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from monitor.aggregate import Accounting, summary_of
from monitor.config import parse_config
from monitor.reporting.build import build_model_report
from monitor.reporting.job import make_reports
from monitor.reporting.methodology import methodology_lines
from monitor.reporting.model import report_from_json
from monitor.reporting.periods import parse_week
from monitor.reporting.render import render_csv, render_json, render_markdown
from monitor.results import ProbeResult
from monitor.rollup import Rollup, fold
from monitor.stats import HIGHER_IS_BETTER, PERCENTILES, summarize
from monitor.storage.reports import freeze_report
from monitor.storage.store import Store
from tests.factories import result

W47 = parse_week("2026-W47")
AFTER_W47 = W47.end + timedelta(days=2)
ACCT = Accounting(frozenset({"server_error", "timeout"}), min_samples=1)
METRICS = ("ttft_ms", "ttfa_ms", "latency_ms", "decode_tps", "e2e_tps")


def probes(n: int = 3000, seed: int = 90) -> list[ProbeResult]:
    """A skewed week of one target: mostly fast, a slow tenth (low speeds, long TTFTs)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        slow = rng.random() < 0.1
        ttft = rng.lognormvariate(6.8 if slow else 5.3, 0.35)
        out.append(
            result(
                started_at=W47.start + timedelta(seconds=200 * i),
                ttft_ms=ttft,
                ttfa_ms=ttft * 1.1,
                latency_ms=ttft + rng.uniform(500, 1500),
                decode_tps=rng.lognormvariate(3.0 if slow else 4.3, 0.2),
                e2e_tps=rng.uniform(5, 20) if slow else rng.uniform(40, 90),
            )
        )
    return out


def expected(values: list[float], metric: str, p: int) -> float:
    """Independently: numpy's percentile, at 100 − p for speeds (the low tail)."""
    rank = 100 - p if metric in ("decode_tps", "e2e_tps") else p
    return float(np.percentile(np.array(values), rank))


def test_the_direction_table_names_the_speeds() -> None:
    assert frozenset({"decode_tps", "e2e_tps"}) == HIGHER_IS_BETTER


@pytest.mark.parametrize("metric", METRICS)
def test_tail_percentiles_from_raw_probes(metric: str) -> None:
    values = [float(getattr(r, metric)) for r in probes()]
    s = summarize(values, metric)
    assert s is not None
    for p in PERCENTILES:
        assert getattr(s, f"p{p}") == pytest.approx(expected(values, metric, p), rel=1e-12)
    assert (s.n, s.min, s.max) == (len(values), min(values), max(values))
    tails = [s.p50, s.p75, s.p90, s.p99]
    # Speeds fall and times rise along the tail, as in OpenRouter's own example.
    assert tails == sorted(tails, reverse=metric in ("decode_tps", "e2e_tps"))


@pytest.mark.parametrize("metric", METRICS)
def test_tail_percentiles_from_rollup_histograms(metric: str) -> None:
    ps = probes()
    hours = fold(ps)
    assert len(hours) > 100
    merged = Rollup()
    for r in hours.values():
        merged.merge(r)
    s = summary_of(merged.histograms[metric], metric)
    assert s is not None
    values = [float(getattr(r, metric)) for r in ps]
    for p in PERCENTILES:
        assert getattr(s, f"p{p}") == pytest.approx(expected(values, metric, p), rel=0.01)


def test_every_report_format_carries_the_tail_percentiles() -> None:
    ps = probes()
    report = build_model_report("acme/model-1", W47, fold(ps), acct=ACCT, now=AFTER_W47)
    (row,) = csv.DictReader(io.StringIO(render_csv(report)))
    data = json.loads(render_json(report))
    assert data["percentile_convention"] == "tail"
    (jrow,) = data["rows"]
    columns = {
        "ttft_p50_ms": ("ttft_ms", 50),
        "ttft_p75_ms": ("ttft_ms", 75),
        "ttft_p90_ms": ("ttft_ms", 90),
        "ttft_p99_ms": ("ttft_ms", 99),
        "latency_p90_ms": ("latency_ms", 90),
        "decode_p50_tps": ("decode_tps", 50),
        "decode_p90_tps": ("decode_tps", 90),
        "e2e_p50_tps": ("e2e_tps", 50),
        "e2e_p90_tps": ("e2e_tps", 90),
    }
    for column, (metric, p) in columns.items():
        want = expected([float(getattr(r, metric)) for r in ps], metric, p)
        assert float(row[column]) == pytest.approx(want, rel=0.01), column
        assert jrow[metric][f"p{p}"] == pytest.approx(want, rel=0.01), column
    assert float(row["decode_p90_tps"]) < float(row["decode_p50_tps"])
    assert float(row["ttft_p90_ms"]) > float(row["ttft_p50_ms"])
    decode = [float(r.decode_tps or 0) for r in ps]
    assert jrow["decode_tps"]["p99"] == pytest.approx(np.percentile(decode, 1), rel=0.01)
    lines = methodology_lines(report)
    assert any("low tail for decode and e2e tokens/s" in line for line in lines)
    assert "low tail for decode and e2e tokens/s" in render_markdown(report, {})


@pytest.mark.slow
async def test_a_week_frozen_before_the_convention_is_shown_as_it_was(
    migrated: AsyncEngine, tmp_path: Path
) -> None:
    ps = probes(600)
    # What an earlier provmon froze: upper quantiles for speeds, and no convention recorded.
    old = build_model_report("acme/model-1", W47, fold(ps), acct=ACCT, now=AFTER_W47)
    stored = old.to_json()
    del stored["percentile_convention"]
    decode = [float(r.decode_tps or 0) for r in ps]
    upper_p90 = float(np.percentile(decode, 90))
    stored["rows"][0]["decode_tps"]["p90"] = upper_p90
    stored["frozen"] = True
    assert await freeze_report(migrated, W47.label, "acme/model-1", stored, AFTER_W47)
    await Store(migrated).insert_probes([(f"{i:032x}", p) for i, p in enumerate(ps)])
    cfg = parse_config({"reports": {"out_dir": str(tmp_path)}, "uptime": {"min_samples": 1}}, {})
    ((report, files),) = await make_reports(
        migrated, cfg, W47, AFTER_W47, formats=["csv", "json", "md"]
    )
    assert report.percentile_convention == "upper"
    (row,) = csv.DictReader(io.StringIO(files["csv"].read_text()))
    assert float(row["decode_p90_tps"]) == pytest.approx(upper_p90, abs=1e-3)  # as it was
    assert json.loads(files["json"].read_text())["percentile_convention"] == "upper"
    assert "ordinary upper quantiles" in files["md"].read_text()
    # A freshly frozen week records its convention and reads back with it.
    fresh = report_from_json(json.loads(render_json(old)))
    assert fresh.percentile_convention == "tail"
