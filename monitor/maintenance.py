"""Maintenance windows as concrete intervals, and whether a target is in one. Pure: the cron
arithmetic is passed in (`monitor.scheduler.cron_fire_times`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from monitor.aggregate import Window
from monitor.settings import MaintenanceWindow

CronTimes = Callable[[str, datetime, datetime], list[datetime]]


def expand(
    windows: Iterable[MaintenanceWindow], start: datetime, end: datetime, cron_times: CronTimes
) -> list[Window]:
    """Every window interval overlapping [start, end)."""
    out: list[Window] = []
    for w in windows:
        scope = {"target": w.target, "provider": w.provider, "model": w.model}
        if w.start is not None and w.end is not None:
            if w.start < end and w.end > start:
                out.append(Window(w.start, w.end, **scope))
            continue
        assert w.cron is not None and w.duration_s is not None
        span = timedelta(seconds=w.duration_s)
        for fire in cron_times(w.cron, start - span, end):
            out.append(Window(fire, fire + span, **scope))
    return out
