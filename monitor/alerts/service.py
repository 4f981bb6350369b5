"""Alerting in a running monitor: the evaluator woken by stored probes, the outbox sender,
reminders and the connectivity check as periodic jobs, and a final flush on stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from datetime import datetime

from monitor.alerts.channels import Notifier
from monitor.alerts.connectivity import ConnectivityCheck
from monitor.alerts.delivery import OutboxSender, claimer_id
from monitor.alerts.evaluator import Evaluator, PassReport
from monitor.clock import utc_now
from monitor.config import Config
from monitor.errors import StoreUnavailable
from monitor.logs import OnceWhileFailing
from monitor.scheduler import Scheduler
from monitor.storage.alerts import AlertStore

log = logging.getLogger("monitor.alerts")

CATCH_UP_S = 5.0
"""An evaluation runs at least this often, even with no probe stored (quorum, health)."""


class Alerting:
    def __init__(
        self,
        cfg: Config,
        store: AlertStore,
        notifiers: Mapping[str, Notifier],
        *,
        now: Callable[[], datetime] = utc_now,
        claimer: str | None = None,
        poll_s: float = 1.0,
    ) -> None:
        self.cfg = cfg
        self.store = store
        self._eval_outage = OnceWhileFailing(
            log, "alert evaluation postponed, database unavailable"
        )
        self._remind_outage = OnceWhileFailing(log, "reminders postponed, database unavailable")
        self.sender = OutboxSender(
            store,
            notifiers,
            cfg.alerts,
            claimer or claimer_id(cfg.vantage),
            now=now,
            poll_s=poll_s,
        )
        self.evaluator = Evaluator(cfg, store, now=now, on_outbox=self.sender.wake)
        self.connectivity: ConnectivityCheck | None = None
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def watch(self, check: ConnectivityCheck) -> None:
        """Use `check` as this monitor's connectivity check."""
        self.connectivity = check

    def connectivity_changed(self, ok: bool, note: str) -> None:
        self.evaluator.connectivity_down = not ok
        self.evaluator.connectivity_note = note
        self._wake.set()

    def budget_changed(self, note: str | None) -> None:
        """The daily budget was spent (`note` says so) or reset (None): a monitor alert."""
        self.evaluator.budget_note = note
        self._wake.set()

    def wake(self) -> None:
        """The writer's `on_stored`: new probes are in the database, evaluate soon."""
        self._wake.set()

    async def evaluate(self) -> PassReport | None:
        try:
            report = await self.evaluator.evaluate()
        except StoreUnavailable as exc:
            self._eval_outage.failed(exc)
            return None
        self._eval_outage.ok()
        return report

    async def remind(self) -> None:
        try:
            await self.evaluator.remind()
        except StoreUnavailable as exc:
            self._remind_outage.failed(exc)
        else:
            self._remind_outage.ok()

    async def check_connectivity(self) -> None:
        if self.connectivity is not None:
            await self.connectivity.check()

    async def deliver(self) -> int:
        """Send what is due now (burst mode and the final flush)."""
        try:
            return await self.sender.run_once()
        except StoreUnavailable as exc:
            self._eval_outage.failed(exc)
            return 0

    async def _evaluate_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CATCH_UP_S):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.evaluate()
            except Exception:  # a bug of ours: log it, keep evaluating
                log.exception("alert evaluation failed")

    def schedule(self, scheduler: Scheduler) -> None:
        repeat_s = self.cfg.alerts.repeat_interval_s
        scheduler.every("alerts:remind", self.remind, interval_s=max(0.5, min(60.0, repeat_s / 4)))
        if self.connectivity is not None:
            scheduler.every(
                "alerts:connectivity",
                self.check_connectivity,
                interval_s=self.cfg.alerts.connectivity_every_s,
            )

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._evaluate_loop(), name="alert-evaluator"),
            asyncio.create_task(self.sender.run(), name="outbox-sender"),
        ]

    async def stop(self, flush_s: float = 10.0, *, flush: bool = True) -> None:
        """Stop the loops, then (with `flush`) evaluate what was stored last and send what is
        due; without it the outbox keeps what is due for the next start."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if not flush:
            return
        try:
            async with asyncio.timeout(flush_s):
                await self.evaluate()
                while await self.deliver():
                    pass
        except TimeoutError:
            log.warning("alerts: final flush cut after %.0f s; the outbox keeps the rest", flush_s)
        except Exception:  # a bug of ours must not spoil the shutdown; the outbox keeps it all
            log.exception("alerts: final flush failed")
