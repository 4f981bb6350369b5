"""Loads the TOML config once into frozen, validated objects; errors name the key and the problem.

Secrets are referenced by environment variable name (`api_key_env`); their values are looked up
here, once, from the mapping the caller passes, and kept in `Secret` so they never print.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from monitor.metrics import Prices
from monitor.settings import (
    AlertSettings,
    ChannelSettings,
    MaintenanceWindow,
    ReportSettings,
    UptimeSettings,
)

DEFAULT_CONFIG_PATH = Path("provmon.toml")
OPENROUTER_BASE_URL = "https://openrouter.ai/api/v1"
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ConfigError(Exception):
    """The config cannot be used; `problems` lists each as `key.path: what is wrong`."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))

    def __str__(self) -> str:
        lines = [f"invalid config {self.source}:"] + [f"  {p}" for p in self.problems]
        return "\n".join(lines)


class Secret:
    """A secret value that never shows itself in repr, str, logs or JSON."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


PositiveSeconds = Annotated[float, Field(gt=0)]
EnvName = Annotated[str, Field(pattern=ENV_NAME.pattern)]


class Timeouts(_Model):
    """Per-probe deadlines, in seconds."""

    connect_s: PositiveSeconds = 10.0
    first_token_s: PositiveSeconds = 60.0
    idle_s: PositiveSeconds = 30.0
    total_s: PositiveSeconds = 300.0

    @model_validator(mode="after")
    def _total_covers_first_token(self) -> Timeouts:
        if self.total_s < self.first_token_s:
            raise ValueError("total_s must be at least first_token_s")
        return self


class Workload(_Model):
    """A probe shape: about `input_tokens` of prompt, at most `max_tokens` of answer."""

    name: str = ""
    input_tokens: Annotated[int, Field(ge=1, le=1_000_000)]
    max_tokens: Annotated[int, Field(ge=1, le=1_000_000)]


DEFAULT_WORKLOADS: dict[str, Workload] = {
    "heartbeat": Workload(name="heartbeat", input_tokens=10, max_tokens=1),
    "short": Workload(name="short", input_tokens=100, max_tokens=300),
    "long": Workload(name="long", input_tokens=1000, max_tokens=1000),
}


class ProviderLimits(_Model):
    """How hard provmon may hit one provider: request rate and requests in flight."""

    requests_per_s: Annotated[float, Field(gt=0)] | None = None
    concurrency: Annotated[int, Field(ge=1)] = 4


class OpenRouterSettings(_Model):
    base_url: str = OPENROUTER_BASE_URL
    api_key_env: EnvName | None = "OPENROUTER_API_KEY"


class ProviderInfo(_Model):
    """What a report shows of a provider beyond measurements: context length and prices."""

    context_length: Annotated[int, Field(ge=1)] | None = None
    input_price_per_mtok: Annotated[float, Field(ge=0)] | None = None
    output_price_per_mtok: Annotated[float, Field(ge=0)] | None = None


class _PriceFields(ProviderInfo):
    stream_options: bool = True
    workloads: tuple[str, ...] = ("short",)
    interval_s: PositiveSeconds | None = None


DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///provmon.db"
DATABASE_DRIVERS = ("sqlite+aiosqlite://", "postgresql+asyncpg://")


class DatabaseSettings(_Model):
    """Where probes are stored: `url`, or `url_env` naming a variable that holds it (use that
    when the URL carries a password)."""

    url: str = DEFAULT_DATABASE_URL
    url_env: EnvName | None = None
    spill_path: str = "provmon-spill.jsonl"

    @model_validator(mode="after")
    def _known_driver(self) -> DatabaseSettings:
        if not self.url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("url must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return self


class ScheduleSettings(_Model):
    """How often each target is probed, how much that may cost, how long probes are kept."""

    interval_s: PositiveSeconds = 60.0
    jitter_s: Annotated[float, Field(ge=0)] = 5.0
    budget_usd_per_day: Annotated[float, Field(ge=0)] | None = None
    retention_days: Annotated[int, Field(ge=1)] = 30
    drain_s: Annotated[float, Field(ge=0)] = 30.0
    status_every_s: PositiveSeconds = 60.0


class DirectTarget(_PriceFields):
    """A provider's own OpenAI-compatible endpoint."""

    route: Literal["direct"]
    model: Annotated[str, Field(min_length=1)]
    provider: Annotated[str, Field(min_length=1)]
    base_url: Annotated[str, Field(pattern=r"^https?://")]
    provider_model: str | None = None
    api_key_env: EnvName | None = None


class OpenRouterTarget(_PriceFields):
    """A model on OpenRouter, one target per provider, each pinned to that provider alone."""

    route: Literal["openrouter"]
    model: Annotated[str, Field(min_length=1)]
    providers: Annotated[tuple[Annotated[str, Field(min_length=1)], ...], Field(min_length=1)]
    info: dict[str, ProviderInfo] = {}

    @model_validator(mode="after")
    def _info_for_listed_providers(self) -> OpenRouterTarget:
        unknown = sorted(set(self.info) - set(self.providers))
        if unknown:
            raise ValueError(f"info for providers not in providers: {', '.join(unknown)}")
        return self


TargetEntry = Annotated[DirectTarget | OpenRouterTarget, Field(discriminator="route")]


class ConfigFile(_Model):
    """The TOML file as written."""

    vantage: Annotated[str, Field(min_length=1, max_length=64)] = "local"
    timeouts: Timeouts = Timeouts()
    workloads: dict[str, Workload] = {}
    openrouter: OpenRouterSettings = OpenRouterSettings()
    providers: dict[str, ProviderLimits] = {}
    database: DatabaseSettings = DatabaseSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    uptime: UptimeSettings = UptimeSettings()
    reports: ReportSettings = ReportSettings()
    alerts: AlertSettings = AlertSettings()
    maintenance: tuple[MaintenanceWindow, ...] = ()
    targets: tuple[TargetEntry, ...] = ()

    @model_validator(mode="after")
    def _workloads_exist(self) -> ConfigFile:
        known = set(DEFAULT_WORKLOADS) | set(self.workloads)
        for i, t in enumerate(self.targets):
            for w in t.workloads:
                if w not in known:
                    raise ValueError(
                        f"targets[{i}].workloads: unknown workload {w!r} "
                        f"(known: {', '.join(sorted(known))})"
                    )
        return self


@dataclass(frozen=True, slots=True)
class Target:
    """(model, provider, route): what is probed. `key` identifies it everywhere."""

    model: str
    provider: str
    route: str
    base_url: str
    request_model: str
    api_key: Secret | None = None
    prices: Prices | None = None
    stream_options: bool = True
    workloads: tuple[str, ...] = ("short",)
    interval_s: float = 60.0
    context_length: int | None = None

    @property
    def key(self) -> str:
        return f"{self.model}|{self.provider}|{self.route}"

    @property
    def target_key(self) -> tuple[str, str, str]:
        return (self.model, self.provider, self.route)

    @property
    def paid(self) -> bool:
        """Probing it costs money: OpenRouter bills, and so does a direct target with prices."""
        return self.route == "openrouter" or self.prices is not None

    @property
    def pinned(self) -> bool:
        """OpenRouter route: the request pins the provider with no fallbacks."""
        return self.route == "openrouter"


@dataclass(frozen=True, slots=True)
class Channel:
    """A notification channel with its secrets resolved: `url` (from `url` or `url_env`) and
    the webhook's HMAC key (from `hmac_secret_env`)."""

    settings: ChannelSettings
    url: Secret | None = None
    hmac_key: Secret | None = None

    @property
    def name(self) -> str:
        return self.settings.name


@dataclass(frozen=True, slots=True)
class Config:
    """The validated config: what the rest of provmon reads."""

    vantage: str
    timeouts: Timeouts
    workloads: dict[str, Workload]
    providers: dict[str, ProviderLimits]
    targets: tuple[Target, ...]
    openrouter: OpenRouterSettings
    openrouter_key: Secret | None
    database: DatabaseSettings
    database_url: Secret
    schedule: ScheduleSettings
    uptime: UptimeSettings
    reports: ReportSettings
    alerts: AlertSettings
    maintenance: tuple[MaintenanceWindow, ...]
    source: str = "<defaults>"
    channels: tuple[Channel, ...] = ()

    def limits_for(self, provider: str) -> ProviderLimits:
        return self.providers.get(provider, ProviderLimits())


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("direct", "openrouter") and out.endswith("]"):
            continue  # the discriminator tag pydantic adds inside a union
        else:
            out += f".{part}" if out else str(part)
    return out


def _problems(exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors(include_url=False):
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "union_tag_invalid":
            msg = "route must be 'direct' or 'openrouter'"
        elif err["type"] == "union_tag_not_found":
            msg = "missing 'route' ('direct' or 'openrouter')"
        loc = tuple(err["loc"])
        problems.append(f"{_loc(loc)}: {msg}" if loc else msg)
    return problems


def parse_config(
    data: Mapping[str, Any], environ: Mapping[str, str], source: str = "<config>"
) -> Config:
    """Validate a parsed TOML document and resolve secrets from `environ`."""
    try:
        raw = ConfigFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, _problems(exc)) from None
    problems: list[str] = []

    def secret(env: str | None, where: str) -> Secret | None:
        if env is None:
            return None
        value = environ.get(env)
        if not value:
            problems.append(f"{where}: environment variable {env} is not set")
            return None
        return Secret(value)

    workloads = dict(DEFAULT_WORKLOADS)
    for name, w in raw.workloads.items():
        workloads[name] = w.model_copy(update={"name": name})
    need_openrouter = any(t.route == "openrouter" for t in raw.targets)
    openrouter_key = (
        secret(raw.openrouter.api_key_env, "openrouter.api_key_env") if need_openrouter else None
    )
    targets: list[Target] = []

    def prices_of(info: ProviderInfo) -> Prices | None:
        if info.input_price_per_mtok is None and info.output_price_per_mtok is None:
            return None
        return Prices(info.input_price_per_mtok or 0.0, info.output_price_per_mtok or 0.0)

    for i, entry in enumerate(raw.targets):
        prices = prices_of(entry)
        common: dict[str, Any] = {
            "prices": prices,
            "stream_options": entry.stream_options,
            "workloads": entry.workloads,
            "interval_s": entry.interval_s or raw.schedule.interval_s,
            "context_length": entry.context_length,
        }
        if isinstance(entry, DirectTarget):
            targets.append(
                Target(
                    model=entry.model,
                    provider=entry.provider,
                    route="direct",
                    base_url=entry.base_url.rstrip("/"),
                    request_model=entry.provider_model or entry.model,
                    api_key=secret(entry.api_key_env, f"targets[{i}].api_key_env"),
                    **common,
                )
            )
        else:
            for provider in entry.providers:
                own = entry.info.get(provider)
                overrides: dict[str, Any] = {}
                if own is not None:
                    overrides["context_length"] = own.context_length or entry.context_length
                    overrides["prices"] = prices_of(own) or prices
                targets.append(
                    Target(
                        model=entry.model,
                        provider=provider,
                        route="openrouter",
                        base_url=raw.openrouter.base_url.rstrip("/"),
                        request_model=entry.model,
                        api_key=openrouter_key,
                        **(common | overrides),
                    )
                )
    seen: dict[str, int] = {}
    for t in targets:
        seen[t.key] = seen.get(t.key, 0) + 1
    problems += [f"targets: {k!r} is listed {n} times" for k, n in seen.items() if n > 1]
    database_url = Secret(raw.database.url)
    if raw.database.url_env is not None:
        database_url = secret(raw.database.url_env, "database.url_env") or database_url
        if not database_url.reveal().startswith(DATABASE_DRIVERS):
            problems.append(
                f"database.url_env: the URL in {raw.database.url_env} must start with "
                + " or ".join(DATABASE_DRIVERS)
            )
    channels = []
    for i, ch in enumerate(raw.alerts.channels):
        where = f"alerts.channels[{i}]"
        url = Secret(ch.url) if ch.url is not None else secret(ch.url_env, f"{where}.url_env")
        hmac_key = secret(ch.hmac_secret_env, f"{where}.hmac_secret_env")
        channels.append(Channel(ch, url, hmac_key))
    if problems:
        raise ConfigError(source, problems)
    return Config(
        vantage=raw.vantage,
        timeouts=raw.timeouts,
        workloads=workloads,
        providers=dict(raw.providers),
        targets=tuple(targets),
        openrouter=raw.openrouter,
        openrouter_key=openrouter_key,
        database=raw.database,
        database_url=database_url,
        schedule=raw.schedule,
        uptime=raw.uptime,
        reports=raw.reports,
        alerts=raw.alerts,
        maintenance=raw.maintenance,
        source=source,
        channels=tuple(channels),
    )


def load_config(path: Path, environ: Mapping[str, str]) -> Config:
    """Read and validate a TOML config file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), ["file not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), [f"cannot read: {exc}"]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), [f"not valid TOML: {exc}"]) from None
    return parse_config(data, environ, str(path))
