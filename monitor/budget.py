"""The daily probing budget: USD spent per UTC day, and whether paid probing may go on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time


def utc_midnight(now: datetime) -> datetime:
    return datetime.combine(now.astimezone(UTC).date(), time(0), tzinfo=UTC)


@dataclass(slots=True)
class DailyBudget:
    """`limit_usd` per UTC day (None: no limit). Pure: callers pass `now`."""

    limit_usd: float | None
    day: date | None = None
    spent_usd: float = 0.0

    def _roll(self, now: datetime) -> None:
        today = now.astimezone(UTC).date()
        if self.day != today:
            self.day = today
            self.spent_usd = 0.0

    def allows(self, now: datetime) -> bool:
        self._roll(now)
        return self.limit_usd is None or self.spent_usd < self.limit_usd

    def spend(self, usd: float | None, now: datetime) -> None:
        self._roll(now)
        self.spent_usd += usd or 0.0
