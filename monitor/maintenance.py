"""Maintenance windows: their scope, their concrete intervals, and which one mutes a target now.

Pure: the cron arithmetic lives in `monitor.scheduler` (the only APScheduler user); `expand`
is handed it, `is_open` imports it where used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from monitor.config.sections import MaintenanceWindow
from monitor.results import TargetKey

CronTimes = Callable[[str, datetime, datetime], list[datetime]]


def scope_covers(
    target: str | None, provider: str | None, model: str | None, key: tuple[str, str, str]
) -> bool:
    """A maintenance scope (a `model|provider|route` key, a provider, a model; all None: every
    target) covers the target `key`. A provider covers its endpoints' targets too
    (`DeepInfra` covers `DeepInfra/fp8`)."""
    m, p, r = key
    if target is not None and target != f"{m}|{p}|{r}":
        return False
    if provider is not None and provider.casefold() not in (p.casefold(), _base(p).casefold()):
        return False
    return model is None or model == m


def _base(provider: str) -> str:
    """The provider of an endpoint's target label (`DeepInfra/fp8` → `DeepInfra`)."""
    return provider.partition("/")[0]


@dataclass(frozen=True, slots=True)
class Window:
    """A concrete maintenance interval and what it covers (None: everything)."""

    start: datetime
    end: datetime
    target: str | None = None
    provider: str | None = None
    model: str | None = None

    def covers(self, key: TargetKey) -> bool:
        return scope_covers(self.target, self.provider, self.model, key)

    def touches(self, bin_start: datetime, bin_s: int = 3600) -> bool:
        return self.start < bin_start + timedelta(seconds=bin_s) and self.end > bin_start


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
