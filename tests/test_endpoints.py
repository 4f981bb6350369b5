"""Endpoint identity: the endpoints listing read and sanitised, discover's output, a target per
endpoint pinned by its tag, and the simulator's OpenRouter front routing by tag, slug and
quantization as OpenRouter does."""

from __future__ import annotations

import json
import tomllib
from typing import Any

import aiohttp
import pytest

from monitor.catalogue.listing import Endpoint, Percentiles, parse_endpoint, parse_endpoints
from monitor.catalogue_api import read_endpoints
from monitor.config import Secret, parse_config
from monitor.config.sections import MaintenanceWindow
from monitor.discover import to_toml
from monitor.errors import ConfigError, DiscoverError, EndpointsError
from monitor.maintenance import applies_to
from monitor.probing.prompts import build_body
from monitor.results import Outcome
from monitor.runtime import make_prober
from monitor.simulator import run_simulator
from monitor.simulator.farm import Farm
from monitor.simulator.profiles import ProviderProfile, ServedModel
from tests.openrouter_like import KEY, MODEL, endpoint, openrouter_like

# --- the listing -----------------------------------------------------------------------------


def test_listing_fields_are_read_as_openrouter_documents_them() -> None:
    (fp8, turbo, together) = parse_endpoints(
        {"data": {"endpoints": [endpoint("DeepInfra", "deepinfra/fp8"), *_two()]}}
    )
    assert (fp8.provider, fp8.tag, fp8.slug) == ("DeepInfra", "deepinfra/fp8", "deepinfra")
    assert fp8.quantization == "fp8"
    assert (fp8.context_length, fp8.max_completion_tokens) == (131072, 8192)
    assert (fp8.input_price_per_mtok, fp8.output_price_per_mtok) == (0.5, 2.0)
    assert fp8.supported_parameters == ("max_tokens", "temperature", "tools")
    assert fp8.status == 0
    assert fp8.uptime_last_30m == 99.5
    assert fp8.latency_last_30m == Percentiles(400.0, 520.0, 700.0, 1500.0)
    assert fp8.throughput_last_30m == Percentiles(60.0, 52.0, 40.0, 21.0)
    assert turbo.tag == "deepinfra/turbo" and turbo.quantization == "fp4"
    assert together.slug == "together" and together.max_completion_tokens is None
    assert Endpoint.from_json(json.loads(json.dumps(fp8.to_json()))) == fp8


def _two() -> list[dict[str, Any]]:
    return [
        endpoint("DeepInfra", "deepinfra/turbo", quantization="fp4"),
        endpoint("Together", "together", max_output=None),
    ]


def test_provider_values_are_bounded_and_sanitised() -> None:
    raw = endpoint("Evil\x1b[31m\nCorp", "evil/fp8")
    raw |= {
        "context_length": 1e30,
        "max_completion_tokens": True,
        "quantization": "x" * 500,
        "status": "down",
        "uptime_last_30m": 250.0,
        "pricing": {"prompt": "NaN", "completion": "-1"},
        "latency_last_30m": {"p50": "fast"},
        "throughput_last_30m": {"p50": 50.0, "p90": float("inf")},
        "supported_parameters": ["tools", 7, "\x00tools"],
    }
    e = parse_endpoint(raw)
    assert e is not None
    assert e.provider == "Evil [31m Corp"
    assert e.context_length is None and e.max_completion_tokens is None
    assert e.quantization == "x" * 32
    assert e.status is None and e.uptime_last_30m is None
    assert e.input_price_per_mtok is None and e.output_price_per_mtok is None
    assert e.latency_last_30m is None
    assert e.throughput_last_30m == Percentiles(50.0, None, None, None)
    assert e.supported_parameters == ("tools",)
    # no tag (older listings): the provider's name as a slug; a repeated tag is kept once
    untagged = endpoint("Big Cloud", "x") | {"tag": None}
    listed = parse_endpoints(
        {"data": {"endpoints": [untagged, endpoint("A", "a"), endpoint("A2", "a"), "junk"]}}
    )
    assert [(e.provider, e.tag) for e in listed] == [("Big Cloud", "big-cloud"), ("A", "a")]
    with pytest.raises(EndpointsError):
        parse_endpoints({"data": []})


# --- config: one target per endpoint -----------------------------------------------------------


def _cfg(target: dict[str, Any], **extra: Any) -> Any:
    doc = {"targets": [{"route": "openrouter", "model": MODEL} | target], **extra}
    return parse_config(doc, {"OPENROUTER_API_KEY": "k"})


def test_two_endpoints_of_one_provider_are_two_targets_pinned_by_tag() -> None:
    cfg = _cfg(
        {
            "endpoints": [
                {"provider": "DeepInfra", "endpoint": "deepinfra/fp8", "context_length": 131072},
                {"provider": "DeepInfra", "endpoint": "deepinfra/turbo", "context_length": 32768},
            ],
            "providers": ["Together"],
            "info": {"Together": {"endpoint": "together"}},
        },
        providers={"DeepInfra": {"concurrency": 1}},
    )
    by_key = {t.target_key: t for t in cfg.targets}
    assert set(by_key) == {
        (MODEL, "DeepInfra/fp8", "openrouter"),
        (MODEL, "DeepInfra/turbo", "openrouter"),
        (MODEL, "Together", "openrouter"),
    }
    fp8 = by_key[(MODEL, "DeepInfra/fp8", "openrouter")]
    assert (fp8.pin, fp8.provider_name, fp8.context_length) == (
        "deepinfra/fp8",
        "DeepInfra",
        131072,
    )
    body = build_body(fp8, cfg.workloads["short"], "n", stream_options=True)
    assert body["provider"] == {"only": ["deepinfra/fp8"], "allow_fallbacks": False}
    assert by_key[(MODEL, "Together", "openrouter")].pin == "together"
    # the provider's limits hold for its endpoints' targets, its maintenance covers them
    assert cfg.limits_for("DeepInfra/turbo").concurrency == 1
    assert cfg.limits_for("Together").concurrency == 4
    window = MaintenanceWindow(cron="0 3 * * *", duration_s=60, provider="DeepInfra")
    assert applies_to(window, (MODEL, "DeepInfra/turbo", "openrouter"))
    assert not applies_to(window, (MODEL, "Together", "openrouter"))
    # a provider without an endpoint is pinned by what the config names, as before
    plain = _cfg({"providers": ["deepinfra"]}).targets[0]
    assert (plain.provider, plain.pin) == ("deepinfra", "deepinfra")


@pytest.mark.parametrize(
    ("target", "problem"),
    [
        ({"endpoints": [{"provider": "D", "endpoint": "d/x y"}]}, "endpoints[0].endpoint"),
        ({"endpoints": [{"provider": "D"}]}, "endpoints[0].endpoint: Field required"),
        (
            {
                "endpoints": [
                    {"provider": "D", "endpoint": "d/a"},
                    {"provider": "D", "endpoint": "e/a"},
                ]
            },
            "'acme/wonder-70b|D/a|openrouter' is listed 2 times",
        ),
        ({"providers": ["D"], "info": {"D": {"endpoint": "/d"}}}, "info.D.endpoint"),
    ],
)
def test_bad_endpoints_name_the_key(target: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        _cfg(target)
    assert any(problem in p for p in info.value.problems), info.value.problems


# --- discover and pins, against an OpenRouter-like server that is not the simulator ----------


async def test_discover_sends_the_key_and_writes_a_target_per_endpoint() -> None:
    async with openrouter_like() as server, aiohttp.ClientSession() as session:
        listed = await read_endpoints(session, server.base_url, MODEL, Secret(KEY))
        public = await read_endpoints(session, server.base_url, MODEL, None)
        with pytest.raises(DiscoverError) as info:
            await read_endpoints(session, server.base_url, MODEL, Secret(KEY + "x"))
    assert server.listing_auth == [f"Bearer {KEY}", None, f"Bearer {KEY}x"]
    assert "HTTP 401" in str(info.value) and KEY not in str(info.value)
    assert listed[0].latency_last_30m is not None
    assert public[0].latency_last_30m is None and public[0].uptime_last_30m == 99.5

    text = to_toml(MODEL, listed, authenticated=True)
    assert "read with your key" in text
    assert "DeepInfra [deepinfra/turbo]: fp4, 32,768 context, max output 8,192, " in text
    assert "150 ms TTFT p50, 180.0 tok/s p50" in text
    assert "#     parameters: max_tokens, temperature, tools" in text
    assert KEY not in text
    doc = tomllib.loads(text)
    cfg = parse_config(doc, {"OPENROUTER_API_KEY": KEY})
    assert [(t.provider, t.pin) for t in cfg.targets] == [
        ("DeepInfra/fp8", "deepinfra/fp8"),
        ("DeepInfra/turbo", "deepinfra/turbo"),
        ("Together", "together"),
    ]
    turbo = cfg.targets[1]
    assert turbo.prices is not None and turbo.prices.input_per_mtok == 0.9
    assert "without a key" in to_toml(MODEL, public)


async def test_probes_pin_each_endpoint_and_are_reported_apart() -> None:
    async with openrouter_like() as server, aiohttp.ClientSession() as session:
        listed = await read_endpoints(session, server.base_url, MODEL, Secret(KEY))
        doc = tomllib.loads(to_toml(MODEL, listed, authenticated=True))
        doc["openrouter"] = {"base_url": server.base_url}
        cfg = parse_config(doc, {"OPENROUTER_API_KEY": KEY})
        prober = make_prober(session, cfg)
        results = [await prober.probe(t, cfg.workloads["short"]) for t in cfg.targets]
        wrong = parse_config(
            {
                "openrouter": {"base_url": server.base_url},
                "targets": [
                    {
                        "route": "openrouter",
                        "model": MODEL,
                        "endpoints": [{"provider": "DeepInfra", "endpoint": "fireworks/fp8"}],
                    }
                ],
            },
            {"OPENROUTER_API_KEY": KEY},
        )
        missing = await prober.probe(wrong.targets[0], wrong.workloads["short"])
    pins = [c["provider"] for c in server.chats]
    assert pins[:3] == [
        {"only": ["deepinfra/fp8"], "allow_fallbacks": False},
        {"only": ["deepinfra/turbo"], "allow_fallbacks": False},
        {"only": ["together"], "allow_fallbacks": False},
    ]
    assert [r.outcome for r in results] == [Outcome.OK] * 3
    assert [(r.provider, r.served_by) for r in results] == [
        ("DeepInfra/fp8", "DeepInfra"),
        ("DeepInfra/turbo", "DeepInfra"),
        ("Together", "Together"),
    ]
    assert len({r.target_key for r in results}) == 3
    assert (missing.outcome, missing.http_status) == (Outcome.CLIENT_ERROR, 404)


# --- the simulator's OpenRouter front --------------------------------------------------------


def _farm(api_key: str | None = None) -> Farm:
    model = (ServedModel("a/m"),)
    return Farm(
        (
            ProviderProfile("Swift", "swift", model, ttft_ms=100, quantization="fp16"),
            ProviderProfile(
                "Swift Turbo", "swift-turbo", model, ttft_ms=20, quantization="fp8",
                tag="swift/turbo", provider_name="Swift", input_usd_per_mtok=2.0,
            ),
            ProviderProfile("Slow", "slow", model, ttft_ms=900, quantization="int4"),
        ),
        api_key=api_key,
    )  # fmt: skip


def _route(farm: Farm, provider: Any) -> tuple[int | None, str, dict[str, Any]]:
    body = {"model": "a/m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    plan, record = farm.plan_chat("openrouter", None, None, json.dumps(body | provider).encode(), 0)
    doc = json.loads(plan.body) if plan.status != 200 else {}
    return plan.status, record.provider, doc


def test_the_front_pins_by_tag_slug_and_quantization() -> None:
    farm = _farm()
    assert _route(farm, {"provider": {"only": ["swift/turbo"]}})[:2] == (200, "Swift Turbo")
    assert _route(farm, {"provider": {"only": ["SWIFT/FP16"]}})[:2] == (200, "Swift")
    by_slug = {_route(farm, {"provider": {"only": ["swift"]}})[1] for _ in range(40)}
    assert by_slug == {"Swift", "Swift Turbo"}  # a slug names every endpoint of the provider
    quant = {"only": ["swift"], "quantizations": ["fp8"]}
    assert _route(farm, {"provider": quant})[1] == "Swift Turbo"
    ignore = {"only": ["swift"], "ignore": ["swift/turbo"]}
    assert _route(farm, {"provider": ignore})[1] == "Swift"
    order = {"order": ["slow", "swift"], "allow_fallbacks": False}
    assert _route(farm, {"provider": order})[1] == "Slow"
    status, _, doc = _route(farm, {"provider": {"only": ["swift/int4"]}})
    assert status == 404
    assert doc["error"] == {
        "message": "No allowed providers are available for the selected model.",
        "code": 404,
        "metadata": {
            "available_providers": ["slow", "swift"],
            "requested_providers": ["swift/int4"],
        },
    }
    status, _, doc = _route(farm, {"provider": {"only": "swift"}})
    assert status == 400 and "only" in doc["error"]["message"]


async def test_the_front_lists_endpoints_and_publishes_stats_to_keyed_requests() -> None:
    farm = _farm(api_key="sim-key")
    async with run_simulator(farm) as sim, aiohttp.ClientSession() as session:
        parse = parse_config(
            {
                "openrouter": {"base_url": sim.openrouter_base_url},
                "workloads": {"small": {"input_tokens": 10, "max_tokens": 10}},
                "targets": [
                    {
                        "route": "openrouter",
                        "model": "a/m",
                        "workloads": ["small"],
                        "endpoints": [
                            {"provider": "Swift", "endpoint": "swift/fp16"},
                            {"provider": "Swift", "endpoint": "swift/turbo"},
                        ],
                    }
                ],
            },
            {"OPENROUTER_API_KEY": "sim-key"},
        )
        prober = make_prober(session, parse)
        for _ in range(3):
            for target in parse.targets:
                assert (await prober.probe(target, parse.workloads["small"])).outcome is Outcome.OK
        keyed = await read_endpoints(session, sim.openrouter_base_url, "a/m", Secret("sim-key"))
        public = await read_endpoints(session, sim.openrouter_base_url, "a/m", None)
    assert [(e.provider, e.tag, e.quantization) for e in keyed] == [
        ("Swift", "swift/fp16", "fp16"),
        ("Swift", "swift/turbo", "fp8"),
        ("Slow", "slow/int4", "int4"),
    ]
    assert [r.provider for r in farm.truth] == ["Swift", "Swift Turbo"] * 3
    swift, turbo, slow = keyed
    assert swift.uptime_last_30m == 100.0 and slow.uptime_last_30m is None
    assert swift.latency_last_30m is not None and turbo.latency_last_30m is not None
    assert swift.latency_last_30m.p50 == pytest.approx(100, abs=1)
    assert turbo.latency_last_30m.p50 == pytest.approx(20, abs=1)
    assert turbo.throughput_last_30m is not None
    assert turbo.throughput_last_30m.p90 is not None
    assert turbo.throughput_last_30m.p90 <= turbo.throughput_last_30m.p50
    assert public[0].latency_last_30m is None and public[0].uptime_last_30m == 100.0
