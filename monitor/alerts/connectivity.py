"""The monitor's own connectivity check: a GET of a configured URL from this vantage.

Any HTTP answer counts as connected; a connection error or timeout does not. Concurrent callers
share one check, and a result younger than `fresh_s` is reused, so every failing probe can ask
"is it us?" without flooding the URL.
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
        self._checked_at: float | None = None
        self._running: asyncio.Task[bool] | None = None

    async def _get(self) -> tuple[bool, str]:
        try:
            async with self._session.get(self.url, timeout=self._timeout) as resp:
                await resp.read()
                return True, f"HTTP {resp.status}"
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            return False, short_message(f"{type(exc).__name__}: {exc}")

    async def _check(self) -> bool:
        ok, detail = await self._get()
        self._checked_at = time.monotonic()
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
            self._running = asyncio.create_task(self._check())
        return await asyncio.shield(self._running)

    async def reachable(self) -> bool:
        """The latest result if fresh, else a new check."""
        if self._checked_at is not None and time.monotonic() - self._checked_at < self._fresh_s:
            return self.ok
        return await self.check()
