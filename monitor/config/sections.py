"""What the config file may say: one frozen pydantic model per section, and the whole file.

`monitor.config.load` validates a parsed TOML document against `ConfigFile` and builds the
objects the rest of provmon uses from it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from monitor.config.checks import (
    BaseUrl,
    EndpointTag,
    HttpUrl,
    IntervalSeconds,
    Percent,
    PeriodSeconds,
    PositiveNumber,
    PositiveSeconds,
    Share,
    TimeoutSeconds,
    Usd,
    WaitSeconds,
    count,
    exposure_problem,
    http_url,
    parse_listen,
)
from monitor.results import Outcome

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
EnvName = Annotated[str, Field(pattern=ENV_NAME.pattern)]
OPENROUTER_BASE_URL = "https://openrouter.ai/api/v1"
FAILURE_OUTCOMES: tuple[Outcome, ...] = tuple(o for o in Outcome if o.counts_against_uptime)
"""The outcomes that count against uptime unless `[uptime] failure_outcomes` says otherwise."""


class Section(BaseModel):
    """The base of every config section: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class UptimeSettings(Section):
    """How uptime is counted (DESIGN.md section 3); reports state these choices."""

    min_samples: Annotated[int, count(1, 1_000_000)] = 10
    failure_outcomes: tuple[Outcome, ...] = FAILURE_OUTCOMES
    maintenance: Literal["exclude", "include"] = "exclude"
    gaps: Literal["ignore", "down"] = "ignore"
    quality_counts: bool = False  # a broken tool call / structured answer counts against uptime

    @field_validator("failure_outcomes")
    @classmethod
    def _not_ok(cls, value: tuple[Outcome, ...]) -> tuple[Outcome, ...]:
        if Outcome.OK in value:
            raise ValueError("ok is a success, not a failure")
        return value


class ReportSettings(Section):
    """Where reports go and when the daemon writes the weekly one (UTC)."""

    out_dir: str = "reports"
    formats: tuple[Literal["html", "md", "csv", "json"], ...] = ("html", "md", "csv", "json")
    weekly_day: Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"] = "mon"
    weekly_hour: Annotated[int, count(0, 23)] = 6
    weekly_minute: Annotated[int, count(0, 59)] = 0


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
    timeout_s: TimeoutSeconds = 10.0

    @model_validator(mode="after")
    def _where(self) -> ChannelSettings:
        if self.type != "log" and (self.url is None) == (self.url_env is None):
            raise ValueError(f"a {self.type} channel needs url or url_env (one of them)")
        if self.type == "webhook" and self.url is not None:
            try:
                http_url(self.url, base=False)
            except ValueError as exc:
                raise ValueError(f"webhook url {exc}") from None
        return self


class AlertSettings(Section):
    """The alert rules of DESIGN.md section 4 and their delivery."""

    failure_threshold: Annotated[int, count(1, 10_000)] = 3
    success_threshold: Annotated[int, count(1, 10_000)] = 2
    repeat_interval_s: PeriodSeconds = 4 * 3600.0
    send_resolved: Annotated[bool, Field(strict=True)] = True
    quorum: Share = 0.5
    vantage_active_s: PeriodSeconds = 900.0
    degraded_ttft_p50_ms: PositiveNumber | None = None
    degraded_decode_tps_p50: PositiveNumber | None = None
    degraded_quality_error_pct: Percent | None = None
    degraded_window_s: PeriodSeconds = 900.0
    degraded_min_samples: Annotated[int, count(1, 1_000_000)] = 5
    connectivity_url: HttpUrl | None = None
    connectivity_every_s: PeriodSeconds = 30.0
    mass_failure_share: Share = 0.9
    mass_failure_min_targets: Annotated[int, count(2, 1_000_000)] = 4
    retry_max_attempts: Annotated[int, count(1, 1000)] = 8
    retry_base_s: TimeoutSeconds = 5.0
    channels: tuple[ChannelSettings, ...] = (ChannelSettings(name="log", type="log"),)

    @model_validator(mode="after")
    def _channel_names_unique(self) -> AlertSettings:
        names = [c.name for c in self.channels]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"channel names must be unique: {', '.join(twice)}")
        return self


class Timeouts(Section):
    """Per-probe deadlines, in seconds."""

    connect_s: TimeoutSeconds = 10.0
    first_token_s: TimeoutSeconds = 60.0
    idle_s: TimeoutSeconds = 30.0
    total_s: TimeoutSeconds = 300.0

    @model_validator(mode="after")
    def _total_covers_first_token(self) -> Timeouts:
        if self.total_s < self.first_token_s:
            raise ValueError("total_s must be at least first_token_s")
        return self


class ProbeSettings(Section):
    """Bounds on what one probe takes from a provider."""

    max_stream_bytes: Annotated[int, Field(ge=4096)] = 16 * 1024 * 1024
    """A stream sending more than this (received or decoded) ends as `stream.too_large`."""
    max_bytes_per_s: Annotated[int, Field(ge=65536)] = 4 * 1024 * 1024
    """Beyond a 1 MiB burst, a stream is read no faster than this (a model streaming 10,000
    tokens/s sends about 1 MB/s): a runaway stream cannot take the CPU from the others."""
    max_events_per_s: Annotated[int, Field(ge=1000)] = 10_000
    """Beyond a burst of 10,000, a stream's events are read no faster than this (the fastest
    models send a few thousand a second): a stream of tiny events, which costs CPU per event
    rather than per byte, cannot take the CPU from the others either."""


class ProviderLimits(Section):
    """How hard provmon may hit one provider: request rate and requests in flight."""

    requests_per_s: (
        Annotated[float, Field(strict=True, allow_inf_nan=False, gt=0, le=100_000)] | None
    ) = None
    concurrency: Annotated[int, count(1, 100_000)] = 4


class OpenRouterSettings(Section):
    base_url: BaseUrl = OPENROUTER_BASE_URL
    api_key_env: EnvName | None = "OPENROUTER_API_KEY"


class ProviderInfo(Section):
    """What a report shows of a provider beyond measurements: context length and prices."""

    context_length: Annotated[int, count(1, 1_000_000_000)] | None = None
    input_price_per_mtok: Usd | None = None
    output_price_per_mtok: Usd | None = None


class EndpointInfo(ProviderInfo):
    """A provider of an OpenRouter target: its report info, and the endpoint its probes pin."""

    endpoint: EndpointTag | None = None


class OpenRouterEndpoint(ProviderInfo):
    """One endpoint as its own target: the provider's name and the tag its probes pin."""

    provider: Annotated[str, Field(min_length=1, max_length=100)]
    endpoint: EndpointTag


class CatalogueSettings(Section):
    """The daemon's reading of OpenRouter's endpoints of the models it probes there."""

    enabled: Annotated[bool, Field(strict=True)] = True
    every_s: Annotated[float, Field(strict=True, allow_inf_nan=False, ge=60, le=86_400)] = 3600.0
    notify: Annotated[bool, Field(strict=True)] = True
    timeout_s: TimeoutSeconds = 30.0


class _PriceFields(ProviderInfo):
    stream_options: Annotated[bool, Field(strict=True)] = True
    workloads: tuple[str, ...] = ("short",)
    interval_s: IntervalSeconds | None = None
    tokenizer: Annotated[str, Field(min_length=1)] | None = None
    """The model's own tokenizer (`tokenizer.json`, or a `.tiktoken` file), for counting
    tokens when the provider reports no usage; tiktoken's cl100k_base otherwise."""


DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///provmon.db"
DATABASE_DRIVERS = ("sqlite+aiosqlite://", "postgresql+asyncpg://")


class DatabaseSettings(Section):
    """Where probes are stored: `url`, or `url_env` naming a variable that holds it (use that
    when the URL carries a password)."""

    url: str = DEFAULT_DATABASE_URL
    url_env: EnvName | None = None
    spill_path: str = "provmon-spill.jsonl"

    @field_validator("url")
    @classmethod
    def _known_driver(cls, url: str) -> str:
        if not url.startswith(DATABASE_DRIVERS):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        if url.startswith("sqlite") and not url.removeprefix("sqlite+aiosqlite:///"):
            raise ValueError("give a file, e.g. sqlite+aiosqlite:///provmon.db")
        return url


class ScheduleSettings(Section):
    """How often each target is probed, how much that may cost, how long probes are kept."""

    interval_s: IntervalSeconds = 60.0
    jitter_s: WaitSeconds = 5.0
    budget_usd_per_day: Usd | None = None
    retention_days: Annotated[int, count(1, 36_500)] = 30
    drain_s: WaitSeconds = 30.0
    status_every_s: PeriodSeconds = 60.0

    @model_validator(mode="after")
    def _jitter_below_interval(self) -> ScheduleSettings:
        if self.jitter_s >= self.interval_s:
            raise ValueError("jitter_s must be less than interval_s")
        return self


class MetricsSettings(Section):
    """The Prometheus endpoint (`/metrics`, `/healthz`, `/readyz`); off unless `listen` is set."""

    listen: str

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        parse_listen(value)
        return value.strip()

    @property
    def address(self) -> tuple[str, int]:
        return parse_listen(self.listen)


class OtelSettings(Section):
    """OpenTelemetry export (OTLP over HTTP) of every probe; needs the `provmon[otel]` extra."""

    endpoint: Annotated[str, Field(pattern=r"^https?://[^\s?#]+$")]
    interval_s: Annotated[float, Field(ge=1, le=3600)] = 60.0
    timeout_s: Annotated[float, Field(gt=0, le=300)] = 10.0
    headers_env: EnvName | None = None
    """A variable holding `key=value,key2=value2` headers (an API key for the backend)."""


class DirectTarget(_PriceFields):
    """A provider's own OpenAI-compatible endpoint."""

    route: Literal["direct"]
    model: Annotated[str, Field(min_length=1)]
    provider: Annotated[str, Field(min_length=1)]
    base_url: BaseUrl
    provider_model: str | None = None
    api_key_env: EnvName | None = None


class OpenRouterTarget(_PriceFields):
    """A model on OpenRouter: a target per provider (pinned to it, or to its `info` endpoint)
    and per entry of `endpoints` (so two endpoints of one provider are two targets)."""

    route: Literal["openrouter"]
    model: Annotated[str, Field(min_length=1)]
    providers: tuple[Annotated[str, Field(min_length=1)], ...] = ()
    info: dict[str, EndpointInfo] = {}
    endpoints: tuple[OpenRouterEndpoint, ...] = ()

    @model_validator(mode="after")
    def _info_for_listed_providers(self) -> OpenRouterTarget:
        if not self.providers and not self.endpoints:
            raise ValueError("give providers, endpoints, or both")
        unknown = sorted(set(self.info) - set(self.providers))
        if unknown:
            raise ValueError(f"info for providers not in providers: {', '.join(unknown)}")
        return self


TargetEntry = Annotated[DirectTarget | OpenRouterTarget, Field(discriminator="route")]


class WebSettings(Section):
    """The live pages and JSON API (`provmon serve`; `provmon run` serves them too, from a
    process of its own, when `listen` is set). An address other than loopback needs
    `auth_token_env` (a bearer token or basic-auth password) or `allow_anonymous = true`."""

    listen: str | None = None
    auth_token_env: EnvName | None = None
    allow_anonymous: bool = False
    refresh_s: Annotated[float, Field(ge=1, le=10)] = 5.0

    @model_validator(mode="after")
    def _guarded(self) -> WebSettings:
        if self.listen is not None:
            host, _ = parse_listen(self.listen)
            problem = exposure_problem(host, self.auth_token_env is not None, self.allow_anonymous)
            if problem is not None:
                raise ValueError(problem)
        return self
