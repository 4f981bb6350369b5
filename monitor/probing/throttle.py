"""Per-provider gates: a request rate (asyncio-throttle) and a bound on requests in flight."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from asyncio_throttle.throttler import Throttler

from monitor.config import ProviderLimits


class ProviderGate:
    """At most `concurrency` probes in flight, started at most `requests_per_s` a second."""

    def __init__(self, limits: ProviderLimits) -> None:
        self._sem = asyncio.Semaphore(limits.concurrency)
        self._throttler: Throttler | None = None
        if limits.requests_per_s is not None:
            # One start per 1/rate seconds: evenly spaced, no bursts.
            self._throttler = Throttler(rate_limit=1, period=1.0 / limits.requests_per_s)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        async with self._sem:
            if self._throttler is not None:
                await self._throttler.acquire()  # type: ignore[no-untyped-call]
            yield


class Gates:
    """One gate per provider name, made on first use from the provider's limits."""

    def __init__(self, limits_for: Callable[[str], ProviderLimits]) -> None:
        self._limits_for = limits_for
        self._gates: dict[str, ProviderGate] = {}

    def for_provider(self, provider: str) -> ProviderGate:
        gate = self._gates.get(provider)
        if gate is None:
            gate = self._gates[provider] = ProviderGate(self._limits_for(provider))
        return gate
