"""The outbox sender: claims due notifications, sends each to its channel, records the outcome.

A failed send is retried after `retry_base_s × 2^(attempts−1)` (at most an hour) until
`retry_max_attempts`, then marked failed and logged. A row left 'sending' by a sender that died
is taken again after the lease. Delivery is at least once: a crash after a channel accepted a
notification and before it was marked sent makes it go out again, with the same idempotency key.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from monitor.alert_model import OutboxItem, OutboxStatus
from monitor.alerts.channels import Notifier
from monitor.clock import utc_now
from monitor.config.sections import AlertSettings
from monitor.errors import ChannelError, StoreUnavailable
from monitor.logs import OnceWhileFailing
from monitor.storage.alerts import AlertStore

log = logging.getLogger("monitor.alerts")

MAX_BACKOFF_S = 3600.0


def backoff_s(attempts: int, base_s: float) -> float:
    """Wait before the next try after `attempts` failed ones (≥ 1)."""
    return float(min(MAX_BACKOFF_S, base_s * 2 ** max(0, attempts - 1)))


def claimer_id(vantage: str) -> str:
    return f"{vantage}:{os.getpid()}:{uuid.uuid4().hex[:8]}"[:64]


@dataclass(slots=True)
class SenderStats:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    cancelled: int = 0


class OutboxSender:
    def __init__(
        self,
        store: AlertStore,
        notifiers: Mapping[str, Notifier],
        settings: AlertSettings,
        claimer: str,
        *,
        now: Callable[[], datetime] = utc_now,
        poll_s: float = 1.0,
    ) -> None:
        self._store = store
        self._notifiers = notifiers
        self._settings = settings
        self.claimer = claimer
        self._now = now
        self._poll_s = poll_s
        timeouts = [n.timeout_s for n in settings.channels] or [10.0]
        self.lease_s = max(60.0, 3 * max(timeouts))
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._outage = OnceWhileFailing(log, "outbox unavailable")
        self.stats = SenderStats()

    def wake(self) -> None:
        """Something was written to the outbox: look now rather than at the next poll."""
        self._wake.set()

    async def run_once(self) -> int:
        """Send everything due now; returns how many were claimed."""
        async with self._lock:
            items = await self._store.claim_outbox(self.claimer, self._now(), self.lease_s)
            by_channel: dict[str, list[OutboxItem]] = {}
            for item in items:
                by_channel.setdefault(item.channel, []).append(item)
            await asyncio.gather(*(self._send_all(group) for group in by_channel.values()))
            return len(items)

    async def _send_all(self, items: list[OutboxItem]) -> None:
        for item in items:  # one channel: in order
            await self._send(item)

    async def _finish(
        self,
        item: OutboxItem,
        status: OutboxStatus,
        *,
        error: str | None = None,
        next_attempt_at: datetime | None = None,
    ) -> None:
        ok = await self._store.finish(
            item.id, self.claimer, status, self._now(), error=error, next_attempt_at=next_attempt_at
        )
        if not ok:
            log.warning("outbox %d: claim lost before it was recorded as %s", item.id, status)

    async def _send(self, item: OutboxItem) -> None:
        if item.transition.startswith("reminder") and not item.incident_open:
            self.stats.cancelled += 1
            await self._finish(item, OutboxStatus.CANCELLED, error="incident resolved")
            return
        notifier = self._notifiers.get(item.channel)
        if notifier is None:
            self.stats.failed += 1
            log.error("outbox %d: no channel %r in the config", item.id, item.channel)
            await self._finish(item, OutboxStatus.FAILED, error="no such channel")
            return
        # The claim is renewed right before each send, so a row that waited behind slow
        # sends of the same batch is never sent by a second monitor whose lease check saw it
        # as abandoned.
        if not await self._store.renew(item.id, self.claimer, self._now()):
            log.warning("outbox %d: claim lost to another sender; not sending", item.id)
            return
        try:
            await notifier.send(item.payload)
        except ChannelError as exc:
            attempts = item.attempts + 1
            if attempts >= self._settings.retry_max_attempts:
                self.stats.failed += 1
                log.error(
                    "notification %d (%s) to %s failed %d times, giving up: %s",
                    item.id,
                    item.transition,
                    item.channel,
                    attempts,
                    exc,
                )
                await self._finish(item, OutboxStatus.FAILED, error=str(exc))
                return
            wait_s = backoff_s(attempts, self._settings.retry_base_s)
            self.stats.retried += 1
            log.warning(
                "notification %d to %s failed (attempt %d), retrying in %.0f s: %s",
                item.id,
                item.channel,
                attempts,
                wait_s,
                exc,
            )
            await self._finish(
                item,
                OutboxStatus.PENDING,
                error=str(exc),
                next_attempt_at=self._now() + timedelta(seconds=wait_s),
            )
            return
        self.stats.sent += 1
        await self._finish(item, OutboxStatus.SENT)

    async def run(self) -> None:
        """Until cancelled: send what is due, on a wake-up or every `poll_s`."""
        while True:
            try:
                async with asyncio.timeout(self._poll_s):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                while await self.run_once():
                    pass
                self._outage.ok()
            except StoreUnavailable as exc:
                self._outage.failed(exc)
            except Exception:  # a bug of ours: keep sending
                log.exception("outbox sender failed")
