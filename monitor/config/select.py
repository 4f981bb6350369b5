"""Config from command-line values: the one-target config of `probe --base-url`, the
(target, workload) jobs `probe` runs, narrowed by `--provider`, `--only-model`, `--workload`,
and where `discover` reads OpenRouter's endpoints and with which key."""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from pathlib import Path

from pydantic import ValidationError

from monitor.config.load import Config, Secret, Target, parse_config, read_config_text
from monitor.config.sections import OpenRouterSettings, Timeouts
from monitor.config.workloads import Workload
from monitor.errors import ConfigError, UsageError

Job = tuple[Target, Workload]


def adhoc_config(
    base_url: str,
    model: str,
    environ: Mapping[str, str],
    *,
    provider: str | None = None,
    api_key_env: str | None = None,
    base: Config | None = None,
) -> Config:
    """A one-target config for an OpenAI-compatible `base_url`, keeping the vantage, timeouts
    and workloads of `base` (the config file, when there is one)."""
    target: dict[str, object] = {
        "route": "direct",
        "model": model,
        "provider": provider or "adhoc",
        "base_url": base_url,
    }
    if api_key_env:
        target["api_key_env"] = api_key_env
    doc: dict[str, object] = {"targets": [target]}
    if base is not None:
        doc["vantage"] = base.vantage
        doc["timeouts"] = base.timeouts.model_dump()
        doc["probe"] = base.probe.model_dump()
        doc["workloads"] = {
            name: {"input_tokens": w.input_tokens, "max_tokens": w.max_tokens}
            for name, w in base.workloads.items()
        }
    return parse_config(doc, environ, "command line")


def probe_jobs(
    cfg: Config,
    *,
    provider: str | None = None,
    model: str | None = None,
    workload: str | None = None,
) -> list[Job]:
    """Each matching target with `workload`, or with each of its own workloads. Raises
    UsageError when no target matches or the workload is unknown."""
    targets = [
        t
        for t in cfg.targets
        if (
            not provider
            or provider.casefold() in (t.provider.casefold(), t.provider_name.casefold())
        )
        and (not model or t.model == model)
    ]
    if not targets:
        raise UsageError("no configured target matches --provider/--only-model")
    if workload and workload not in cfg.workloads:
        known = ", ".join(sorted(cfg.workloads))
        raise UsageError(f"unknown workload {workload!r} (known: {known})")
    return [
        (t, cfg.workloads[w]) for t in targets for w in ([workload] if workload else t.workloads)
    ]


def with_timeouts(cfg: Config, given: Mapping[str, float]) -> Config:
    """`cfg` with these `[timeouts]` values overriding its own (`provmon probe --timeout` and
    its siblings); a total deadline below the first-token one brings that down with it.
    Raises ValueError (pydantic's) when the result is not a valid `[timeouts]`."""
    if not given:
        return cfg
    values = cfg.timeouts.model_dump() | dict(given)
    if "total_s" in given and "first_token_s" not in given:
        values["first_token_s"] = min(values["first_token_s"], values["total_s"])
    return dataclasses.replace(cfg, timeouts=Timeouts(**values))


def discover_source(
    path: Path | None,
    environ: Mapping[str, str],
    *,
    base_url: str | None = None,
    api_key_env: str | None = None,
) -> tuple[str, Secret | None]:
    """(base URL, key) for `provmon discover`: `--base-url` and `--api-key-env` when given,
    else the config file's `[openrouter]` (only that table is read: discover needs none of the
    others, nor their variables), else OpenRouter and `OPENROUTER_API_KEY`. The key is None
    when its variable is not set: the listing is public, without latency and throughput."""
    settings = OpenRouterSettings()
    if path is not None:
        try:
            table = tomllib.loads(read_config_text(path)).get("openrouter", {})
            settings = OpenRouterSettings.model_validate(table)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(str(path), [f"not valid TOML: {exc}"]) from None
        except ValidationError as exc:
            problems = [f"openrouter.{e['loc'][0]}: {e['msg']}" for e in exc.errors()]
            raise ConfigError(str(path), problems) from None
    env = api_key_env or settings.api_key_env
    value = environ.get(env) if env else None
    return base_url or settings.base_url, Secret(value) if value else None
