"""The catalogue watch: reads OpenRouter's endpoints of every model probed through OpenRouter,
every `[catalogue] every_s`, and records each listing and what changed (with a notification
per change through the outbox).

Owns no resources: the composition root hands it a reader (`monitor.catalogue_api`) and the
store, and schedules `poll`. Tests call `poll` directly with their own clock.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from monitor.alerts.catalogue import catalogue_notifications
from monitor.catalogue.diff import StoredEvent
from monitor.catalogue.listing import Endpoint
from monitor.clock import utc_now
from monitor.config import Config
from monitor.errors import DiscoverError, StoreUnavailable
from monitor.logs import OnceWhileFailing
from monitor.scheduler import Scheduler
from monitor.storage.catalogue import CatalogueStore

log = logging.getLogger("monitor.catalogue")

Reader = Callable[[str], Awaitable[list[Endpoint]]]
"""model → its endpoints; raises DiscoverError when they cannot be read."""

JOB_ID = "catalogue"


class CatalogueWatch:
    def __init__(
        self,
        cfg: Config,
        store: CatalogueStore,
        read: Reader,
        *,
        now: Callable[[], datetime] = utc_now,
        notified: Callable[[], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self._store = store
        self._read = read
        self._now = now
        self._notified = notified  # wakes the outbox sender
        self._failing: dict[str, OnceWhileFailing] = {}
        channels = [c.name for c in cfg.channels]
        self._notifications = (
            catalogue_notifications(channels, cfg.vantage)
            if cfg.catalogue.notify and channels
            else None
        )

    @property
    def models(self) -> list[str]:
        """The models probed through OpenRouter, in config order."""
        return list(dict.fromkeys(t.model for t in self.cfg.targets if t.route == "openrouter"))

    def slot(self, at: datetime) -> int:
        """The poll period `at` falls in: one snapshot per model and slot across monitors."""
        return int(at.timestamp() // self.cfg.catalogue.every_s)

    async def poll(self) -> dict[str, list[StoredEvent] | None]:
        """Read and record every model's listing once; per model, the changes recorded (None:
        not read, or this slot was already recorded by another monitor)."""
        out: dict[str, list[StoredEvent] | None] = {}
        for model in self.models:
            out[model] = await self._poll_model(model)
        if any(out.values()) and self._notified is not None:
            self._notified()
        await self._prune()
        return out

    async def _poll_model(self, model: str) -> list[StoredEvent] | None:
        failing = self._failing.setdefault(
            model, OnceWhileFailing(log, f"catalogue of {model} unavailable")
        )
        try:
            endpoints = await self._read(model)
            now = self._now()
            stored = await self._store.record(
                model,
                self.slot(now),
                now,
                self.cfg.vantage,
                self.cfg.openrouter_key is not None,
                endpoints,
                self._notifications,
            )
        except (DiscoverError, StoreUnavailable) as exc:
            failing.failed(exc)
            return None
        failing.ok()
        for item in stored or ():
            log.info("catalogue change: %s: %s", model, item.event.describe())
        return stored

    async def _prune(self) -> None:
        cutoff = self._now() - timedelta(days=self.cfg.schedule.retention_days)
        try:
            await self._store.prune(cutoff)
        except StoreUnavailable as exc:
            log.debug("catalogue snapshots not pruned: %s", exc)

    async def run(self) -> None:
        """One scheduled poll; a bug of ours is logged, and the next poll comes."""
        try:
            await self.poll()
        except Exception:
            log.exception("catalogue poll failed")

    def schedule(self, scheduler: Scheduler, first_in_s: float = 20.0) -> None:
        """Poll every `every_s`, the first time soon after start."""
        if not self.cfg.catalogue.enabled or not self.models:
            return
        scheduler.every(
            JOB_ID, self.run, interval_s=self.cfg.catalogue.every_s, first_in_s=first_in_s
        )
