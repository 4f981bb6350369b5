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
from apscheduler.schedulers.base import STATE_RUNNING
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


_DOW_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _cron_weekdays(field_text: str) -> str:
    """A cron weekday field (0 or 7 = Sunday, names allowed) as APScheduler 3 spells it
    (its numbers start at Monday, so numbers are turned into names)."""
    if field_text in ("*", "?"):
        return "*"
    days: set[int] = set()
    for part in field_text.lower().split(","):
        span, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if span == "*":
            lo, hi = 0, 6
        else:
            a, _, b = span.partition("-")
            lo = _DOW_NAMES.index(a[:3]) if a[:3] in _DOW_NAMES else int(a)
            hi = (_DOW_NAMES.index(b[:3]) if b[:3] in _DOW_NAMES else int(b)) if b else lo
        if not (0 <= lo <= 7 and 0 <= hi <= 7 and lo <= hi and step >= 1):
            raise ValueError(f"bad weekday field {field_text!r}")
        days.update(d % 7 for d in range(lo, hi + 1, step))
    return ",".join(_DOW_NAMES[d] for d in sorted(days))


def cron_next(expr: str, at_or_after: datetime) -> datetime | None:
    """The first time at or after `at_or_after` that the five-field cron `expr` (UTC, standard
    cron weekdays) fires. Raises ValueError for an invalid expression. No clock is read."""
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError("cron needs five fields: minute hour day month weekday")
    minute, hour, day, month, weekday = fields
    trigger = CronTrigger(
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=_cron_weekdays(weekday),
        timezone=UTC,
    )
    fire: datetime | None = trigger.get_next_fire_time(None, at_or_after.astimezone(UTC))
    return fire


class GridIntervalTrigger(IntervalTrigger):  # type: ignore[misc]
    """An interval trigger whose jitter does not accumulate: each run is a random delay after
    a slot on the start + k × interval grid. (APScheduler 3 adds the interval to the previous
    *jittered* time, so the real period drifts to interval + jitter / 2.)"""

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        if previous_fire_time is not None:
            since = (previous_fire_time - self.start_date).total_seconds()
            step = self.interval_length
            previous_fire_time = self.start_date + timedelta(seconds=since // step * step)
        fire: datetime | None = super().get_next_fire_time(previous_fire_time, now)
        return fire


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
            GridIntervalTrigger(seconds=interval_s, start_date=start, jitter=jitter_s or None),
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

    @property
    def running(self) -> bool:
        """Started, not paused, not shut down."""
        return bool(self._sched.state == STATE_RUNNING)

    def pause(self) -> None:
        """Start no more runs; runs in flight go on (the daemon drains them, then shuts down)."""
        if self._sched.running:
            self._sched.pause()

    def shutdown(self) -> None:
        """Stop the scheduler. APScheduler cancels runs still in flight: drain them first."""
        if self._sched.running:
            self._sched.shutdown(wait=False)


def cron_fire_times(
    expr: str, start: datetime, end: datetime, limit: int = 10_000
) -> list[datetime]:
    """Times in [start, end) at which a five-field cron expression (UTC) fires."""
    out: list[datetime] = []
    at = start
    while len(out) < limit:
        fire = cron_next(expr, at)
        if fire is None or fire >= end:
            break
        out.append(fire)
        at = fire + timedelta(seconds=1)
    return out
