"""What the web pages know beyond measurements: the targets, their context length and prices
from the config, and how uptime is counted. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from monitor.aggregate import Accounting
from monitor.config import Config
from monitor.config.sections import MaintenanceWindow
from monitor.results import TargetKey


@dataclass(frozen=True, slots=True)
class TargetInfo:
    """A target's endpoint facts where the config gives them (None: not known)."""

    context_length: int | None = None
    max_output_tokens: int | None = None
    input_price_per_mtok: float | None = None
    output_price_per_mtok: float | None = None
    tag: str | None = None
    quantization: str | None = None


@dataclass(frozen=True, slots=True)
class Site:
    """The configured targets (in config order), their facts and the uptime accounting."""

    targets: tuple[TargetKey, ...]
    accounting: Accounting
    info: Mapping[TargetKey, TargetInfo] = field(default_factory=dict)
    maintenance: tuple[MaintenanceWindow, ...] = ()
    vantage: str = "local"
    refresh_s: float = 5.0

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
    )
