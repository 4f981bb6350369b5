"""Makes reports: reads rollups, probes and incidents, builds, charts, writes and freezes.

The I/O seam of reporting; the numbers come from the pure `build` and `aggregate` modules.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime
from pathlib import Path

from monitor.aggregate import Accounting
from monitor.config import Config
from monitor.maintenance import expand
from monitor.reporting.build import Catalogue, TargetInfo, build_model_report
from monitor.reporting.model import CatalogueChange, Incident, ModelReport, report_from_json
from monitor.reporting.output import write_report
from monitor.reporting.periods import Period
from monitor.rollup import Rollup, RollupKey, fold
from monitor.scheduler import cron_fire_times
from monitor.storage.catalogue import CatalogueStore
from monitor.storage.database import Engine
from monitor.storage.reports import (
    freeze_report,
    frozen_models,
    frozen_report,
    incidents_between,
    models_between,
    probes_between,
    rollups_between,
)

log = logging.getLogger(__name__)

FINE_BINS_S = (5, 10, 30, 60, 120, 300, 600, 900, 1800)
FINE_MAX_PERIOD_S = 2 * 86400
TARGET_POINTS = 60


def fine_bin_s(period: Period) -> int | None:
    """Bins for short periods' time series (about 60 points); None: hourly is fine enough."""
    seconds = period.duration.total_seconds()
    if seconds > FINE_MAX_PERIOD_S:
        return None
    for b in FINE_BINS_S:
        if seconds / b <= TARGET_POINTS * 1.5:
            return b
    return None


def accounting(cfg: Config) -> Accounting:
    u = cfg.uptime
    return Accounting(
        failure_outcomes=frozenset(u.failure_outcomes),
        min_samples=u.min_samples,
        exclude_maintenance=u.maintenance == "exclude",
        gaps_down=u.gaps == "down",
        quality_counts=u.quality_counts,
    )


def _target_info(cfg: Config) -> dict[tuple[str, str, str], TargetInfo]:
    out = {}
    for t in cfg.targets:
        out[(t.model, t.provider, t.route)] = TargetInfo(
            context_length=t.context_length,
            input_price_per_mtok=t.prices.input_per_mtok if t.prices else None,
            output_price_per_mtok=t.prices.output_per_mtok if t.prices else None,
        )
    return out


async def _incidents(engine: Engine, period: Period, model: str) -> list[Incident]:
    out = []
    for row, _m, provider, route in await incidents_between(
        engine, period.start, period.end, model
    ):
        end = row.ended_at
        out.append(
            Incident(
                provider=provider or "(monitor)",
                route=route or "-",
                kind=row.kind,
                started_at=row.started_at,
                ended_at=end,
                duration_s=(end - row.started_at).total_seconds() if end else None,
                vantages=[str(v) for v in row.vantages],
                error_kinds={str(k): int(v) for k, v in row.error_kinds.items()},
            )
        )
    return out


async def _catalogue(engine: Engine, cfg: Config, period: Period, model: str) -> Catalogue:
    """The period's catalogue readings and changes of `model`, and what its targets pin."""
    store = CatalogueStore(engine)
    snapshots = await store.snapshots(model, period.start, period.end)
    events = await store.events(since=period.start, until=period.end, models=[model])
    pins = {
        t.provider: (t.pin, t.provider_name or t.provider)
        for t in cfg.targets
        if t.model == model and t.route == "openrouter"
    }
    changes = [
        CatalogueChange(
            at=s.event.at,
            endpoint=s.event.endpoint,
            provider=s.event.provider,
            kind=s.event.kind.value,
            summary=s.event.describe(),
            before=s.event.before,
            after=s.event.after,
        )
        for s in events
    ]
    return Catalogue([(s.observed_at, s.endpoints) for s in snapshots], changes, pins)


async def build_reports(
    engine: Engine,
    cfg: Config,
    period: Period,
    now: datetime,
    models: Sequence[str] | None = None,
) -> list[ModelReport]:
    """One report per model with data in the period (or per model asked for).

    A finished ISO week is frozen on first build; later builds return the frozen numbers.
    """
    return [r async for r in iter_reports(engine, cfg, period, now, models)]


async def iter_reports(
    engine: Engine,
    cfg: Config,
    period: Period,
    now: datetime,
    models: Sequence[str] | None = None,
) -> AsyncIterator[ModelReport]:
    """The reports of `build_reports`, one model at a time as each is ready."""
    prev = period.previous()
    bin_s = fine_bin_s(period) or 3600

    async def load(model: str) -> dict[RollupKey, Rollup]:
        # One model at a time: a week of hourly histograms for every model would not fit
        # comfortably in memory at scale.
        if bin_s == 3600:
            return await rollups_between(engine, prev.start, period.end, model)
        # A short period: bins folded from raw probes, for exact bounds and fine series.
        return fold(await probes_between(engine, prev.start, period.end, model), bin_s)

    if models:
        wanted = list(models)
    else:
        table = "rollups" if bin_s == 3600 else "probes"
        wanted = await models_between(engine, period.start, period.end, table)
        if period.is_week and period.finished(now):
            wanted = sorted(set(wanted) | set(await frozen_models(engine, period.label)))
    windows = expand(cfg.maintenance, prev.start, period.end, cron_fire_times)
    acct = accounting(cfg)
    info = _target_info(cfg)
    workloads = {
        name: f"about {w.input_tokens} tokens in, at most {w.max_tokens} out"
        + ("" if w.kind == "plain" else f", {w.kind} (its answers' quality checked)")
        for name, w in cfg.workloads.items()
    }
    kinds = {name: w.kind for name, w in cfg.workloads.items()}
    for model in wanted:
        freezable = period.is_week and period.finished(now)
        if freezable:
            frozen = await frozen_report(engine, period.label, model)
            if frozen is not None:
                yield report_from_json(frozen)
                continue
        rollups = await load(model)
        seen_workloads = {key[2] for key in rollups}
        report = build_model_report(
            model,
            period,
            rollups,
            acct=acct,
            now=now,
            windows=windows,
            incidents=await _incidents(engine, period, model),
            info=info,
            workloads={k: v for k, v in workloads.items() if k in seen_workloads},
            bin_s=bin_s,
            catalogue=await _catalogue(engine, cfg, period, model),
            kinds=kinds,
        )
        del rollups
        if freezable and report.rows:
            report.frozen = True
            await freeze_report(engine, period.label, model, report.to_json(), now)
        if report.rows or report.frozen:
            yield report


def _draw(report: ModelReport) -> dict[str, bytes]:
    """Runs in a worker: matplotlib is imported there, never in the daemon's own process."""
    from monitor.reporting.charts import report_charts

    return report_charts(report)


def _chart_pool() -> ProcessPoolExecutor | None:
    workers = max(1, min(os.cpu_count() or 1, 4))
    try:
        return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    except OSError as exc:
        log.warning("chart workers unavailable (%s); drawing in this process", exc)
        return None


async def _charts_of(pool: ProcessPoolExecutor | None, report: ModelReport) -> dict[str, bytes]:
    if pool is not None:
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, _draw, report)
        except BrokenProcessPool as exc:
            log.warning("chart worker failed (%s); drawing in this process", exc)
    return _draw(report)


async def make_reports(
    engine: Engine,
    cfg: Config,
    period: Period,
    now: datetime,
    *,
    models: Sequence[str] | None = None,
    formats: Sequence[str] | None = None,
    out_dir: Path | None = None,
) -> list[tuple[ModelReport, dict[str, Path]]]:
    """Build and write reports; returns each report with the files written for it."""
    out = out_dir or Path(cfg.reports.out_dir)
    fmts = list(formats or cfg.reports.formats)
    want_charts = bool({"html", "md"} & set(fmts))
    # Charts are drawn in worker processes while the next model's report is being built here:
    # the two halves of the work run on different cores.
    pool = _chart_pool() if want_charts else None
    reports: list[ModelReport] = []
    pending: list[asyncio.Future[dict[str, bytes]]] = []
    try:
        async for report in iter_reports(engine, cfg, period, now, models):
            reports.append(report)
            if want_charts:
                pending.append(asyncio.ensure_future(_charts_of(pool, report)))
        all_charts = list(await asyncio.gather(*pending)) if want_charts else []
    finally:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
    if not want_charts:
        all_charts = [{} for _ in reports]
    written = []
    for report, charts in zip(reports, all_charts, strict=True):
        files = await asyncio.to_thread(write_report, report, charts, out, fmts)
        log.info(
            "report %s %s: %s", report.period, report.model, ", ".join(map(str, files.values()))
        )
        written.append((report, files))
    return written
