"""Shared fixtures: the simulator served in-process on an ephemeral port, and probe helpers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from monitor.config import Config, Target, parse_config
from monitor.probe import Prober
from monitor.simulator import DEMO_MODEL, Simulator, quirks_farm, run_simulator
from monitor.throttle import Gates

API_KEY = "sk-sim-test-key-0123456789"
FAST_TIMEOUTS = {"connect_s": 2, "first_token_s": 1.0, "idle_s": 0.5, "total_s": 5}


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    farm = quirks_farm(seed=7, api_key=API_KEY, processing_s=0.05)
    async with run_simulator(farm) as s:
        yield s


def make_config(sim: Simulator, *providers: str, route: str = "direct", **extra: Any) -> Config:
    """A config probing the named simulator providers by one route."""
    if route == "direct":
        targets: list[dict[str, Any]] = [
            {
                "route": "direct",
                "model": DEMO_MODEL,
                "provider": p,
                "base_url": sim.direct_base_url(p),
                "api_key_env": "SIM_KEY",
                **extra.pop("target", {}),
            }
            for p in providers
        ]
    else:
        targets = [{"route": "openrouter", "model": DEMO_MODEL, "providers": list(providers)}]
    doc = {
        "vantage": "test",
        "timeouts": extra.pop("timeouts", FAST_TIMEOUTS),
        "openrouter": {"base_url": sim.openrouter_base_url, "api_key_env": "SIM_KEY"},
        "workloads": {"small": {"input_tokens": 20, "max_tokens": 20}},
        "targets": targets,
        **extra,
    }
    return parse_config(doc, {"SIM_KEY": API_KEY})


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(trust_env=False) as s:
        yield s


def prober_for(session: aiohttp.ClientSession, cfg: Config) -> Prober:
    return Prober(session, timeouts=cfg.timeouts, vantage=cfg.vantage, gates=Gates(cfg.limits_for))


def only(cfg: Config) -> Target:
    assert len(cfg.targets) == 1
    return cfg.targets[0]
