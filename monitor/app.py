"""The composition root: builds sessions, probers and the simulator, and runs each command's job.

The CLI parses arguments and calls one function here; everything with a lifetime (HTTP session,
simulator, signal handlers) is opened and closed in this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, TextIO

import aiohttp

from monitor.config import Config, Target, Workload, parse_config
from monitor.daemon import Monitor
from monitor.discover import parse_endpoints, to_toml
from monitor.probe import Prober, utc_now
from monitor.redact import short_message
from monitor.reporting.job import accounting, make_reports
from monitor.reporting.periods import Period
from monitor.results import ProbeResult
from monitor.scheduler import Scheduler
from monitor.simulator import (
    DEMO_MODEL,
    Farm,
    Simulator,
    demo_farm,
    quirks_farm,
    run_simulator,
    serve,
)
from monitor.spill import SpillFile
from monitor.status import TargetStatus, model_summary, target_status
from monitor.storage.database import (
    DatabaseError,
    head_revision,
    make_engine,
    require_migrated,
    upgrade,
)
from monitor.storage.reports import alert_states, probes_between, rollups_between
from monitor.storage.store import Store
from monitor.tables import comparison_table
from monitor.throttle import Gates
from monitor.writer import ProbeWriter

log = logging.getLogger("monitor")


@contextlib.asynccontextmanager
async def client_session() -> AsyncIterator[aiohttp.ClientSession]:
    """One HTTP session for all probes; no connection cap (per-provider gates bound it)."""
    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
    async with aiohttp.ClientSession(
        connector=connector,
        trust_env=False,
        timeout=aiohttp.ClientTimeout(total=None),
        headers={"User-Agent": "provmon/0.1 (+https://github.com/provmon/provmon)"},
    ) as session:
        yield session


def make_prober(session: aiohttp.ClientSession, cfg: Config) -> Prober:
    return Prober(session, timeouts=cfg.timeouts, vantage=cfg.vantage, gates=Gates(cfg.limits_for))


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


DEMO_WORKLOAD = {"input_tokens": 60, "max_tokens": 60}


def demo_config(openrouter_base_url: str, direct: dict[str, tuple[str, float, float]]) -> Config:
    """Config for the demo: each simulated provider direct and through the OpenRouter front.

    `direct` maps provider name → (base URL, input and output USD per million tokens).
    """
    targets: list[dict[str, Any]] = [
        {
            "route": "direct",
            "model": DEMO_MODEL,
            "provider": name,
            "base_url": url,
            "input_price_per_mtok": price_in,
            "output_price_per_mtok": price_out,
            "workloads": ["demo"],
        }
        for name, (url, price_in, price_out) in direct.items()
    ]
    targets.append(
        {
            "route": "openrouter",
            "model": DEMO_MODEL,
            "providers": list(direct),
            "workloads": ["demo"],
        }
    )
    doc = {
        "vantage": "demo",
        "timeouts": {"connect_s": 2, "first_token_s": 5, "idle_s": 3, "total_s": 15},
        "workloads": {"demo": DEMO_WORKLOAD},
        "openrouter": {"base_url": openrouter_base_url, "api_key_env": None},
        "targets": targets,
    }
    return parse_config(doc, {}, "<demo>")


def _progress(elapsed_s: float, results: Sequence[ProbeResult]) -> str:
    counts: dict[str, int] = {}
    for r in results:
        counts[r.outcome.value] = counts.get(r.outcome.value, 0) + 1
    failing = sorted({r.provider for r in results[-16:] if r.outcome.counts_against_uptime})
    text = ", ".join(f"{n} {o}" for o, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    note = f"  (failing now: {', '.join(failing)})" if failing else ""
    return f"  {elapsed_s:5.1f}s  {len(results):4d} probes: {text}{note}\n"


async def demo(
    duration_s: float, interval_s: float, out: TextIO, progress_every_s: float = 5.0
) -> list[ProbeResult]:
    """Start the simulator, probe its four providers for `duration_s`, print a comparison.

    Each target is probed on its own schedule, every `interval_s` (a slow provider does not hold
    back the others); the flaky provider's outage covers the middle third of the run.
    """
    farm = demo_farm(outage_start_s=duration_s / 3, outage_duration_s=duration_s / 3)
    results: list[ProbeResult] = []
    async with run_simulator(farm) as sim:
        cfg = demo_config(
            sim.openrouter_base_url,
            {
                p.name: (sim.direct_base_url(p.slug), p.input_usd_per_mtok, p.output_usd_per_mtok)
                for p in farm.profiles
            },
        )
        out.write(
            f"provmon demo: simulator on {sim.base_url}: {len(farm.profiles)} providers of "
            f"{DEMO_MODEL}, each probed directly and through the OpenRouter-like front "
            f"({len(cfg.targets)} targets), every {interval_s:g}s for {duration_s:g}s\n"
        )
        out.flush()
        workload = cfg.workloads["demo"]
        loop = asyncio.get_running_loop()
        start = loop.time()
        end = start + duration_s

        async with client_session() as session:
            prober = make_prober(session, cfg)

            async def probe_loop(target: Target, offset_s: float) -> None:
                slot = start + offset_s
                while slot < end:
                    await asyncio.sleep(max(0.0, slot - loop.time()))
                    results.append(await prober.probe(target, workload))
                    while slot <= loop.time():
                        slot += interval_s  # skip slots missed while a probe ran long

            async def report_progress() -> None:
                while True:
                    await asyncio.sleep(progress_every_s)
                    out.write(_progress(loop.time() - start, results))
                    out.flush()

            reporter = asyncio.create_task(report_progress())
            try:
                n = len(cfg.targets)
                async with asyncio.TaskGroup() as tg:
                    for i, target in enumerate(cfg.targets):
                        tg.create_task(probe_loop(target, interval_s * i / n))
            finally:
                reporter.cancel()
    out.write(f"\n{len(results)} probes of {DEMO_MODEL}, by provider and route:\n\n")
    out.write(comparison_table(results) + "\n")
    out.write(
        "\nuptime% = ok / (ok + failures); rate-limited probes are excluded and shown apart.\n"
        "ttft in ms, decode and e2e in tokens/s: p50/p90 over ok probes. cost_usd: what the\n"
        "probes cost, from usage.cost (OpenRouter) or tokens × price (direct).\n"
    )
    out.flush()
    return results


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
    engine = make_engine(cfg.database_url.reveal())
    try:
        before, after = await upgrade(engine)
    finally:
        await engine.dispose()
    if before == after:
        out.write(f"database already at revision {after}\n")
    else:
        out.write(f"database upgraded from {before or 'empty'} to revision {after}\n")


async def check_database(cfg: Config) -> str:
    """Reach the database and check its schema; raises DatabaseError with what to do."""
    engine = make_engine(cfg.database_url.reveal())
    try:
        async with asyncio.timeout(15):
            await require_migrated(engine)
    except DatabaseError:
        raise
    except Exception as exc:  # driver errors of every kind: say what failed, not a trace
        raise DatabaseError(f"cannot reach the database: {short_message(str(exc))}") from None
    finally:
        await engine.dispose()
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


async def run_daemon(cfg: Config, stop: asyncio.Event) -> int:
    """`provmon run`: schedule probes, store results, prune; on `stop`, drain and flush."""
    engine = make_engine(cfg.database_url.reveal())
    try:
        try:
            await require_migrated(engine)
        except DatabaseError:
            raise
        except Exception as exc:
            raise DatabaseError(f"cannot reach the database: {short_message(str(exc))}") from None
        store = Store(engine)
        writer = ProbeWriter(store, SpillFile(Path(cfg.database.spill_path)))
        writer.start()
        scheduler = Scheduler()
        try:
            async with client_session() as session:
                monitor = Monitor(cfg, make_prober(session, cfg), writer, store)
                await monitor.load_budget()
                monitor.schedule(scheduler)
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
                scheduler.shutdown()
                await monitor.drain(cfg.schedule.drain_s)
                await writer.close()
                log_status(monitor, writer, scheduler)
        finally:
            scheduler.shutdown()
            await writer.close()
            log.info(
                "stopped: %d stored, %d in the spill file",
                writer.stats.inserted,
                writer.stats.spilled - writer.stats.replayed,
            )
    finally:
        await engine.dispose()
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
    engine = make_engine(cfg.database_url.reveal())
    try:
        await require_migrated(engine)
        written = await make_reports(
            engine, cfg, period, utc_now(), models=models, formats=formats, out_dir=out_dir
        )
    finally:
        await engine.dispose()
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
    engine = make_engine(cfg.database_url.reveal())
    now = utc_now()
    try:
        await require_migrated(engine)
        recent = await probes_between(engine, now - timedelta(minutes=30), now + timedelta(1))
        day = await rollups_between(
            engine, (now - timedelta(days=1)).replace(minute=0, second=0, microsecond=0), now
        )
        states = await alert_states(engine)
    finally:
        await engine.dispose()
    statuses = target_status(
        [t.target_key for t in cfg.targets], recent, day, states, now, accounting(cfg)
    )
    return statuses, model_summary(statuses)
