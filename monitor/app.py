"""The composition root: opens the database, HTTP sessions and the simulator, builds the
daemon, and runs each command's job, writing what it prints through `terminal`.

The CLI parses arguments and calls one function here; everything with a lifetime (database,
HTTP session, simulator, daemon, signal handlers) is opened and closed in this module or in
the daemon build (`runtime`).
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from monitor import heap, terminal
from monitor.alerts.channels import channel_problems
from monitor.alerts.payloads import trial_payload
from monitor.catalogue_api import endpoints_url, read_endpoints
from monitor.catalogue_views import catalogue_text
from monitor.clock import utc_now
from monitor.config import Config, Job, Secret, Target, Workload, probe_jobs
from monitor.discover import to_toml
from monitor.errors import (
    EXIT_FAIL,
    EXIT_OK,
    ChannelError,
    ConfigError,
    DatabaseError,
    DiscoverError,
    UsageError,
)
from monitor.exporter.sidecar import MetricsSidecar
from monitor.output import LineWriter
from monitor.probing.http import client_session
from monitor.reporting.job import accounting, make_reports
from monitor.reporting.periods import Period
from monitor.results import Outcome, ProbeResult
from monitor.runtime import Sidecar, build_daemon, make_notifiers, make_prober
from monitor.sdnotify import SystemdNotifier, SystemdSidecar
from monitor.simulator import Farm, Simulator, demo_farm, quirks_farm, serve
from monitor.spill import SpillFile
from monitor.status import TargetStatus, model_summary, target_status
from monitor.storage.alerts import AlertStore
from monitor.storage.catalogue import CatalogueStore
from monitor.storage.database import connected, head_revision, upgrade
from monitor.storage.reports import alert_states, rollups_between, status_samples
from monitor.web.process import WebProcess, serve_until
from monitor.web.security import Listen, exposure_problem


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


def spill_problem(cfg: Config) -> str | None:
    """Why the spill file cannot be written where the config puts it, or None."""
    spill = SpillFile(Path(cfg.database.spill_path))
    try:
        spill.check_writable()
    except OSError as exc:
        return f"spill: cannot write {spill.path}: {exc.strerror or exc}"
    return None


async def check(cfg: Config, out: TextIO, err: TextIO) -> int:
    """`provmon check`: the config's summary (Apprise URLs included), that the spill file can
    be written, then whether the database is usable."""
    problems = channel_problems(cfg.channels)
    if problems:
        raise ConfigError(cfg.source, problems)
    out.write(terminal.config_summary(cfg))
    out.flush()
    spill = spill_problem(cfg)
    if spill is not None:
        err.write(spill + "\n")
        return EXIT_FAIL
    out.write(f"spill file {cfg.database.spill_path} writable\n")
    try:
        async with connected(cfg.database_url.reveal()):
            pass
    except DatabaseError as exc:
        err.write(f"database: {exc}\n")
        return EXIT_FAIL
    out.write(f"database reachable, schema at revision {head_revision()}\n")
    return EXIT_OK


async def db_upgrade(cfg: Config, out: TextIO) -> int:
    async with connected(cfg.database_url.reveal(), migrated=False) as engine:
        before, after = await upgrade(engine)
    out.write(terminal.upgrade_text(before, after))
    return EXIT_OK


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
    out.write(terminal.reports_written_text(written, period.label))
    return EXIT_OK if written else EXIT_FAIL


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
    kinds = {name: w.kind for name, w in cfg.workloads.items()}
    statuses = target_status(
        [t.target_key for t in cfg.targets], recent, day, states, now, accounting(cfg), kinds
    )
    return statuses, model_summary(statuses)


async def show_status(cfg: Config, out: TextIO, *, as_json: bool = False) -> int:
    """`provmon status`: the status table and per-model lines, or the same as JSON."""
    statuses, summary = await status(cfg)
    show = terminal.status_json if as_json else terminal.status_text
    out.write(show(statuses, summary))
    return EXIT_OK


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
    out.write(terminal.incidents_text(found, utc_now(), as_json=as_json))
    return EXIT_OK


async def alerts_test(cfg: Config, out: TextIO) -> int:
    """`provmon alerts test`: a test notification to every channel; 0 when all took it."""
    failed = 0
    async with client_session() as session:
        notifiers = make_notifiers(cfg, session)
        for name, notifier in notifiers.items():
            try:
                await notifier.send(trial_payload(name, utc_now(), cfg.vantage))
            except ChannelError as exc:
                failed += 1
                out.write(terminal.channel_result(name, exc))
            else:
                out.write(terminal.channel_result(name, None))
    if not notifiers:
        out.write("no channels configured\n")
    return EXIT_FAIL if failed else EXIT_OK


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
        heap.freeze()

        async def one(target: Target, workload: Workload) -> None:
            async with sem:
                result = await prober.probe(target, workload)
            results.append(result)
            on_result(result)

        try:
            async with asyncio.TaskGroup() as tg:
                for _ in range(count):
                    for target, workload in jobs:
                        tg.create_task(one(target, workload))
        finally:
            heap.thaw()
    return results


async def probe(
    cfg: Config,
    out: TextIO,
    *,
    provider: str | None = None,
    only_model: str | None = None,
    workload: str | None = None,
    count: int = 1,
    concurrency: int = 8,
    as_json: bool = False,
) -> int:
    """`provmon probe`: each matching job `count` times, a line per probe as it ends, then
    (for more than one probe) the comparison table. 0 when every probe was ok."""
    jobs: list[Job] = probe_jobs(cfg, provider=provider, model=only_model, workload=workload)
    # Lines go through a writer thread: a slow reader of `out` never stalls the probes.
    lines = LineWriter(out).start()
    try:
        if not as_json:
            lines.write(terminal.probe_header())

        def show(r: ProbeResult) -> None:
            lines.write(terminal.probe_line(r, as_json=as_json))

        results = await probe_once(cfg, jobs, count=count, concurrency=concurrency, on_result=show)
        if not as_json and len(results) > 1:
            lines.write("\n" + terminal.comparison_table(results))
    finally:
        await asyncio.to_thread(lines.close)
    return EXIT_OK if all(r.outcome is Outcome.OK for r in results) else EXIT_FAIL


async def discover(
    base_url: str, model: str, api_key: Secret | None, out: TextIO, *, as_json: bool = False
) -> int:
    """`provmon discover`: the endpoints serving `model`, as config entries (or JSON), read
    with the key when there is one."""
    async with client_session() as session:
        endpoints = await read_endpoints(session, base_url, model, api_key)
    if not endpoints:
        raise DiscoverError(f"{endpoints_url(base_url, model)}: no endpoints serve {model}")
    if as_json:
        out.write(json.dumps([e.to_json() for e in endpoints], indent=2) + "\n")
    else:
        out.write(to_toml(model, endpoints, authenticated=api_key is not None))
    return EXIT_OK


async def catalogue(
    cfg: Config,
    out: TextIO,
    *,
    since: datetime | None = None,
    models: Sequence[str] | None = None,
    as_json: bool = False,
) -> int:
    """`provmon catalogue`: the recorded changes in OpenRouter's endpoints, oldest first."""
    async with connected(cfg.database_url.reveal()) as engine:
        found = await CatalogueStore(engine).events(since=since, models=models)
    out.write(catalogue_text(found, as_json=as_json))
    return EXIT_OK


def scenario_farm(name: str, seed: int) -> Farm:
    if name == "quirks":
        return quirks_farm(seed)
    return demo_farm(seed)


async def simulate(scenario: str, host: str, port: int, seed: int, out: TextIO) -> int:
    """Serve a simulator scenario until cancelled, printing where each provider is."""
    farm = scenario_farm(scenario, seed)

    def ready(sim: Simulator) -> None:
        providers = [(p.name, sim.direct_base_url(p.slug)) for p in farm.profiles]
        out.write(
            terminal.simulator_text(
                scenario, sim.base_url, sim.openrouter_base_url, farm.model_ids(), providers
            )
        )
        out.flush()

    await serve(farm, host, port, ready=ready)
    return EXIT_OK


async def run_daemon(
    cfg: Config,
    stop: asyncio.Event,
    *,
    metrics_listen: tuple[str, int] | None = None,
    systemd: SystemdNotifier | None = None,
) -> int:
    """`provmon run`: schedule probes, store results, alert, prune; on `stop`, drain and
    flush. Beside it: the metrics endpoint (`metrics_listen` or `[metrics] listen`) and the
    OpenTelemetry export (`[otel]`), the live pages (`[web] listen`, their own process), and
    systemd's notify protocol when `systemd` has a socket."""
    if not cfg.targets:
        raise UsageError(f"{cfg.source} has no [[targets]]: nothing to monitor")
    spill = spill_problem(cfg)
    if spill is not None:  # found now, not during the first outage
        raise DatabaseError(f"{spill} (set [database] spill_path to a writable place)")
    sidecars: list[Sidecar] = []
    listen = metrics_listen or (cfg.metrics.address if cfg.metrics else None)
    if listen is not None or cfg.otel is not None:
        sidecars.append(MetricsSidecar(cfg, listen))
    if cfg.web.listen is not None:  # the live pages, from a process of their own
        sidecars.append(WebProcess(cfg, Listen.parse(cfg.web.listen)))
    if systemd is not None and systemd.enabled:
        sidecars.append(SystemdSidecar(systemd, stop))  # last: READY=1 once all is up
    async with build_daemon(cfg, sidecars=sidecars) as daemon:
        await daemon.serve(stop)
    return EXIT_OK


async def serve_pages(cfg: Config, listen: Listen, out: TextIO) -> int:
    """`provmon serve`: the live pages and JSON API over the database until SIGTERM/Ctrl-C."""
    problem = exposure_problem(listen, cfg.web_token is not None, cfg.web.allow_anonymous)
    if problem is not None:
        raise UsageError(f"--listen {problem}")

    def ready(url: str) -> None:
        out.write(f"serving {url}/ (models) and {url}/api/v1/models; Ctrl-C stops\n")
        out.flush()

    try:
        await serve_until(cfg, listen, asyncio.Event(), on_url=ready)
    except OSError as exc:
        raise UsageError(f"cannot serve on {listen.host}:{listen.port}: {exc.strerror}") from None
    return EXIT_OK
