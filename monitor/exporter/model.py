"""What the daemon tells its metrics process, as plain values, and the uptime windows. Pure.

The daemon sends one line per probe (`probe_line`, read back by `ProbeSample.from_line`: the
two change together) and a `Health` snapshot every second over the metrics process's stdin;
`OutcomeWindows` keeps, per series, ok and failed counts per minute (last 31) and per hour
(last 25) for the 5m / 30m / 1d uptime ratios.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from monitor.results import ProbeResult

SeriesKey = tuple[str, str, str, str, str]
"""(model, provider, route, vantage, workload): the labels of every per-target series."""

WINDOWS: tuple[tuple[str, int], ...] = (("5m", 300), ("30m", 1800), ("1d", 86400))
STATES = ("up", "down", "degraded")

HEARTBEAT_S = 1.0
"""How often the daemon sends its health snapshot (the metrics process's heartbeat too)."""


def _s(ms: float | None) -> float | None:
    return None if ms is None else ms / 1000.0


def probe_line(r: ProbeResult) -> list[Any]:
    """The message for one probe: its labels, outcome and measurements (seconds, tokens/s)."""
    return [
        "p",
        r.model,
        r.provider,
        r.route,
        r.vantage,
        r.workload,
        r.outcome.value,
        _s(r.ttft_ms),
        _s(r.latency_ms),
        _s(r.connect_ms),
        r.decode_tps,
        r.e2e_tps,
        r.cost_usd,
        r.started_at.timestamp(),
        r.error_kind,
        r.input_tokens,
        r.output_tokens,
        r.quality,
    ]


@dataclass(frozen=True, slots=True)
class ProbeSample:
    """One probe as the metrics process reads it back."""

    key: SeriesKey
    outcome: str
    ttft_s: float | None
    latency_s: float | None
    connect_s: float | None
    decode_tps: float | None
    e2e_tps: float | None
    cost_usd: float | None
    started_at_s: float
    error_kind: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    quality: str | None = None
    """A quality workload's verdict on the answer (`ProbeResult.quality`), else None."""

    @classmethod
    def from_line(cls, line: Sequence[Any]) -> ProbeSample:
        _, m, p, r, v, w, outcome, ttft, lat, conn, dec, e2e, cost, at, kind, tin, tout, q = line
        key = (m, p, r, v, w)
        return cls(key, outcome, ttft, lat, conn, dec, e2e, cost, float(at), kind, tin, tout, q)

    @property
    def verdict(self) -> str | None:
        """The quality verdict to count: an ok probe's of a quality workload, as the hourly
        rollups count them (`Rollup.qualities`); None for plain workloads and other outcomes."""
        return self.quality if self.outcome == "ok" and self.quality else None


@dataclass(frozen=True, slots=True)
class Health:
    """The daemon's own state, sent every `HEARTBEAT_S`."""

    writer_queue_depth: int = 0
    spill_records: int = 0
    spill_bytes: int = 0
    writer_storing: bool = True
    scheduler_late: int = 0
    scheduler_missed: int = 0
    budget_remaining_usd: float | None = None
    notifications: dict[str, dict[str, int]] = field(default_factory=dict)
    """channel -> result ("sent", "failed") -> count."""

    def to_json(self) -> dict[str, Any]:
        return {
            "writer_queue_depth": self.writer_queue_depth,
            "spill_records": self.spill_records,
            "spill_bytes": self.spill_bytes,
            "writer_storing": self.writer_storing,
            "scheduler_late": self.scheduler_late,
            "scheduler_missed": self.scheduler_missed,
            "budget_remaining_usd": self.budget_remaining_usd,
            "notifications": self.notifications,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Health:
        return cls(**data)


class OutcomeWindows:
    """Ok and failed counts of one series per minute (the last 31) and per hour (the last 25).

    The 5m and 30m windows are the current minute and the 5 or 30 before it; the day is the
    current hour and the 24 before it (as `provmon status` counts its day). Pure: callers pass
    the time in seconds since the epoch.
    """

    __slots__ = ("_hours", "_minutes")

    def __init__(self) -> None:
        self._minutes: dict[int, list[int]] = {}
        self._hours: dict[int, list[int]] = {}

    def add(self, at_s: float, ok: bool) -> None:
        i = 0 if ok else 1
        minute, hour = int(at_s // 60), int(at_s // 3600)
        self._minutes.setdefault(minute, [0, 0])[i] += 1
        self._hours.setdefault(hour, [0, 0])[i] += 1
        if len(self._minutes) > 32:
            for old in [m for m in self._minutes if m < minute - 30]:
                del self._minutes[old]
        if len(self._hours) > 26:
            for old in [h for h in self._hours if h < hour - 24]:
                del self._hours[old]

    def counts(self, seconds: int, now_s: float) -> tuple[int, int]:
        """(ok, failed) over the window of `seconds` (300, 1800 or 86400) ending at `now_s`."""
        if seconds >= 3600:
            buckets, first = self._hours, int(now_s // 3600) - seconds // 3600
        else:
            buckets, first = self._minutes, int(now_s // 60) - seconds // 60
        ok = failed = 0
        for start, (o, f) in buckets.items():
            if start >= first:
                ok, failed = ok + o, failed + f
        return ok, failed

    def ratio(self, seconds: int, now_s: float, min_samples: int) -> float | None:
        """ok / (ok + failed), None below `min_samples` counted probes."""
        ok, failed = self.counts(seconds, now_s)
        if ok + failed < max(1, min_samples):
            return None
        return ok / (ok + failed)


def count_probe(
    windows: OutcomeWindows, outcome: str, at_s: float, failure_outcomes: Collection[str]
) -> None:
    """Count a probe in `windows`: ok is a success, a failure outcome a failure, the rest
    (rate limited, client and monitor errors) neither."""
    if outcome == "ok":
        windows.add(at_s, True)
    elif outcome in failure_outcomes:
        windows.add(at_s, False)
