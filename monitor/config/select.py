"""Config from command-line values: the one-target config of `probe --base-url`, and the
(target, workload) jobs `probe` runs, narrowed by `--provider`, `--only-model`, `--workload`."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from monitor.config.load import Config, Target, parse_config
from monitor.config.sections import Timeouts, Workload
from monitor.errors import UsageError

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
        if (not provider or t.provider.casefold() == provider.casefold())
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
