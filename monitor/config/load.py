"""Loads the TOML config once into frozen, validated objects; errors name the key and the problem.

Secrets are referenced by environment variable name (`api_key_env`); their values are looked up
here, once, from the mapping the caller passes, and kept in `Secret` so they never print.
"""

from __future__ import annotations

import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from monitor.config.checks import endpoint_label
from monitor.config.document import ConfigFile
from monitor.config.sections import (
    DATABASE_DRIVERS,
    AlertSettings,
    CatalogueSettings,
    ChannelSettings,
    DatabaseSettings,
    DirectTarget,
    EndpointInfo,
    MaintenanceWindow,
    MetricsSettings,
    OpenRouterSettings,
    OtelSettings,
    ProbeSettings,
    ProviderInfo,
    ProviderLimits,
    ReportSettings,
    ScheduleSettings,
    Timeouts,
    UptimeSettings,
    WebSettings,
)
from monitor.config.workloads import DEFAULT_WORKLOADS, Workload
from monitor.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("provmon.toml")


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


@dataclass(frozen=True, slots=True)
class Prices:
    """USD per million tokens, used for `cost_usd` when the route reports no cost."""

    input_per_mtok: float
    output_per_mtok: float

    def cost_usd(self, input_tokens: int | None, output_tokens: int | None) -> float:
        return (
            (input_tokens or 0) * self.input_per_mtok + (output_tokens or 0) * self.output_per_mtok
        ) / 1e6


@dataclass(frozen=True, slots=True)
class Target:
    """(model, provider, route): what is probed. `key` identifies it everywhere.

    On the OpenRouter route, `endpoint` is the tag (or provider slug) the probes pin, and
    `provider_name` the provider as OpenRouter names it; `provider` is then
    `endpoint_label(provider_name, endpoint)`.
    """

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
    tokenizer: str | None = None
    """Path of the model's own tokenizer file; None for the default counter."""
    endpoint: str | None = None
    provider_name: str = ""

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

    @property
    def pin(self) -> str:
        """What `provider.only` names: the endpoint's tag, else the provider."""
        return self.endpoint or self.provider_name or self.provider


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
    probe: ProbeSettings = field(default_factory=ProbeSettings)
    metrics: MetricsSettings | None = None
    otel: OtelSettings | None = None
    otel_headers: Secret | None = None
    catalogue: CatalogueSettings = field(default_factory=CatalogueSettings)
    web: WebSettings = field(default_factory=WebSettings)
    web_token: Secret | None = None  # the live pages' token, from [web] auth_token_env

    def limits_for(self, provider: str) -> ProviderLimits:
        """`[providers.NAME]` of a target's provider; an endpoint's target (`DeepInfra/fp8`)
        has its provider's (`DeepInfra`)."""
        found = self.providers.get(provider)
        if found is None:
            names = {t.provider_name for t in self.targets if t.provider == provider}
            found = next((self.providers[n] for n in names if n in self.providers), None)
        return found or ProviderLimits()


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
            "tokenizer": entry.tokenizer,
        }
        if entry.tokenizer is not None and not Path(entry.tokenizer).is_file():
            problems.append(f"targets[{i}].tokenizer: no such file: {entry.tokenizer}")
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
            pins: list[tuple[str, ProviderInfo | None, str | None]] = [
                (p, entry.info.get(p), (entry.info.get(p) or EndpointInfo()).endpoint)
                for p in entry.providers
            ]
            pins += [(e.provider, e, e.endpoint) for e in entry.endpoints]
            for provider, own, endpoint in pins:
                overrides: dict[str, Any] = {}
                if own is not None:
                    overrides["context_length"] = own.context_length or entry.context_length
                    overrides["prices"] = prices_of(own) or prices
                targets.append(
                    Target(
                        model=entry.model,
                        provider=endpoint_label(provider, endpoint),
                        route="openrouter",
                        base_url=raw.openrouter.base_url.rstrip("/"),
                        request_model=entry.model,
                        api_key=openrouter_key,
                        endpoint=endpoint,
                        provider_name=provider,
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
    otel_headers = secret(raw.otel.headers_env, "otel.headers_env") if raw.otel else None
    if otel_headers is not None:
        try:
            parse_headers(otel_headers.reveal())
        except ValueError as exc:
            problems.append(f"otel.headers_env: {exc}")
    web_token = secret(raw.web.auth_token_env, "web.auth_token_env")
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
        probe=raw.probe,
        metrics=raw.metrics,
        otel=raw.otel,
        otel_headers=otel_headers,
        catalogue=raw.catalogue,
        web=raw.web,
        web_token=web_token,
    )


MAX_CONFIG_BYTES = 4 * 1024 * 1024


def read_config_text(path: Path) -> str:
    """The file's text, or a ConfigError naming the file and what is wrong with it: missing,
    not a regular file (a directory, a FIFO: never opened, so never a hang), too large, not
    UTF-8, unreadable."""
    where = str(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ConfigError(where, ["file not found"]) from None
    except OSError as exc:
        raise ConfigError(where, [f"cannot read: {exc.strerror or exc}"]) from None
    if stat.S_ISDIR(info.st_mode):
        raise ConfigError(where, ["is a directory, not a config file"])
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(where, ["is not a regular file (a FIFO, socket or device?)"])
    if info.st_size > MAX_CONFIG_BYTES:
        raise ConfigError(where, [f"is {info.st_size} bytes; a config is at most 4 MiB"])
    try:
        return path.read_bytes()[: MAX_CONFIG_BYTES + 1].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(where, [f"is not UTF-8 text (byte {exc.start})"]) from None
    except OSError as exc:
        raise ConfigError(where, [f"cannot read: {exc.strerror or exc}"]) from None


def parse_headers(text: str) -> dict[str, str]:
    """`key=value,key2=value2` (OTEL_EXPORTER_OTLP_HEADERS' form) as a dict; ValueError when an
    entry has no `=` or no key (the values are never shown)."""
    out = {}
    for i, item in enumerate(p for p in text.split(",") if p.strip()):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"entry {i + 1} is not key=value")
        out[key.strip()] = value.strip()
    return out


def load_config(path: Path, environ: Mapping[str, str]) -> Config:
    """Read and validate a TOML config file."""
    text = read_config_text(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), [f"not valid TOML: {exc}"]) from None
    except RecursionError:
        raise ConfigError(str(path), ["nested too deeply to be a config"]) from None
    try:
        return parse_config(data, environ, str(path))
    except RecursionError:
        raise ConfigError(str(path), ["nested too deeply to be a config"]) from None
