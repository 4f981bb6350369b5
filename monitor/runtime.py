"""The daemon build: one monitor assembled from its config and run as one piece.

`build_daemon` opens what it is not given (the database, the HTTP session), wires the store,
the probe writer, the prober, alerting, the scheduler and the `Monitor` together, and yields a
`Daemon`; on leaving it stops the daemon and closes what it opened. `provmon run`,
`provmon demo` and the tests all use it::

    async with build_daemon(cfg) as daemon:      # tests: engine=, session=, now=, pacing=
        await daemon.start()                     # burst=True: probes only by run_round()
        results = await daemon.run_round()       # one round of every probe job (burst mode)
        await daemon.stop()                      # drain, then stop each part once

Services that live as long as the daemon (the web process, a /metrics endpoint) attach as
`Sidecar`s: started after the daemon's parts but before the first probe, stopped after them,
and reading the numbers the daemon exposes (`stats()`: writer, scheduler and monitor counters).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from monitor import heap
from monitor.alerts.channels import Notifier, build_channels
from monitor.alerts.connectivity import ConnectivityCheck
from monitor.alerts.counts import NotificationCounts
from monitor.alerts.service import Alerting
from monitor.catalogue.listing import Endpoint
from monitor.catalogue_api import read_endpoints
from monitor.catalogue_watch import CatalogueWatch
from monitor.clock import utc_now
from monitor.config import Config
from monitor.daemon import Monitor
from monitor.errors import ConfigError
from monitor.probing.client import Prober
from monitor.probing.http import ClientSession, client_session
from monitor.probing.throttle import Gates
from monitor.reporting.job import make_reports
from monitor.reporting.periods import Period
from monitor.results import ProbeResult
from monitor.scheduler import Scheduler
from monitor.spill import SpillFile
from monitor.storage.alerts import AlertStore
from monitor.storage.catalogue import CatalogueStore
from monitor.storage.database import Engine, daemon_engine
from monitor.storage.store import Store
from monitor.writer import ProbeWriter

log = logging.getLogger("monitor")


@dataclass(frozen=True, slots=True)
class Pacing:
    """How often the daemon's own loops look for work: not in the config; tests shorten it."""

    writer_flush_s: float = 0.25
    outbox_poll_s: float = 1.0
    connectivity_timeout_s: float = 5.0
    connectivity_fresh_s: float = 2.0


class Sidecar(Protocol):
    """A service started and stopped with the daemon (e.g. a web or metrics server)."""

    name: str

    async def start(self, daemon: Daemon) -> None: ...

    async def stop(self) -> None: ...


def make_prober(
    session: ClientSession, cfg: Config, *, now: Callable[[], datetime] = utc_now
) -> Prober:
    """The prober every command and the daemon use: the config's timeouts, vantage and
    per-provider gates."""
    return Prober(
        session,
        timeouts=cfg.timeouts,
        vantage=cfg.vantage,
        gates=Gates(cfg.limits_for),
        settings=cfg.probe,
        now=now,
    )


def make_notifiers(cfg: Config, session: ClientSession) -> dict[str, Notifier]:
    """The configured alert channels; a channel that cannot be built is a config error."""
    try:
        return dict(build_channels(cfg.channels, session))
    except ValueError as exc:
        raise ConfigError(cfg.source, [f"alerts.channels: {exc}"]) from None


def make_alerting(
    cfg: Config,
    engine: Engine,
    session: ClientSession,
    *,
    now: Callable[[], datetime] = utc_now,
    pacing: Pacing = Pacing(),
    counts: NotificationCounts | None = None,
) -> Alerting:
    """The evaluator, outbox sender and channels (counted in `counts`), and the connectivity
    check when configured."""
    notifiers: Mapping[str, Notifier] = make_notifiers(cfg, session)
    if counts is not None:
        notifiers = counts.wrap(notifiers)
    alerting = Alerting(cfg, AlertStore(engine), notifiers, now=now, poll_s=pacing.outbox_poll_s)
    if cfg.alerts.connectivity_url:
        alerting.watch(
            ConnectivityCheck(
                session,
                cfg.alerts.connectivity_url,
                timeout_s=pacing.connectivity_timeout_s,
                fresh_s=pacing.connectivity_fresh_s,
                on_change=alerting.connectivity_changed,
            )
        )
    return alerting


def make_catalogue_watch(
    cfg: Config,
    engine: Engine,
    session: ClientSession,
    *,
    now: Callable[[], datetime] = utc_now,
    notified: Callable[[], None] | None = None,
) -> CatalogueWatch:
    """The watch on OpenRouter's endpoints of the models probed through OpenRouter."""

    async def read(model: str) -> list[Endpoint]:
        return await read_endpoints(
            session,
            cfg.openrouter.base_url,
            model,
            cfg.openrouter_key,
            timeout_s=cfg.catalogue.timeout_s,
        )

    return CatalogueWatch(cfg, CatalogueStore(engine), read, now=now, notified=notified)


class Daemon:
    """One monitor's parts, built and wired once: `start`, `run_round`, `drain`, `stop`."""

    def __init__(
        self,
        cfg: Config,
        engine: Engine,
        session: ClientSession,
        *,
        now: Callable[[], datetime] = utc_now,
        pacing: Pacing = Pacing(),
        sidecars: Sequence[Sidecar] = (),
        db_reachable: bool = True,
    ) -> None:
        self.cfg = cfg
        self.engine = engine
        self._now = now
        self.store = Store(engine, verify_schema=not db_reachable)
        self.notifications = NotificationCounts()
        self.alerting = make_alerting(
            cfg, engine, session, now=now, pacing=pacing, counts=self.notifications
        )
        self.writer = ProbeWriter(
            self.store,
            SpillFile(Path(cfg.database.spill_path)),
            flush_interval_s=pacing.writer_flush_s,
            start_down=not db_reachable,
            on_stored=self.alerting.wake,
        )
        check = self.alerting.connectivity
        self.monitor = Monitor(
            cfg,
            make_prober(session, cfg, now=now),
            self.writer,
            self.store,
            now=now,
            weekly_report=self._weekly_report,
            reachable=check.reachable if check is not None else None,
            on_budget=self.alerting.budget_changed,
        )
        self.catalogue = make_catalogue_watch(
            cfg, engine, session, now=now, notified=self.alerting.sender.wake
        )
        self.scheduler = Scheduler()
        self.sidecars: list[Sidecar] = list(sidecars)
        self.state = "built"  # → running → stopping → stopped

    async def _weekly_report(self, period: Period) -> None:
        await make_reports(self.engine, self.cfg, period, self._now())

    async def start(self, *, burst: bool = False) -> None:
        """Start every part. With `burst` the probe jobs, pruning and the weekly report are
        not scheduled (the caller runs rounds, as arq's burst mode); alerting's periodic jobs
        (reminders, the connectivity check) keep their schedule either way."""
        if self.state != "built":
            raise RuntimeError(f"daemon {self.state}: start() runs once")
        self.state = "running"
        self.writer.start()
        await self.monitor.load_budget()
        if not burst:
            self.monitor.schedule(self.scheduler)
            self.catalogue.schedule(self.scheduler)
        self.alerting.schedule(self.scheduler)
        self.alerting.start()
        for sidecar in self.sidecars:  # before the first probe: a metrics sidecar counts them all
            await sidecar.start(self)
        self.scheduler.start()
        heap.freeze()  # start-up's objects out of the collector's full passes (monitor.heap)
        log.info(
            "provmon running: vantage %r, %d targets, %d probe jobs, database %s",
            self.cfg.vantage,
            len(self.cfg.targets),
            len(self.monitor.jobs),
            self.engine.dialect.name,
        )

    async def run_round(self) -> list[ProbeResult]:
        """Burst mode: every probe job once (targets concurrently); the results are handed to
        the writer as the scheduled jobs' are."""
        if self.state != "running":
            raise RuntimeError(f"daemon {self.state}: start() it before run_round()")
        return await self.monitor.run_round()

    async def drain(self) -> int:
        """Take no new work; probes in flight get `schedule.drain_s` to finish, then are
        cancelled. Returns how many were cancelled."""
        self.scheduler.pause()
        return await self.monitor.drain(self.cfg.schedule.drain_s)

    async def stop(self, *, graceful: bool = True) -> None:
        """Stop once: drain (when `graceful`), shut the scheduler, flush the writer, stop
        alerting (evaluating and sending what was stored last, when `graceful`), then the
        sidecars. Later calls do nothing; a daemon never started has nothing to stop."""
        if self.state != "running":
            self.state = "stopped" if self.state == "built" else self.state
            return
        self.state = "stopping"
        try:
            if graceful:
                log.info("stopping: no new probes")
                await self.drain()
        except BaseException:  # cancelled while draining (a second SIGTERM): stop outright
            graceful = False
            raise
        finally:
            self.scheduler.shutdown()
            # Every wait of the shutdown is bounded by drain_s (a second at least): the spill
            # and the outbox keep whatever is not done by then.
            bound_s = max(1.0, self.cfg.schedule.drain_s)
            await self.writer.close(timeout_s=bound_s)
            await self.alerting.stop(flush=graceful, flush_s=min(10.0, bound_s))
            for sidecar in reversed(self.sidecars):
                await sidecar.stop()
            heap.thaw()
            self.state = "stopped"
            if graceful:
                self.log_status()
            w = self.writer.stats
            log.info("stopped: %d stored, %d in the spill file", w.inserted, w.spilled - w.replayed)

    async def serve(self, stop: asyncio.Event) -> None:
        """`provmon run`: start, log a status line every `schedule.status_every_s` until
        `stop` is set, then stop gracefully."""
        await self.start()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.cfg.schedule.status_every_s)
            self.log_status()
        await self.stop()

    def stats(self) -> dict[str, int | float | bool]:
        """The daemon's counters: what the status line logs and a metrics endpoint serves."""
        m, w, sch = self.monitor, self.writer.stats, self.scheduler.stats
        return {
            "probes_started": m.started,
            "stored": w.inserted,
            "spilled": w.spilled,
            "replayed": w.replayed,
            "queued": self.writer.backlog,
            "db_down": self.writer.db_down,
            "skipped_busy": m.skipped_busy,
            "runs": sch.lateness_s.n,
            "late_over_1s": sch.late,
            "missed": sch.missed,
            "lateness_p50_ms": round((sch.lateness_s.quantile(50) or 0.0) * 1000, 1),
            "lateness_p99_ms": round((sch.lateness_s.quantile(99) or 0.0) * 1000, 1),
        }

    def log_status(self) -> None:
        """One status line; its fields are also structured (`--log-format json`)."""
        fields = self.stats()
        log.info(
            "status: %d probes started, %d stored, %d spilled, %d late > 1s%s",
            fields["probes_started"],
            fields["stored"],
            fields["spilled"],
            fields["late_over_1s"],
            ", database DOWN" if fields["db_down"] else "",
            extra=fields,
        )


@contextlib.asynccontextmanager
async def build_daemon(
    cfg: Config,
    *,
    engine: Engine | None = None,
    session: ClientSession | None = None,
    now: Callable[[], datetime] = utc_now,
    pacing: Pacing = Pacing(),
    sidecars: Sequence[Sidecar] = (),
) -> AsyncIterator[Daemon]:
    """A daemon for `cfg`, not started. The database (`cfg.database_url`, migrated) and the
    HTTP session are opened here unless given; a database that does not answer at start is an
    outage like any other (probing goes on, results wait in the spill). Leaving the block stops
    the daemon: gracefully, or (when it is left by an exception, a cancellation included)
    without draining."""
    async with contextlib.AsyncExitStack() as stack:
        reachable = True
        if engine is None:
            opened, reachable = await stack.enter_async_context(
                daemon_engine(cfg.database_url.reveal())
            )
            engine = opened
        if session is None:
            session = await stack.enter_async_context(client_session())
        daemon = Daemon(
            cfg,
            engine,
            session,
            now=now,
            pacing=pacing,
            sidecars=sidecars,
            db_reachable=reachable,
        )
        try:
            yield daemon
        except BaseException:
            await daemon.stop(graceful=False)
            raise
        await daemon.stop()
