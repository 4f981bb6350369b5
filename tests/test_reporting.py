"""Reports: rollup percentiles against exact ones, report numbers against an independent count,
escaping of provider text, frozen weeks after pruning, maintenance, changes, status."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine

from monitor.aggregate import Accounting
from monitor.config import Config, parse_config
from monitor.maintenance import Window
from monitor.reporting.build import build_model_report
from monitor.reporting.job import build_reports, make_reports
from monitor.reporting.model import report_from_json
from monitor.reporting.periods import parse_week, span_period
from monitor.reporting.render import methodology_lines, render_csv, render_json, render_markdown
from monitor.results import Outcome, ProbeResult
from monitor.rollup import Rollup, fold
from monitor.stats import percentile
from monitor.status import target_status
from monitor.storage.schema import RollupRow
from monitor.storage.store import Store
from tests.factories import T0, config_doc, direct_target, result, write_config

FAIL = frozenset({"server_error", "timeout", "connection_error", "stream_error", "empty_response"})
ACCT = Accounting(FAIL, min_samples=1)
W47 = parse_week("2026-W47")
AFTER_W47 = W47.end + timedelta(days=2)


def cfg_for(tmp_path: Path, **extra: Any) -> Config:
    return parse_config(
        {"reports": {"out_dir": str(tmp_path / "reports")}, "uptime": {"min_samples": 1}, **extra},
        {},
    )


def test_rollup_percentiles_agree_with_exact_within_1pct() -> None:
    rng = random.Random(47)
    probes = []
    for i in range(20_000):
        at = T0 + timedelta(seconds=30 * i)  # about a week of hours
        slow = rng.random() < 0.1
        probes.append(
            result(
                started_at=at,
                ttft_ms=rng.lognormvariate(5.5 if not slow else 7.0, 0.4),
                decode_tps=rng.gauss(80 if not slow else 25, 6),
                e2e_tps=rng.uniform(10, 90),
                latency_ms=rng.lognormvariate(7, 0.3),
            )
        )
    merged = Rollup()
    hours = fold(probes)
    assert len(hours) > 100
    for r in hours.values():
        merged.merge(r)
    for metric in ("ttft_ms", "decode_tps", "e2e_tps", "latency_ms"):
        exact = sorted(float(getattr(p, metric)) for p in probes)
        h = merged.histograms[metric]
        for p in (50, 75, 90, 99):
            approx = h.quantile(p)
            assert approx is not None
            assert abs(approx - percentile(exact, p)) <= 0.01 * percentile(exact, p), (metric, p)


def week_probes() -> list[ProbeResult]:
    """A known week: Alpha mostly fine, Beta with an outage and rate limits."""
    out = []
    for i in range(7 * 24 * 6):  # every 10 minutes
        at = W47.start + timedelta(minutes=10 * i)
        out.append(result(provider="Alpha", started_at=at, ttft_ms=100.0 + i % 50, cost_usd=0.001))
        if 200 <= i < 260:
            beta = result(
                provider="Beta", started_at=at, outcome=Outcome.SERVER_ERROR, error_kind="http.503"
            )
        elif i % 10 == 0:
            beta = result(
                provider="Beta",
                started_at=at,
                outcome=Outcome.RATE_LIMITED,
                error_kind="http.429",
            )
        else:
            beta = result(provider="Beta", started_at=at, ttft_ms=300.0 + i % 100)
        out.append(beta)
    return out


async def store_all(engine: AsyncEngine, probes: list[ProbeResult]) -> None:
    store = Store(engine)
    records = [(f"{i:032x}", p) for i, p in enumerate(probes)]
    for start in range(0, len(records), 1000):
        await store.insert_probes(records[start : start + 1000])


async def test_report_matches_an_independent_count(migrated: AsyncEngine, tmp_path: Path) -> None:
    probes = week_probes()
    await store_all(migrated, probes)
    cfg = cfg_for(tmp_path)
    (report,) = await build_reports(migrated, cfg, W47, AFTER_W47)
    rows = {r.provider: r for r in report.rows}
    for provider in ("Alpha", "Beta"):
        mine = [p for p in probes if p.provider == provider]
        ok = [p for p in mine if p.outcome is Outcome.OK]
        failed = [p for p in mine if p.outcome is Outcome.SERVER_ERROR]
        limited = [p for p in mine if p.outcome is Outcome.RATE_LIMITED]
        row = rows[provider]
        assert row.probes == len(mine)
        assert row.ok == len(ok)
        assert row.failures == len(failed)
        assert row.rate_limited == len(limited)
        assert row.uptime_pct == pytest.approx(100 * len(ok) / (len(ok) + len(failed)))
        assert row.rate_limited_pct == pytest.approx(100 * len(limited) / len(mine))
        exact = sorted(p.ttft_ms for p in ok if p.ttft_ms is not None)
        assert row.ttft_ms is not None
        assert row.ttft_ms.p50 == pytest.approx(percentile(exact, 50), rel=0.01)
        assert row.ttft_ms.p90 == pytest.approx(percentile(exact, 90), rel=0.01)
        assert row.cost_usd == pytest.approx(sum(p.cost_usd or 0 for p in mine))
    beta = [p for p in probes if p.provider == "Beta"]
    assert rows["Beta"].error_kinds == {
        "http.429": sum(p.error_kind == "http.429" for p in beta),
        "http.503": 60,
    }
    daily = report.series.uptime_daily["Beta (direct)"]
    assert len(daily) == 7
    assert min(p.value for p in daily) < 100 < max(p.value for p in daily) + 1


async def test_frozen_week_is_the_same_after_pruning(migrated: AsyncEngine, tmp_path: Path) -> None:
    await store_all(migrated, week_probes())
    cfg = cfg_for(tmp_path)
    first = await make_reports(migrated, cfg, W47, AFTER_W47, formats=["json"])
    (report, files) = first[0]
    assert report.frozen
    before = json.loads(files["json"].read_text())
    # Raw probes pruned, and even the rollups gone: the frozen numbers still come back.
    await Store(migrated).prune_probes(AFTER_W47)
    async with migrated.begin() as conn:
        await conn.execute(delete(RollupRow))
    again = await make_reports(migrated, cfg, W47, AFTER_W47 + timedelta(days=30), formats=["json"])
    after = json.loads(again[0][1]["json"].read_text())
    assert after == before
    assert after["rows"][0]["probes"] > 0


@pytest.mark.slow
async def test_provider_text_cannot_inject_markup(migrated: AsyncEngine, tmp_path: Path) -> None:
    evil = '<script>alert("x")</script>'
    probes = [
        result(provider=evil, started_at=W47.start + timedelta(minutes=i)) for i in range(5)
    ] + [
        result(
            provider="=cmd|' /C calc'!A0",
            started_at=W47.start + timedelta(minutes=i),
            outcome=Outcome.SERVER_ERROR,
            error_kind="<img src=x onerror=alert(1)>",
        )
        for i in range(5)
    ]
    await store_all(migrated, probes)
    cfg = cfg_for(tmp_path)
    ((_, files),) = await make_reports(migrated, cfg, W47, AFTER_W47)
    page = files["html"].read_text()
    assert "<script>alert" not in page
    assert "<img src=x" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    md = files["md"].read_text()
    assert "<script>" not in md
    assert "\\<script\\>" in md
    csv_text = files["csv"].read_text()
    assert "\n=cmd" not in csv_text and ",=cmd" not in csv_text
    data = json.loads(files["json"].read_text())
    assert {r["provider"] for r in data["rows"]} == {evil, "=cmd|' /C calc'!A0"}


def test_maintenance_hours_are_excluded_or_counted() -> None:
    probes = [
        result(started_at=T0 + timedelta(minutes=10 * i), outcome=Outcome.TIMEOUT)
        if 6 <= i < 12
        else result(started_at=T0 + timedelta(minutes=10 * i))
        for i in range(24)
    ]
    rollups = fold(probes)
    window = Window(T0 + timedelta(hours=1), T0 + timedelta(hours=2), provider="Alpha")
    period = span_period(T0, T0 + timedelta(hours=4))
    excluded = build_model_report(
        "acme/model-1", period, rollups, acct=ACCT, now=T0 + timedelta(hours=5), windows=[window]
    )
    counted = build_model_report(
        "acme/model-1",
        period,
        rollups,
        acct=Accounting(FAIL, 1, exclude_maintenance=False),
        now=T0 + timedelta(hours=5),
        windows=[window],
    )
    assert excluded.rows[0].uptime_pct == 100.0
    assert excluded.rows[0].hours_excluded == 1
    assert counted.rows[0].uptime_pct == pytest.approx(100 * 18 / 24)
    other = Window(T0 + timedelta(hours=1), T0 + timedelta(hours=2), provider="Someone else")
    assert build_model_report(
        "acme/model-1", period, rollups, acct=ACCT, now=T0, windows=[other]
    ).rows[0].uptime_pct == pytest.approx(75.0)


def test_changes_are_flagged_only_beyond_noise() -> None:
    rng = random.Random(1)
    prev_start = W47.start - timedelta(days=7)

    def week(start: datetime, median: float, provider: str) -> list[ProbeResult]:
        return [
            result(
                provider=provider,
                started_at=start + timedelta(minutes=30 * i),
                ttft_ms=rng.lognormvariate(0, 0.2) * median,
            )
            for i in range(300)
        ]

    probes = (
        week(prev_start, 200, "Steady")
        + week(W47.start, 200, "Steady")
        + week(prev_start, 200, "Slower")
        + week(W47.start, 400, "Slower")
    )
    report = build_model_report("acme/model-1", W47, fold(probes), acct=ACCT, now=AFTER_W47)
    ttft = {c.provider: c for c in report.changes if c.metric == "ttft_ms_p50"}
    assert ttft["Slower"].significant
    assert ttft["Slower"].delta == pytest.approx(200, rel=0.15)
    assert not ttft["Steady"].significant
    assert ttft["Steady"].ci_low < 0 < ttft["Steady"].ci_high
    uptime = {c.provider: c for c in report.changes if c.metric == "uptime_pct"}
    assert not uptime["Steady"].significant
    assert report.previous_period == "2026-W46"


def test_status_windows() -> None:
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    recent = [
        result(started_at=now - timedelta(minutes=m), outcome=o)
        for m, o in [
            (1, Outcome.OK),
            (2, Outcome.TIMEOUT),
            (3, Outcome.OK),
            (10, Outcome.TIMEOUT),
            (20, Outcome.TIMEOUT),
        ]
    ]
    day = fold([result(started_at=now - timedelta(hours=h)) for h in range(1, 20)] + recent)
    (s,) = target_status([("acme/model-1", "Alpha", "direct")], recent, day, {}, now, ACCT)
    assert s.windows["5m"].probes == 3
    assert s.windows["5m"].uptime_pct == pytest.approx(200 / 3)
    assert s.windows["30m"].uptime_pct == pytest.approx(40.0)
    assert s.windows["1d"].probes == 24
    assert s.windows["1d"].uptime_pct == pytest.approx(100 * 21 / 24)
    assert s.state == "unknown"
    assert s.last_outcome == "ok"


@pytest.mark.slow
async def test_weekly_job_writes_last_week_once(migrated: AsyncEngine, tmp_path: Path) -> None:
    from monitor.daemon import Monitor

    await store_all(migrated, week_probes())
    cfg = cfg_for(tmp_path)
    calls: list[str] = []

    async def weekly_report(period: Any) -> None:
        calls.append(period.label)
        await make_reports(migrated, cfg, period, AFTER_W47)

    def monitor() -> Monitor:
        return Monitor(
            cfg,
            None,  # type: ignore[arg-type]  # no probing in this test
            None,  # type: ignore[arg-type]
            Store(migrated),
            now=lambda: AFTER_W47,
            weekly_report=weekly_report,
        )

    await monitor().weekly()
    await monitor().weekly()  # another monitor, or the catch-up job: already done
    assert calls == ["2026-W47"]
    html = tmp_path / "reports" / "2026-W47" / "acme__model-1" / "report.html"
    assert html.exists()
    assert "Alpha" in html.read_text()


@pytest.mark.slow
def test_report_and_status_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from monitor.cli import main
    from monitor.storage.database import make_engine, upgrade

    db = tmp_path / "r.db"
    target = direct_target("http://127.0.0.1:9/v1", "Alpha", model="acme/model-1")
    doc = config_doc([target], database=db, reports={"out_dir": str(tmp_path / "out")})
    cfg_path = write_config(tmp_path / "provmon.toml", doc)

    async def seed() -> None:
        engine = make_engine(f"sqlite+aiosqlite:///{db}")
        await upgrade(engine)
        await store_all(engine, week_probes())
        await engine.dispose()

    asyncio.run(seed())
    assert main(["report", "-c", str(cfg_path), "--week", "2026-W47", "--format", "csv,md"]) == 0
    out = capsys.readouterr().out
    assert "acme/model-1 2026-W47 (frozen)" in out
    assert (tmp_path / "out" / "2026-W47" / "acme__model-1" / "providers.csv").exists()
    assert not (tmp_path / "out" / "2026-W47" / "acme__model-1" / "report.html").exists()
    assert main(["report", "-c", str(cfg_path), "--week", "2026-W99"]) == 2
    assert "no ISO week 99" in capsys.readouterr().err
    assert main(["report", "-c", str(cfg_path), "--week", "2026-W40"]) == 1
    assert "no probes in 2026-W40" in capsys.readouterr().out
    assert main(["report", "-c", str(cfg_path), "--format", "pdf"]) == 2
    assert main(["status", "-c", str(cfg_path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["targets"][0]["provider"] == "Alpha"
    assert set(data["targets"][0]["windows"]) == {"5m", "30m", "1d"}
    assert main(["status", "-c", str(cfg_path)]) == 0
    assert "Alpha" in capsys.readouterr().out


async def test_a_failed_weekly_report_is_tried_again(migrated: AsyncEngine, tmp_path: Path) -> None:
    from monitor.daemon import Monitor

    cfg = cfg_for(tmp_path)
    attempts: list[str] = []

    async def flaky_report(period: Any) -> None:
        attempts.append(period.label)
        if len(attempts) == 1:
            raise OSError(28, "No space left on device")

    monitor = Monitor(
        cfg,
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        Store(migrated),
        now=lambda: AFTER_W47,
        weekly_report=flaky_report,
    )
    await monitor.weekly()  # fails: not recorded
    await monitor.weekly()  # the catch-up runs it again, and it works
    await monitor.weekly()  # done: not again
    assert attempts == ["2026-W47", "2026-W47"]


def test_gaps_count_as_down_only_when_asked_and_never_above_100() -> None:
    # Probes in hours 0-1 and 4-5 of a 6-hour period; hours 2-3 have none. Hour 0 in maintenance.
    probes = [
        result(started_at=T0 + timedelta(hours=h, minutes=10 * i))
        for h in (0, 1, 4, 5)
        for i in range(6)
    ]
    period = span_period(T0, T0 + timedelta(hours=6))
    window = Window(T0, T0 + timedelta(hours=1))
    down = Accounting(FAIL, 1, exclude_maintenance=True, gaps_down=True)
    r = build_model_report(
        "acme/model-1", period, fold(probes), acct=down, now=AFTER_W47, windows=[window]
    )
    assert r.rows[0].uptime_pct == pytest.approx(100 * 3 / 5)  # 3 hours with data, 2 without
    ignored = build_model_report(
        "acme/model-1", period, fold(probes), acct=ACCT, now=AFTER_W47, windows=[window]
    )
    assert ignored.rows[0].uptime_pct == 100.0
    # Fine bins of a short period do not turn the space between probes into downtime.
    short = span_period(T0 + timedelta(hours=4), T0 + timedelta(hours=4, minutes=50))
    fine = fold([p for p in probes if p.started_at >= short.start], 30)
    r = build_model_report("acme/model-1", short, fine, acct=down, now=AFTER_W47, bin_s=30)
    assert r.rows[0].uptime_pct == 100.0


async def test_network_column_is_connect_plus_tls_p50(
    migrated: AsyncEngine, tmp_path: Path
) -> None:
    probes = [
        result(
            started_at=W47.start + timedelta(minutes=10 * i),
            connect_ms=1.0 + i % 5,
            tls_ms=10.0 if i % 2 else None,
        )
        for i in range(100)
    ]
    await store_all(migrated, probes)
    (report,) = await build_reports(migrated, cfg_for(tmp_path), W47, AFTER_W47)
    (row,) = report.rows
    exact = sorted(p.network_ms for p in probes if p.network_ms is not None)
    assert row.network_ms is not None
    assert row.network_ms.p50 == pytest.approx(percentile(exact, 50), rel=0.01)
    csv_text = render_csv(report)
    assert "network_p50_ms" in csv_text.splitlines()[0]
    assert "network p50 ms" in render_markdown(report, {})
    assert any(line.startswith("network:") for line in methodology_lines(report))
    doc = json.loads(render_json(report))
    assert doc["rows"][0]["network_ms"]["p50"] == pytest.approx(row.network_ms.p50)
    assert report_from_json(doc).rows[0].network_ms == row.network_ms
