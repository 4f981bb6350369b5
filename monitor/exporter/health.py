"""The daemon's health as the metrics show it: gathered from the writer, the spill file, the
scheduler and the budget, and notifications counted per channel and result."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from monitor.alerts.channels import Notifier
from monitor.budget import DailyBudget
from monitor.errors import ChannelError
from monitor.exporter.model import Health
from monitor.scheduler import Scheduler
from monitor.spill import SpillFile
from monitor.writer import ProbeWriter


class NotificationCounts:
    """Counts what each channel took ("sent") and refused ("failed")."""

    def __init__(self) -> None:
        self._counts: dict[str, dict[str, int]] = {}

    def add(self, channel: str, result: str) -> None:
        by_result = self._counts.setdefault(channel, {"sent": 0, "failed": 0})
        by_result[result] = by_result.get(result, 0) + 1

    def wrap(self, notifiers: Mapping[str, Notifier]) -> dict[str, Notifier]:
        """The same channels, counted; each channel's series exist (at 0) from the start."""
        for name in notifiers:
            self._counts.setdefault(name, {"sent": 0, "failed": 0})
        return {name: _Counted(n, self) for name, n in notifiers.items()}

    def snapshot(self) -> dict[str, dict[str, int]]:
        return {ch: dict(results) for ch, results in self._counts.items()}


class _Counted:
    def __init__(self, inner: Notifier, counts: NotificationCounts) -> None:
        self.name = inner.name
        self._inner = inner
        self._counts = counts

    async def send(self, payload: dict[str, Any]) -> None:
        try:
            await self._inner.send(payload)
        except ChannelError:
            self._counts.add(self.name, "failed")
            raise
        self._counts.add(self.name, "sent")


def daemon_health(
    writer: ProbeWriter,
    spill: SpillFile,
    scheduler: Scheduler,
    budget: DailyBudget,
    notifications: NotificationCounts,
    now: datetime,
) -> Health:
    spill_bytes = spill.size()
    w, sch = writer.stats, scheduler.stats
    remaining = None
    if budget.limit_usd is not None:
        budget.allows(now)  # rolls the day over at midnight UTC
        remaining = max(0.0, budget.limit_usd - budget.spent_usd)
    return Health(
        writer_queue_depth=writer.backlog,
        spill_records=max(0, w.spilled - w.replayed) if spill_bytes else 0,
        spill_bytes=spill_bytes,
        writer_storing=not writer.db_down,
        scheduler_late=sch.late,
        scheduler_missed=sch.missed,
        budget_remaining_usd=remaining,
        notifications=notifications.snapshot(),
    )
