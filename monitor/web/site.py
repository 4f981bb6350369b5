"""What the web pages know beyond measurements: the targets, their context length and prices
from the config, and how uptime is counted. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from monitor.aggregate import Accounting
from monitor.catalogue.listing import Endpoint
from monitor.config import Config
from monitor.config.sections import MaintenanceWindow
from monitor.reporting.published import endpoint_for
from monitor.results import TargetKey


@dataclass(frozen=True, slots=True)
class TargetInfo:
    """A target's endpoint facts (None: not known): from the config, completed from
    OpenRouter's latest listing of the endpoint an OpenRouter target pins (`with_listing`)."""

    context_length: int | None = None
    max_output_tokens: int | None = None
    input_price_per_mtok: float | None = None
    output_price_per_mtok: float | None = None
    tag: str | None = None
    quantization: str | None = None
    pin: str | None = None
    """What an OpenRouter target's probes pin (`provider.only`): a tag or a provider slug."""
    provider_name: str | None = None

    def with_listing(self, e: Endpoint | None) -> TargetInfo:
        """These facts, the config's first, the listed endpoint's `e` where it has none."""
        if e is None:
            return self
        return replace(
            self,
            context_length=self.context_length or e.context_length,
            max_output_tokens=self.max_output_tokens or e.max_completion_tokens,
            input_price_per_mtok=_first(self.input_price_per_mtok, e.input_price_per_mtok),
            output_price_per_mtok=_first(self.output_price_per_mtok, e.output_price_per_mtok),
            tag=e.tag,
            quantization=self.quantization or e.quantization,
        )

    def listed(self, endpoints: Sequence[Endpoint]) -> Endpoint | None:
        """The endpoint of the listing this target's probes reach (`endpoint_for`)."""
        if self.pin is None:
            return None
        return endpoint_for(self.pin, self.provider_name or self.pin, endpoints)


def _first(a: float | None, b: float | None) -> float | None:
    return a if a is not None else b


@dataclass(frozen=True, slots=True)
class Site:
    """The configured targets (in config order), their facts, the uptime accounting and each
    workload's kind (`kinds`: name → plain, tool_call or structured; for the quality shares)."""

    targets: tuple[TargetKey, ...]
    accounting: Accounting
    info: Mapping[TargetKey, TargetInfo] = field(default_factory=dict)
    maintenance: tuple[MaintenanceWindow, ...] = ()
    vantage: str = "local"
    refresh_s: float = 5.0
    kinds: Mapping[str, str] = field(default_factory=dict)

    def models(self) -> list[str]:
        return list(dict.fromkeys(t[0] for t in self.targets))

    def targets_of(self, model: str) -> list[TargetKey]:
        return [t for t in self.targets if t[0] == model]

    def info_of(self, key: TargetKey) -> TargetInfo:
        return self.info.get(key) or TargetInfo()


def site_from_config(cfg: Config, acct: Accounting, refresh_s: float = 5.0) -> Site:
    """`acct`: the config's accounting (`monitor.reporting.job.accounting`)."""
    info = {
        t.target_key: TargetInfo(
            context_length=t.context_length,
            input_price_per_mtok=t.prices.input_per_mtok if t.prices else None,
            output_price_per_mtok=t.prices.output_per_mtok if t.prices else None,
            tag=t.endpoint if t.route == "openrouter" else None,
            pin=t.pin if t.route == "openrouter" else None,
            provider_name=t.provider_name or t.provider,
        )
        for t in cfg.targets
    }
    return Site(
        targets=tuple(t.target_key for t in cfg.targets),
        accounting=acct,
        info=info,
        maintenance=cfg.maintenance,
        vantage=cfg.vantage,
        refresh_s=refresh_s,
        kinds={name: w.kind for name, w in cfg.workloads.items()},
    )
