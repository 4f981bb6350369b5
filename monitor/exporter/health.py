"""The daemon's health as the metrics show it: gathered from the writer, the spill file, the
scheduler, the budget and the notification counts."""

from __future__ import annotations

from datetime import datetime

from monitor.alerts.counts import NotificationCounts
from monitor.budget import DailyBudget
from monitor.exporter.model import Health
from monitor.scheduler import Scheduler
from monitor.spill import SpillFile
from monitor.writer import ProbeWriter


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
