"""Quality probes end to end: the prober against a simulated provider whose tool calls and
structured answers break in each way `quality_faults` names; provmon's verdict matches the
simulator's ground truth, on both routes, and plain workloads record none."""

from __future__ import annotations

import collections

import aiohttp
import pytest

from monitor.config import parse_config
from monitor.results import Outcome
from monitor.runtime import make_prober
from monitor.simulator import DEMO_MODEL, run_simulator
from monitor.simulator.farm import Farm
from monitor.simulator.profiles import ProviderProfile, ServedModel

KEY = "sk-quality-test"
FAULTS = (
    ("invalid_json", 0.15),
    ("unknown_tool", 0.15),
    ("schema_mismatch", 0.15),
    ("no_tool_call", 0.15),
    ("no_structured_output", 0.15),
)
WORKLOADS = {
    "tools": {"input_tokens": 40, "max_tokens": 100, "kind": "tool_call"},
    "json": {"input_tokens": 40, "max_tokens": 100, "kind": "structured"},
    "plain": {"input_tokens": 20, "max_tokens": 20},
}


def profile(**extra: object) -> ProviderProfile:
    return ProviderProfile(
        name="flaky",
        slug="flaky",
        models=(ServedModel(DEMO_MODEL),),
        ttft_ms=1.0,
        tps=100_000.0,
        output_tokens=30,
        quality_faults=FAULTS,
        **extra,  # type: ignore[arg-type]
    )


FLAKY = profile(tokens_per_chunk=3, reasoning_tokens=2)
TOOL_FAULTS = ("invalid_json", "unknown_tool", "schema_mismatch", "no_tool_call")


@pytest.mark.parametrize("route", ["direct", "openrouter"])
async def test_verdicts_match_ground_truth(route: str) -> None:
    async with (
        run_simulator(
            Farm((profile(tokens_per_chunk=3, reasoning_tokens=2),), api_key=KEY, seed=3)
        ) as sim,
        aiohttp.ClientSession() as session,
    ):
        if route == "direct":
            target = {"route": "direct", "base_url": sim.direct_base_url("flaky")}
            target |= {"provider": "flaky", "api_key_env": "K"}
        else:
            target = {"route": "openrouter", "providers": ["flaky"]}
        doc = {
            "targets": [{"model": DEMO_MODEL, **target}],
            "openrouter": {"base_url": sim.openrouter_base_url, "api_key_env": "K"},
            "workloads": WORKLOADS,
        }
        cfg = parse_config(doc, {"K": KEY})
        prober = make_prober(session, cfg)
        seen: dict[str, collections.Counter[str]] = {
            "tools": collections.Counter(),
            "json": collections.Counter(),
        }
        for i in range(60):
            name = "tools" if i % 2 == 0 else "json"
            result = await prober.probe(cfg.targets[0], cfg.workloads[name])
            truth = sim.farm.truth[-1]
            assert result.outcome is Outcome.OK, result
            assert truth.quality is not None
            assert result.quality == truth.quality, (name, result, truth)
            seen[name][result.quality] += 1
        plain = await prober.probe(cfg.targets[0], cfg.workloads["plain"])
        assert plain.outcome is Outcome.OK
        assert plain.quality is None
        assert sim.farm.truth[-1].quality is None
    # every way each kind can break was drawn at least once (and ok too)
    assert set(seen["tools"]) == {
        "ok",
        "invalid_json",
        "unknown_tool",
        "schema_mismatch",
        "no_tool_call",
    }
    assert set(seen["json"]) == {"ok", "invalid_json", "schema_mismatch", "no_structured_output"}


async def test_a_broken_stream_records_no_quality() -> None:
    async with (
        run_simulator(Farm((profile(p_cut=1.0),), api_key=KEY)) as sim,
        aiohttp.ClientSession() as session,
    ):
        doc = {
            "targets": [
                {
                    "route": "direct",
                    "model": DEMO_MODEL,
                    "provider": "flaky",
                    "base_url": sim.direct_base_url("flaky"),
                    "api_key_env": "K",
                }
            ],
            "workloads": WORKLOADS,
        }
        cfg = parse_config(doc, {"K": KEY})
        result = await make_prober(session, cfg).probe(cfg.targets[0], cfg.workloads["tools"])
        assert result.outcome is Outcome.STREAM_ERROR
        assert result.quality is None
        assert sim.farm.truth[-1].quality is None


def test_profile_rejects_unknown_quality_faults() -> None:
    with pytest.raises(ValueError, match="quality_faults"):
        profile().__class__(
            name="x", slug="x", models=(ServedModel(DEMO_MODEL),), quality_faults=(("typo", 0.1),)
        )
    with pytest.raises(ValueError, match="sum to at most 1"):
        profile().__class__(
            name="x",
            slug="x",
            models=(ServedModel(DEMO_MODEL),),
            quality_faults=(("invalid_json", 0.6), ("schema_mismatch", 0.6)),
        )
