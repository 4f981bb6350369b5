"""Maintenance windows: which one (if any) mutes notifications about a target at a given time."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from monitor.alerts.model import TargetKey
from monitor.settings import MaintenanceWindow, scope_covers


def applies_to(window: MaintenanceWindow, target: TargetKey | None) -> bool:
    """The window's scope covers `target` (None: the monitor itself, covered by unscoped
    windows only)."""
    scoped = window.target is not None or window.provider is not None or window.model is not None
    if target is None:
        return not scoped
    return scope_covers(window.target, window.provider, window.model, target)


def is_open(window: MaintenanceWindow, now: datetime) -> bool:
    """`now` falls in the window: [start, end), or [fire, fire + duration) for a cron window."""
    if window.start is not None and window.end is not None:
        return window.start <= now < window.end
    if window.cron is None or window.duration_s is None:
        return False
    duration = timedelta(seconds=window.duration_s)
    from monitor.scheduler import cron_next  # the only module that may load APScheduler

    fire = cron_next(window.cron, now - duration + timedelta(microseconds=1))
    return fire is not None and fire <= now


def muting(
    windows: Iterable[MaintenanceWindow], target: TargetKey | None, now: datetime
) -> MaintenanceWindow | None:
    """The first open window covering `target` at `now`, if any."""
    for window in windows:
        if applies_to(window, target) and is_open(window, now):
            return window
    return None
