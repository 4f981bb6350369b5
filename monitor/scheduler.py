"""Timing: every job on APScheduler 3 (AsyncIOScheduler). The only module that imports it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from apscheduler.events import (
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    EVENT_JOB_SUBMITTED,
    JobEvent,
    JobSubmissionEvent,
)
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from monitor.sketch import LogHistogram

Job = Callable[[], Awaitable[None]]
LATE_S = 1.0


@dataclass(slots=True)
class SchedulerStats:
    """How punctual the runs were: lateness is start − scheduled slot (jitter included)."""

    lateness_s: LogHistogram = field(default_factory=LogHistogram)
    late: int = 0  # started more than LATE_S after the slot
    missed: int = 0  # dropped: later than the misfire grace time
    overlapped: int = 0  # dropped: the previous run of the job was still going


class Scheduler:
    def __init__(self) -> None:
        self._sched = AsyncIOScheduler(timezone=UTC)
        self.stats = SchedulerStats()
        self._sched.add_listener(
            self._on_event, EVENT_JOB_SUBMITTED | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES
        )

    def _on_event(self, event: JobEvent) -> None:
        if event.code == EVENT_JOB_MISSED:
            self.stats.missed += 1
        elif event.code == EVENT_JOB_MAX_INSTANCES:
            self.stats.overlapped += 1
        elif isinstance(event, JobSubmissionEvent):
            now = datetime.now(UTC)
            for slot in event.scheduled_run_times:
                late_s = max(0.0, (now - slot).total_seconds())
                self.stats.lateness_s.add(late_s)
                if late_s > LATE_S:
                    self.stats.late += 1

    def every(
        self,
        job_id: str,
        func: Job,
        *,
        interval_s: float,
        jitter_s: float = 0.0,
        first_in_s: float = 0.0,
    ) -> None:
        """Run `func` every `interval_s` (plus up to `jitter_s` of random delay), starting
        `first_in_s` from now. One run at a time; missed runs are coalesced into one, and a run
        later than one interval is skipped rather than run late."""
        start = datetime.now(UTC) + timedelta(seconds=first_in_s)
        self._sched.add_job(
            func,
            IntervalTrigger(seconds=interval_s, start_date=start, jitter=jitter_s or None),
            id=job_id,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, int(interval_s)),
            replace_existing=True,
        )

    def cron(self, job_id: str, func: Job, **fields: str | int) -> None:
        """Run `func` on a cron schedule in UTC, e.g. `hour=3, minute=17`."""
        self._sched.add_job(
            func,
            CronTrigger(timezone=UTC, **fields),
            id=job_id,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=3600,
            replace_existing=True,
        )

    def start(self) -> None:
        self._sched.start()

    def shutdown(self) -> None:
        """Stop starting jobs; runs in flight are left to the caller to drain."""
        if self._sched.running:
            self._sched.shutdown(wait=False)

    @property
    def job_count(self) -> int:
        return len(self._sched.get_jobs())


def cron_fire_times(
    expr: str, start: datetime, end: datetime, limit: int = 10_000
) -> list[datetime]:
    """Times in [start, end) at which a five-field cron expression (UTC) fires."""
    trigger = CronTrigger.from_crontab(expr, timezone=UTC)
    out: list[datetime] = []
    previous: datetime | None = None
    now = start - timedelta(microseconds=1)
    while len(out) < limit:
        fire = trigger.get_next_fire_time(previous, now)
        if fire is None or fire >= end:
            break
        if fire >= start:
            out.append(fire)
        previous, now = fire, fire + timedelta(seconds=1)
    return out
