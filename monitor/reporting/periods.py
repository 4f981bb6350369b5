"""Report periods: ISO weeks (UTC) and arbitrary [since, until) ranges. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")
_AGE = re.compile(r"^(\d{1,9})([mhd])$")
_AGE_S = {"m": 60, "h": 3600, "d": 86400}
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2999, 12, 31, tzinfo=UTC)
LONGEST = timedelta(days=3660)
"""Periods lie within [EARLIEST, LATEST] and span at most ten years: enough for any report,
and far enough from datetime's limits that the previous period never overflows."""


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
    if not EARLIEST.year <= year < LATEST.year:
        raise ValueError(f"week {text!r}: give a year from {EARLIEST.year} to {LATEST.year - 1}")
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
    _in_range(start)
    _in_range(end)
    if end - start > LONGEST:
        raise ValueError("a period spans at most ten years")
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    fmt = (
        "%Y-%m-%dT%H%M"
        if (start.hour, start.minute, end.hour, end.minute) != (0,) * 4
        else "%Y-%m-%d"
    )
    return Period(start, end, f"{start.strftime(fmt)}_{end.strftime(fmt)}")


def _in_range(when: datetime) -> datetime:
    if not EARLIEST <= when <= LATEST:
        raise ValueError(
            f"{when.date().isoformat()} is out of range: give a date from "
            f"{EARLIEST.date().isoformat()} to {LATEST.date().isoformat()}"
        )
    return when


def parse_when(text: str) -> datetime:
    """A date (`2026-11-20`, midnight UTC) or an ISO timestamp; naive means UTC. Raises
    ValueError when it is not one, or lies outside [EARLIEST, LATEST]."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return _in_range(value if value.tzinfo else value.replace(tzinfo=UTC))


def parse_since(text: str, now: datetime) -> datetime:
    """`--since`: a date or timestamp as `parse_when`, or an age before `now` such as 90m,
    24h, 7d. Raises ValueError saying what to give."""
    text = text.strip()
    m = _AGE.match(text)
    try:
        if m is None:
            return parse_when(text)
        seconds = int(m.group(1)) * _AGE_S[m.group(2)]
        if seconds > (now - EARLIEST).total_seconds():
            raise ValueError(f"{text} reaches back before {EARLIEST.date().isoformat()}")
        return now - timedelta(seconds=seconds)
    except ValueError as exc:
        raise ValueError(
            f"--since {text!r}: {exc}; give a date, a timestamp or an age like 7d"
        ) from None
