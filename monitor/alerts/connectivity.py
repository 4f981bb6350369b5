"""The monitor's own connectivity check: a GET of a configured URL from this vantage.

Any HTTP answer counts as connected; a connection error or timeout does not. Concurrent callers
share one check, and a failing probe reuses a result only when that check started after the
probe did (and is younger than `fresh_s`): a check from before the failure says nothing of it.
So every failing probe can ask "is it us?" without flooding the URL: those of one round share
the check the first of them started.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import aiohttp

from monitor.redact import short_message

log = logging.getLogger("monitor.alerts")


class ConnectivityCheck:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        *,
        timeout_s: float = 5.0,
        fresh_s: float = 2.0,
        on_change: Callable[[bool, str], None] | None = None,
    ) -> None:
        self.url = url
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._fresh_s = fresh_s
        self._on_change = on_change
        self.ok = True
        self.detail = ""
        self._checked_at: float | None = None  # when the latest check that ended started
        self._running: asyncio.Task[bool] | None = None
        self._running_since = 0.0

    async def _get(self) -> tuple[bool, str]:
        try:
            async with self._session.get(self.url, timeout=self._timeout) as resp:
                await resp.read()
                return True, f"HTTP {resp.status}"
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            return False, short_message(f"{type(exc).__name__}: {exc}")

    async def _check(self, started: float) -> bool:
        ok, detail = await self._get()
        self._checked_at = started
        changed = ok != self.ok
        self.ok, self.detail = ok, detail
        if changed:
            if ok:
                log.warning("connectivity check %s passes again", self.url)
            else:
                log.error("connectivity check %s fails: %s", self.url, detail)
            if self._on_change is not None:
                self._on_change(ok, f"connectivity check {self.url} failed: {detail}")
        return ok

    async def check(self) -> bool:
        """Check now (joining a check already running)."""
        if self._running is None or self._running.done():
            self._running_since = time.monotonic()
            self._running = asyncio.create_task(self._check(self._running_since))
        return await asyncio.shield(self._running)

    async def reachable(self, since: float | None = None) -> bool:
        """Whether this vantage is connected, by a check that started at `since` or later
        (time.monotonic(): when the failing probe started) and within `fresh_s`: the latest
        result, the check running, or a new one."""
        now = time.monotonic()
        since = now - self._fresh_s if since is None else max(since, now - self._fresh_s)
        if self._checked_at is not None and self._checked_at >= since:
            return self.ok
        running = self._running
        if running is not None and not running.done():
            if self._running_since >= since:
                return await asyncio.shield(running)
            await asyncio.shield(running)  # one check at a time: then a new one
            if self._checked_at is not None and self._checked_at >= since:
                return self.ok
        return await self.check()
