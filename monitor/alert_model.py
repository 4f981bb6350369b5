"""The alerting values: probe observations, per-vantage rule state, incidents, outbox items.

A leaf, like `results`: the alert rules and decisions (`monitor.alerts`) and the storage that
keeps them (`monitor.storage`) both import it, and it imports neither."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from monitor.results import Outcome, TargetKey

GLOBAL = "*"
"""The `vantage` of the cross-vantage (quorum) state of a target."""

MASS_FAILURE_KIND = "monitor.mass_failure"


class Status(enum.StrEnum):
    UP = "up"
    DEGRADED = "degraded"
    DOWN = "down"


class IncidentKind(enum.StrEnum):
    """`down` and `degraded` are the provider's (cross-vantage); the others are per vantage."""

    DOWN = "down"
    DEGRADED = "degraded"
    CONFIG = "config"
    VANTAGE = "vantage"
    MONITOR = "monitor"


@dataclass(frozen=True, slots=True)
class Observation:
    """What the rules need of one stored probe."""

    probe_id: str
    started_at: datetime
    outcome: Outcome
    error_kind: str | None = None
    ttft_ms: float | None = None
    decode_tps: float | None = None
    quality: str | None = None  # a quality workload's verdict (ok probes only)

    @property
    def failed(self) -> bool:
        """A failure for the mass-failure detector: it counts against uptime, or did until the
        detector made it `monitor_error`."""
        return self.outcome.counts_against_uptime or self.error_kind == MASS_FAILURE_KIND


@dataclass(frozen=True, slots=True)
class VantageState:
    """The rules' memory for one target seen from one vantage (or `*`: across vantages)."""

    status: Status = Status.UP
    since: datetime | None = None
    failures: int = 0
    successes: int = 0
    client_errors: int = 0
    misconfigured: bool = False
    failing_since: datetime | None = None
    succeeding_since: datetime | None = None
    last_seen_at: datetime | None = None
    evaluated_through: datetime | None = None


@dataclass(frozen=True, slots=True)
class StoredState:
    """A rule state as stored: the state and the incidents it holds open."""

    state: VantageState
    open_incident_id: int | None = None
    config_incident_id: int | None = None


@dataclass(frozen=True, slots=True)
class StatusChange:
    """The target (from one vantage) went from `before` to `after` at `at`."""

    at: datetime
    before: Status
    after: Status


@dataclass(frozen=True, slots=True)
class ConfigChange:
    """Only client errors (401, 403, 404, ...) for a while (`opened`), or an answer again."""

    at: datetime
    opened: bool
    error_kind: str | None = None


Event = StatusChange | ConfigChange


@dataclass(frozen=True, slots=True)
class Incident:
    id: int
    kind: IncidentKind
    target: TargetKey | None
    vantage: str | None
    started_at: datetime
    ended_at: datetime | None
    detected_at: datetime | None
    vantages: tuple[str, ...] = ()
    error_kinds: dict[str, int] = field(default_factory=dict)
    summary: str | None = None

    @property
    def duration_s(self) -> float | None:
        if self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds()

    def to_json(self) -> dict[str, Any]:
        model, provider, route = self.target or (None, None, None)
        return {
            "id": self.id,
            "kind": self.kind.value,
            "model": model,
            "provider": provider,
            "route": route,
            "vantage": self.vantage,
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "detected_at": self.detected_at.isoformat() if self.detected_at else None,
            "duration_s": self.duration_s,
            "vantages": list(self.vantages),
            "error_kinds": dict(self.error_kinds),
            "summary": self.summary,
        }


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    MUTED = "muted"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """A claimed notification to send."""

    id: int
    incident_id: int | None
    transition: str
    channel: str
    payload: dict[str, Any]
    attempts: int
    incident_open: bool
