"""Report periods: ISO weeks (UTC) and arbitrary [since, until) ranges. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


@dataclass(frozen=True, slots=True)
class Period:
    """[start, end) in UTC; `label` names it (`2026-W47`, or the two dates)."""

    start: datetime
    end: datetime
    label: str
    is_week: bool = False

    @property
    def duration(self) -> timedelta:
        return self.end - self.start

    def previous(self) -> Period:
        if self.is_week:
            return week_period(self.start - timedelta(days=7))
        span = self.duration
        return span_period(self.start - span, self.start)

    def finished(self, now: datetime) -> bool:
        return now >= self.end

    def days(self) -> list[date]:
        out, day = [], self.start.date()
        while datetime.combine(day, datetime.min.time(), UTC) < self.end:
            out.append(day)
            day += timedelta(days=1)
        return out


def week_period(any_day: datetime | date) -> Period:
    """The ISO week (Monday 00:00 UTC to the next Monday) containing `any_day`."""
    d = any_day.astimezone(UTC).date() if isinstance(any_day, datetime) else any_day
    monday = d - timedelta(days=d.isoweekday() - 1)
    start = datetime.combine(monday, datetime.min.time(), UTC)
    year, week, _ = monday.isocalendar()
    return Period(start, start + timedelta(days=7), f"{year}-W{week:02d}", True)


def parse_week(text: str) -> Period:
    """`2026-W47` → that ISO week. Raises ValueError with the expected form."""
    m = _WEEK.match(text.strip())
    if not m:
        raise ValueError(f"week {text!r} is not of the form 2026-W47")
    year, week = int(m.group(1)), int(m.group(2))
    try:
        monday = date.fromisocalendar(year, week, 1)
    except ValueError:
        raise ValueError(f"{year} has no ISO week {week}") from None
    return week_period(monday)


def span_period(start: datetime, end: datetime) -> Period:
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("since/until need a time zone (e.g. 2026-11-20T00:00Z)")
    if end <= start:
        raise ValueError("until must be after since")
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    fmt = (
        "%Y-%m-%dT%H%M"
        if (start.hour, start.minute, end.hour, end.minute) != (0,) * 4
        else "%Y-%m-%d"
    )
    return Period(start, end, f"{start.strftime(fmt)}_{end.strftime(fmt)}")


def parse_when(text: str) -> datetime:
    """A date (`2026-11-20`, midnight UTC) or an ISO timestamp; naive means UTC."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)
