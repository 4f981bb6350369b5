"""Config sections for reports, uptime accounting, maintenance windows and alerts.

Frozen pydantic models, validated with the rest of the file by `monitor.config`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
PositiveSeconds = Annotated[float, Field(gt=0)]
FailureOutcome = Literal[
    "server_error", "timeout", "connection_error", "stream_error", "empty_response"
]
FAILURE_OUTCOMES: tuple[FailureOutcome, ...] = (
    "server_error",
    "timeout",
    "connection_error",
    "stream_error",
    "empty_response",
)


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UptimeSettings(Section):
    """How uptime is counted (DESIGN.md section 3); reports state these choices."""

    min_samples: Annotated[int, Field(ge=1)] = 10
    failure_outcomes: tuple[FailureOutcome, ...] = FAILURE_OUTCOMES
    maintenance: Literal["exclude", "include"] = "exclude"
    gaps: Literal["ignore", "down"] = "ignore"


class ReportSettings(Section):
    """Where reports go and when the daemon writes the weekly one (UTC)."""

    out_dir: str = "reports"
    formats: tuple[Literal["html", "md", "csv", "json"], ...] = ("html", "md", "csv", "json")
    weekly_day: Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"] = "mon"
    weekly_hour: Annotated[int, Field(ge=0, le=23)] = 6
    weekly_minute: Annotated[int, Field(ge=0, le=59)] = 0


def scope_covers(
    target: str | None, provider: str | None, model: str | None, key: tuple[str, str, str]
) -> bool:
    """A maintenance scope (a `model|provider|route` key, a provider, a model; all None: every
    target) covers the target `key`."""
    m, p, r = key
    if target is not None and target != f"{m}|{p}|{r}":
        return False
    if provider is not None and provider.casefold() != p.casefold():
        return False
    return model is None or model == m


class MaintenanceWindow(Section):
    """A time when notifications are muted (and, by default, probes left out of uptime).

    One-off (`start`, `end`) or recurring (`cron`, five fields in UTC, plus `duration_s`). Scoped
    to a `target` key, a `provider` or a `model`; with none of them, to everything.
    """

    name: str = ""
    start: datetime | None = None
    end: datetime | None = None
    cron: str | None = None
    duration_s: PositiveSeconds | None = None
    target: str | None = None
    provider: str | None = None
    model: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> MaintenanceWindow:
        one_off = self.start is not None or self.end is not None
        recurring = self.cron is not None or self.duration_s is not None
        if one_off == recurring:
            raise ValueError("give either start and end, or cron and duration_s")
        if one_off:
            if self.start is None or self.end is None:
                raise ValueError("a one-off window needs both start and end")
            if self.start.tzinfo is None or self.end.tzinfo is None:
                raise ValueError("start and end need a UTC offset, e.g. 2026-11-20T02:00:00Z")
            if self.end <= self.start:
                raise ValueError("end must be after start")
        elif self.cron is None or self.duration_s is None:
            raise ValueError("a recurring window needs both cron and duration_s")
        elif len(self.cron.split()) != 5:
            raise ValueError("cron needs five fields: minute hour day month weekday")
        else:
            try:
                from monitor.scheduler import cron_next  # cron arithmetic lives there

                cron_next(self.cron, datetime(2000, 1, 1, tzinfo=UTC))
            except ValueError as exc:
                raise ValueError(f"cron {self.cron!r}: {exc}") from None
        return self


class ChannelSettings(Section):
    """Where notifications go: a JSON webhook (Alertmanager's payload), Apprise URLs, the log."""

    name: Annotated[str, Field(min_length=1, max_length=64)]
    type: Literal["webhook", "apprise", "log"]
    url: str | None = None
    url_env: EnvName | None = None
    hmac_secret_env: EnvName | None = None
    timeout_s: PositiveSeconds = 10.0

    @model_validator(mode="after")
    def _where(self) -> ChannelSettings:
        if self.type != "log" and (self.url is None) == (self.url_env is None):
            raise ValueError(f"a {self.type} channel needs url or url_env (one of them)")
        if (
            self.type == "webhook"
            and self.url is not None
            and not self.url.startswith(("http://", "https://"))
        ):
            raise ValueError("a webhook url must start with http:// or https://")
        return self


class AlertSettings(Section):
    """The alert rules of DESIGN.md section 4 and their delivery."""

    failure_threshold: Annotated[int, Field(ge=1)] = 3
    success_threshold: Annotated[int, Field(ge=1)] = 2
    repeat_interval_s: PositiveSeconds = 4 * 3600.0
    send_resolved: bool = True
    quorum: Annotated[float, Field(gt=0, le=1)] = 0.5
    vantage_active_s: PositiveSeconds = 900.0
    degraded_ttft_p50_ms: PositiveSeconds | None = None
    degraded_decode_tps_p50: PositiveSeconds | None = None
    degraded_window_s: PositiveSeconds = 900.0
    degraded_min_samples: Annotated[int, Field(ge=1)] = 5
    connectivity_url: str | None = None
    connectivity_every_s: PositiveSeconds = 30.0
    mass_failure_share: Annotated[float, Field(gt=0, le=1)] = 0.9
    mass_failure_min_targets: Annotated[int, Field(ge=2)] = 4
    retry_max_attempts: Annotated[int, Field(ge=1)] = 8
    retry_base_s: PositiveSeconds = 5.0
    channels: tuple[ChannelSettings, ...] = (ChannelSettings(name="log", type="log"),)

    @model_validator(mode="after")
    def _channel_names_unique(self) -> AlertSettings:
        names = [c.name for c in self.channels]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"channel names must be unique: {', '.join(twice)}")
        return self
