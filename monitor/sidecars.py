"""The daemon's sidecars of `provmon run`: the metrics endpoint (and OpenTelemetry export) and
systemd's notify protocol, each started and stopped with the daemon (`runtime.Sidecar`)."""

from __future__ import annotations

from pathlib import Path

from monitor.clock import utc_now
from monitor.config import Config
from monitor.exporter.health import NotificationCounts, daemon_health
from monitor.exporter.model import Health
from monitor.exporter.sidecar import MetricsSidecar
from monitor.runtime import Daemon
from monitor.sdnotify import SystemdNotifier
from monitor.spill import SpillFile


class MetricsAttachment:
    """The metrics endpoint (and the OpenTelemetry export) as a sidecar of the daemon: started
    with it, fed every submitted result, and handed the daemon's health on each heartbeat."""

    name = "metrics"

    def __init__(
        self, cfg: Config, listen: tuple[str, int] | None, counts: NotificationCounts
    ) -> None:
        self._cfg, self._listen, self._counts = cfg, listen, counts
        self._sidecar: MetricsSidecar | None = None

    async def start(self, daemon: Daemon) -> None:
        spill = SpillFile(Path(self._cfg.database.spill_path))

        def health() -> Health:
            return daemon_health(
                daemon.writer,
                spill,
                daemon.scheduler,
                daemon.monitor.budget,
                self._counts,
                utc_now(),
            )

        self._sidecar = MetricsSidecar(self._cfg, self._listen, health)
        await self._sidecar.start()
        daemon.writer.tap(self._sidecar.observe)

    async def stop(self) -> None:
        if self._sidecar is not None:
            await self._sidecar.stop()


class SystemdAttachment:
    """systemd's notify protocol: READY=1 once probing, WATCHDOG=1 while the scheduler and the
    writer run (STOPPING=1 is sent when the drain begins, by `run_daemon`)."""

    name = "systemd"

    def __init__(self, notifier: SystemdNotifier) -> None:
        self.notifier = notifier

    async def start(self, daemon: Daemon) -> None:
        self.notifier.ready(f"probing {len(daemon.monitor.jobs)} jobs")
        self.notifier.start_watchdog(lambda: daemon.scheduler.running and daemon.writer.running)

    async def stop(self) -> None:
        await self.notifier.close()
