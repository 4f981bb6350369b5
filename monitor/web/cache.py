"""Results over settled history, kept between requests of the web process.

Reading 30 days of hourly rollups takes the database and Python most of a second; the hours
that have ended change only rarely after that (a spill file replayed late, the alert rules
reclassifying a round as the monitor's fault). So a page splits each history read in two: the
settled part [start, until) comes from here, and the recent tail [until, now) from the database,
every time. A cached part is used while it is younger than `max_age_s` and covers the range
asked for; when the range has moved on (the next hour or bucket ended) or it is too old, the
cached one is still served — with its own `until`, so the caller reads a longer tail and the
answer stays exact — while one refresh runs in the background. Only the very first read of a
key waits for the computation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from monitor.errors import StoreUnavailable

log = logging.getLogger(__name__)

V = TypeVar("V")
Compute = Callable[[datetime, datetime], Awaitable[V]]


@dataclass(frozen=True, slots=True)
class _Entry:
    start: datetime
    until: datetime
    value: Any
    made_at: float


class SettledCache:
    def __init__(
        self,
        max_age_s: float = 600.0,
        max_entries: int = 2000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_age_s = max_age_s
        self.max_entries = max_entries
        self._clock = clock
        self._entries: dict[Hashable, _Entry] = {}
        self._running: dict[Hashable, asyncio.Task[None]] = {}
        self.computed = 0
        self.served = 0

    async def get(
        self, key: Hashable, start: datetime, until: datetime, compute: Compute[V]
    ) -> tuple[datetime, V]:
        """(u, value): `value` computed over [s, u) with s ≤ `start` and u ≤ `until`; the caller
        adds what lies in [u, its end) and drops what lies before `start`."""
        entry = self._entries.get(key)
        if entry is None or entry.until > until or entry.start > start:
            task = self._running.get(key)
            if task is None:
                task = self._start(key, start, until, compute)
            await asyncio.shield(task)
            entry = self._entries.get(key)
            if entry is None:  # the computation failed: let the caller see why
                value = await compute(start, until)
                return until, value
            return entry.until, entry.value
        moved = (entry.start, entry.until) != (start, until)
        if (moved or self._age(entry) >= self.max_age_s) and key not in self._running:
            self._start(key, start, until, compute)
        self.served += 1
        return entry.until, entry.value

    def _age(self, entry: _Entry) -> float:
        return self._clock() - entry.made_at

    def _start(
        self, key: Hashable, start: datetime, until: datetime, compute: Compute[Any]
    ) -> asyncio.Task[None]:
        async def run() -> None:
            try:
                value = await compute(start, until)
            except StoreUnavailable as exc:
                cause = type(exc.__cause__ or exc).__name__
                log.warning("web: history refresh postponed, database unavailable (%s)", cause)
                return
            except Exception:  # a bug of ours: logged here; a first read computes again
                log.exception("web: history refresh failed")
                return
            finally:
                self._running.pop(key, None)
            self.computed += 1
            self._entries.pop(key, None)
            self._entries[key] = _Entry(start, until, value, self._clock())
            while len(self._entries) > self.max_entries:
                del self._entries[next(iter(self._entries))]  # the oldest made

        task = asyncio.create_task(run(), name=f"web-history:{key}")
        self._running[key] = task
        return task

    async def close(self, wait_s: float = 5.0) -> None:
        """The server is stopping: let refreshes in flight finish (one query each; cancelled
        mid-query, a database connection may be left unclosed), cancel those that take
        longer than `wait_s`."""
        tasks = list(self._running.values())
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=wait_s)
            for task in late:
                task.cancel()
            for task in late:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._running.clear()
