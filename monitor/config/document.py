"""The config file as written: every section, and the checks that span sections. Pure."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from monitor.config.sections import (
    AlertSettings,
    CatalogueSettings,
    DatabaseSettings,
    MaintenanceWindow,
    MetricsSettings,
    OpenRouterSettings,
    OtelSettings,
    ProbeSettings,
    ProviderLimits,
    ReportSettings,
    ScheduleSettings,
    Section,
    TargetEntry,
    Timeouts,
    UptimeSettings,
    WebSettings,
)
from monitor.config.workloads import DEFAULT_WORKLOADS, Workload


class ConfigFile(Section):
    """The TOML file as written."""

    vantage: Annotated[str, Field(min_length=1, max_length=64)] = "local"
    timeouts: Timeouts = Timeouts()
    probe: ProbeSettings = ProbeSettings()
    workloads: dict[str, Workload] = Field(default_factory=dict)
    openrouter: OpenRouterSettings = OpenRouterSettings()
    providers: dict[str, ProviderLimits] = Field(default_factory=dict)
    database: DatabaseSettings = DatabaseSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    uptime: UptimeSettings = UptimeSettings()
    reports: ReportSettings = ReportSettings()
    alerts: AlertSettings = AlertSettings()
    metrics: MetricsSettings | None = None
    otel: OtelSettings | None = None
    maintenance: tuple[MaintenanceWindow, ...] = ()
    catalogue: CatalogueSettings = CatalogueSettings()
    web: WebSettings = WebSettings()
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
