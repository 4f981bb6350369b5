"""The composition root: builds sessions, probers and the simulator, and runs each command's job.

The CLI parses arguments and calls one function here; everything with a lifetime (HTTP session,
simulator, signal handlers) is opened and closed in this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import aiohttp

from monitor.alerts.channels import build_channels
from monitor.alerts.connectivity import ConnectivityCheck
from monitor.alerts.payloads import trial_payload
from monitor.alerts.service import Alerting
from monitor.alerts.views import INCIDENT_HEADERS, incident_rows
from monitor.clock import utc_now
from monitor.config import Config, Target, Workload
from monitor.daemon import Monitor
from monitor.discover import parse_endpoints, to_toml
from monitor.errors import ChannelError, ConfigError
from monitor.probing.client import Prober
from monitor.probing.session import probe_session
from monitor.probing.throttle import Gates
from monitor.redact import short_message
from monitor.reporting.job import accounting, make_reports
from monitor.reporting.periods import Period
from monitor.results import ProbeResult
from monitor.scheduler import Scheduler
from monitor.simulator import (
    Farm,
    Simulator,
    demo_farm,
    quirks_farm,
    serve,
)
from monitor.spill import SpillFile
from monitor.status import TargetStatus, model_summary, target_status
from monitor.storage.alerts import AlertStore
from monitor.storage.database import (
    Engine,
    connected,
    head_revision,
    upgrade,
)
from monitor.storage.reports import alert_states, rollups_between, status_samples
from monitor.storage.store import Store
from monitor.tables import render
from monitor.writer import ProbeWriter

log = logging.getLogger("monitor")


@contextlib.asynccontextmanager
async def client_session() -> AsyncIterator[aiohttp.ClientSession]:
    """One HTTP session for all probes (and alerts): `monitor.probing.session.probe_session`,
    a fresh connection per probe with its phases traced."""
    async with probe_session() as session:
        yield session


def make_prober(session: aiohttp.ClientSession, cfg: Config) -> Prober:
    return Prober(
        session,
        timeouts=cfg.timeouts,
        vantage=cfg.vantage,
        gates=Gates(cfg.limits_for),
        settings=cfg.probe,
    )


async def probe_once(
    cfg: Config,
    jobs: Sequence[tuple[Target, Workload]],
    *,
    count: int,
    concurrency: int,
    on_result: Callable[[ProbeResult], None],
) -> list[ProbeResult]:
    """Run every (target, workload) job `count` times, at most `concurrency` at once."""
    results: list[ProbeResult] = []
    sem = asyncio.Semaphore(concurrency)
    async with client_session() as session:
        prober = make_prober(session, cfg)

        async def one(target: Target, workload: Workload) -> None:
            async with sem:
                result = await prober.probe(target, workload)
            results.append(result)
            on_result(result)

        async with asyncio.TaskGroup() as tg:
            for _ in range(count):
                for target, workload in jobs:
                    tg.create_task(one(target, workload))
    return results


async def fetch_endpoints(
    base_url: str, model: str, api_key: str | None, timeout_s: float = 30.0
) -> str:
    """GET {base}/models/{model}/endpoints and return target entries as TOML text.

    Raises RuntimeError with a readable message when the API cannot be read.
    """
    url = f"{base_url.rstrip('/')}/models/{model}/endpoints"
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    secrets = [api_key] if api_key else []
    try:
        async with (
            client_session() as session,
            session.get(
                url, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout_s)
            ) as resp,
        ):
            body = await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"{url}: HTTP {resp.status}: {short_message(body, secrets)}")
            doc = await resp.json(content_type=None)
    except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
        raise RuntimeError(f"{url}: {short_message(str(exc) or type(exc).__name__)}") from None
    try:
        endpoints = parse_endpoints(doc)
    except ValueError as exc:
        raise RuntimeError(f"{url}: {exc}") from None
    if not endpoints:
        raise RuntimeError(f"{url}: no providers serve {model}")
    return to_toml(model, endpoints)


def scenario_farm(name: str, seed: int) -> Farm:
    if name == "quirks":
        return quirks_farm(seed)
    return demo_farm(seed)


async def simulate(scenario: str, host: str, port: int, seed: int, out: TextIO) -> None:
    """Serve a simulator scenario until cancelled, printing where each provider is."""
    farm = scenario_farm(scenario, seed)

    def ready(sim: Simulator) -> None:
        out.write(f"simulator ({scenario}) on {sim.base_url}\n")
        out.write(
            f"  OpenRouter-like front: {sim.openrouter_base_url}  "
            f"(models: {', '.join(farm.model_ids())})\n"
        )
        for p in farm.profiles:
            out.write(f"  {p.name:<24} {sim.direct_base_url(p.slug)}\n")
        out.write("Ctrl-C or SIGTERM stops it.\n")
        out.flush()

    await serve(farm, host, port, ready=ready)


def run(main: Coroutine[Any, Any, int], *, stop_exit_code: int = 130) -> int:
    """Run `main` in a fresh event loop; SIGTERM or SIGINT cancels it.

    A cancelled run exits with `stop_exit_code`: 130 for one-off commands, 0 for services
    (`simulate`, `run`) for which a signal is the normal way to stop.
    """

    async def wrapper() -> int:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        try:
            return await main
        except asyncio.CancelledError:
            sys.stderr.write("stopped\n")
            return stop_exit_code
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)

    return asyncio.run(wrapper())


def run_service(main: Callable[[asyncio.Event], Coroutine[Any, Any, int]]) -> int:
    """Run a service: the first SIGTERM/SIGINT sets its stop event (it drains and returns);
    a second one cancels it outright."""

    async def wrapper() -> int:
        stop = asyncio.Event()
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()

        def on_signal() -> None:
            if stop.is_set():
                task.cancel()
            stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)
        try:
            return await main(stop)
        except asyncio.CancelledError:
            sys.stderr.write("stopped without draining\n")
            return 1
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)

    return asyncio.run(wrapper())


async def db_upgrade(cfg: Config, out: TextIO) -> None:
    async with connected(cfg.database_url.reveal(), migrated=False) as engine:
        before, after = await upgrade(engine)
    if before == after:
        out.write(f"database already at revision {after}\n")
    else:
        out.write(f"database upgraded from {before or 'empty'} to revision {after}\n")


async def check_database(cfg: Config) -> str:
    """Reach the database and check its schema; raises DatabaseError with what to do."""
    async with connected(cfg.database_url.reveal()):
        pass
    return f"database reachable, schema at revision {head_revision()}"


def log_status(monitor: Monitor, writer: ProbeWriter, scheduler: Scheduler) -> None:
    """One status line; its fields are also structured (`--log-format json`)."""
    w, sch = writer.stats, scheduler.stats
    fields = {
        "probes_started": monitor.started,
        "stored": w.inserted,
        "spilled": w.spilled,
        "replayed": w.replayed,
        "queued": writer.backlog,
        "db_down": writer.db_down,
        "skipped_busy": monitor.skipped_busy,
        "runs": sch.lateness_s.n,
        "late_over_1s": sch.late,
        "missed": sch.missed,
        "lateness_p50_ms": round((sch.lateness_s.quantile(50) or 0.0) * 1000, 1),
        "lateness_p99_ms": round((sch.lateness_s.quantile(99) or 0.0) * 1000, 1),
    }
    log.info(
        "status: %d probes started, %d stored, %d spilled, %d late > 1s%s",
        monitor.started,
        w.inserted,
        w.spilled,
        sch.late,
        ", database DOWN" if writer.db_down else "",
        extra=fields,
    )


def make_alerting(cfg: Config, engine: Engine, session: aiohttp.ClientSession) -> Alerting:
    """The evaluator, outbox sender and channels, and the connectivity check when configured."""
    try:
        notifiers = build_channels(cfg.channels, session)
    except ValueError as exc:
        raise ConfigError(cfg.source, [f"alerts.channels: {exc}"]) from None
    alerting = Alerting(cfg, AlertStore(engine), notifiers)
    if cfg.alerts.connectivity_url:
        alerting.watch(
            ConnectivityCheck(
                session, cfg.alerts.connectivity_url, on_change=alerting.connectivity_changed
            )
        )
    return alerting


async def incidents(
    cfg: Config,
    out: TextIO,
    *,
    open_only: bool = False,
    since: datetime | None = None,
    as_json: bool = False,
) -> int:
    """`provmon incidents`: incidents overlapping [since, now], oldest first."""
    async with connected(cfg.database_url.reveal()) as engine:
        found = await AlertStore(engine).incidents(since=since, open_only=open_only)
    if as_json:
        for incident in found:
            out.write(json.dumps(incident.to_json()) + "\n")
        return 0
    if not found:
        out.write("no incidents\n")
        return 0
    out.write(render(INCIDENT_HEADERS, incident_rows(found, utc_now()), text_columns=8) + "\n")
    return 0


async def alerts_test(cfg: Config, out: TextIO) -> int:
    """`provmon alerts test`: a test notification to every channel; 0 when all took it."""
    failed = 0
    async with client_session() as session:
        try:
            notifiers = build_channels(cfg.channels, session)
        except ValueError as exc:
            raise ConfigError(cfg.source, [f"alerts.channels: {exc}"]) from None
        for name, notifier in notifiers.items():
            try:
                await notifier.send(trial_payload(name, utc_now(), cfg.vantage))
            except ChannelError as exc:
                failed += 1
                out.write(f"{name}: FAILED: {exc}\n")
            else:
                out.write(f"{name}: sent\n")
    if not notifiers:
        out.write("no channels configured\n")
    return 1 if failed else 0


async def run_daemon(cfg: Config, stop: asyncio.Event) -> int:
    """`provmon run`: schedule probes, store results, prune; on `stop`, drain and flush."""
    async with connected(cfg.database_url.reveal()) as engine:
        store = Store(engine)
        alerting_box: list[Alerting] = []

        async def on_stored(results: Sequence[ProbeResult]) -> None:
            for alerting in alerting_box:
                await alerting.stored(results)

        writer = ProbeWriter(store, SpillFile(Path(cfg.database.spill_path)), on_stored=on_stored)
        writer.start()
        scheduler = Scheduler()
        try:
            async with client_session() as session:
                alerting = make_alerting(cfg, engine, session)
                alerting_box.append(alerting)

                async def weekly_report(period: Period) -> None:
                    await make_reports(engine, cfg, period, utc_now())

                monitor = Monitor(
                    cfg,
                    make_prober(session, cfg),
                    writer,
                    store,
                    weekly_report=weekly_report,
                    reachable=alerting.connectivity.reachable if alerting.connectivity else None,
                )
                await monitor.load_budget()
                monitor.schedule(scheduler)
                alerting.schedule(scheduler)
                alerting.start()
                scheduler.start()
                log.info(
                    "provmon running: vantage %r, %d targets, %d probe jobs, database %s",
                    cfg.vantage,
                    len(cfg.targets),
                    len(monitor.jobs),
                    engine.dialect.name,
                )
                while not stop.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), cfg.schedule.status_every_s)
                    log_status(monitor, writer, scheduler)
                log.info("stopping: no new probes")
                scheduler.pause()  # no new runs; those in flight finish (drain) first
                await monitor.drain(cfg.schedule.drain_s)
                scheduler.shutdown()
                await writer.close()
                await alerting.stop()
                log_status(monitor, writer, scheduler)
        finally:
            scheduler.shutdown()
            await writer.close()
            log.info(
                "stopped: %d stored, %d in the spill file",
                writer.stats.inserted,
                writer.stats.spilled - writer.stats.replayed,
            )
    return 0


async def report(
    cfg: Config,
    period: Period,
    out: TextIO,
    *,
    models: Sequence[str] | None = None,
    formats: Sequence[str] | None = None,
    out_dir: Path | None = None,
) -> int:
    """`provmon report`: write the period's report per model; print where each file is."""
    async with connected(cfg.database_url.reveal()) as engine:
        written = await make_reports(
            engine, cfg, period, utc_now(), models=models, formats=formats, out_dir=out_dir
        )
    if not written:
        out.write(f"no probes in {period.label}: no report written\n")
        return 1
    for rep, files in written:
        note = " (frozen)" if rep.frozen else ""
        out.write(f"{rep.model} {rep.period}{note}: {len(rep.rows)} provider rows\n")
        for fmt, path in files.items():
            out.write(f"  {fmt:<4} {path}\n")
    return 0


async def status(cfg: Config) -> tuple[list[TargetStatus], dict[str, Any]]:
    """Every target's state and 5m / 30m / 1d numbers, and the per-model summary."""
    now = utc_now()
    async with connected(cfg.database_url.reveal()) as engine:
        recent, day, states = await asyncio.gather(
            status_samples(engine, now - timedelta(minutes=30), now + timedelta(1)),
            rollups_between(
                engine, now - timedelta(days=1), now, metrics=("ttft_ms", "decode_tps", "e2e_tps")
            ),
            alert_states(engine),
        )
    statuses = target_status(
        [t.target_key for t in cfg.targets], recent, day, states, now, accounting(cfg)
    )
    return statuses, model_summary(statuses)
