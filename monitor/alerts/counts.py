"""Notifications counted per channel and result, by wrapping each channel (for the metrics)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from monitor.alerts.channels import Notifier
from monitor.errors import ChannelError


class NotificationCounts:
    """Counts what each channel took ("sent") and refused ("failed")."""

    def __init__(self) -> None:
        self._counts: dict[str, dict[str, int]] = {}

    def add(self, channel: str, result: str) -> None:
        by_result = self._counts.setdefault(channel, {"sent": 0, "failed": 0})
        by_result[result] = by_result.get(result, 0) + 1

    def wrap(self, notifiers: Mapping[str, Notifier]) -> dict[str, Notifier]:
        """The same channels, counted; each channel's series exist (at 0) from the start."""
        for name in notifiers:
            self._counts.setdefault(name, {"sent": 0, "failed": 0})
        return {name: _Counted(n, self) for name, n in notifiers.items()}

    def snapshot(self) -> dict[str, dict[str, int]]:
        return {ch: dict(results) for ch, results in self._counts.items()}


class _Counted:
    def __init__(self, inner: Notifier, counts: NotificationCounts) -> None:
        self.name = inner.name
        self._inner = inner
        self._counts = counts

    async def send(self, payload: dict[str, Any]) -> None:
        try:
            await self._inner.send(payload)
        except ChannelError:
            self._counts.add(self.name, "failed")
            raise
        self._counts.add(self.name, "sent")
