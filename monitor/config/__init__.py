"""The config: one TOML file, validated once into frozen objects.

`sections` says what the file may contain (pydantic models, one per section); `load` reads the
file, resolves secrets from the environment mapping it is given, and builds `Config`; `select`
builds the ad-hoc config of `probe --base-url` and picks the jobs a one-off probe runs. Nothing
else in provmon reads the environment.
"""

from __future__ import annotations

from monitor.config.load import (
    DEFAULT_CONFIG_PATH,
    Channel,
    Config,
    Prices,
    Secret,
    Target,
    load_config,
    parse_config,
)
from monitor.config.sections import ProbeSettings, ProviderLimits, Timeouts
from monitor.config.select import Job, adhoc_config, discover_source, probe_jobs, with_timeouts
from monitor.config.workloads import Workload, WorkloadKind
from monitor.errors import ConfigError

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "Channel",
    "Config",
    "ConfigError",
    "Job",
    "Prices",
    "ProbeSettings",
    "ProviderLimits",
    "Secret",
    "Target",
    "Timeouts",
    "Workload",
    "WorkloadKind",
    "adhoc_config",
    "discover_source",
    "load_config",
    "parse_config",
    "probe_jobs",
    "with_timeouts",
]
