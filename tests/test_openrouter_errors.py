"""OpenRouter's error objects become finer error_kinds: the pure rules on its documented shapes,
the simulator's OpenRouter front (in-stream errors), and HTTP error responses from a real
OpenRouter-shaped server, probed end to end."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from monitor.config import parse_config
from monitor.probing.openrouter_errors import (
    GUARDRAIL,
    MODERATION,
    NO_CAPACITY,
    NO_CREDITS,
    PROVIDER_ERROR,
    TIMEOUT,
    error_kind,
    http_error_kind,
    stream_error_kind,
)
from monitor.results import Outcome
from monitor.runtime import make_prober
from monitor.simulator import DEMO_MODEL, Simulator, demo_farm, run_simulator
from tests.conftest import API_KEY, make_config, only
from tests.factories import FAST_TIMEOUTS

UPSTREAM_500 = json.dumps({"error": {"message": "worker crashed", "code": 500}})
UPSTREAM_503 = json.dumps({"error": {"message": "Service Unavailable: model overloaded"}})
PRE = "Provider returned error"
MODERATION_META = {
    "reasons": ["violence"],
    "flagged_input": "how do I ...",
    "provider_name": "OpenAI",
    "model_slug": "openai/gpt-4o",
}


@pytest.mark.parametrize(
    ("code", "message", "metadata", "kind"),
    [
        (403, "Input flagged", MODERATION_META, MODERATION),
        (403, "Request blocked by guardrail: prompt injection", None, GUARDRAIL),
        (403, "Insufficient permissions", None, None),
        (402, "Insufficient credits", None, NO_CREDITS),
        (408, "Request timed out", None, TIMEOUT),
        (502, PRE, {"provider_name": "F", "raw": UPSTREAM_500}, PROVIDER_ERROR),
        (502, PRE, {"provider_name": "F", "raw": UPSTREAM_503}, NO_CAPACITY),
        (503, PRE, {"provider_name": "F", "raw": None}, NO_CAPACITY),
        (502, PRE, {"provider_name": "X", "raw": {"status": 529}}, NO_CAPACITY),
        (503, "No endpoints found that can handle the request", None, NO_CAPACITY),
        (502, "Model is down", None, PROVIDER_ERROR),
        ("502", "Provider returned error", {"provider_name": "X"}, PROVIDER_ERROR),
        ("server_error", PRE, {"provider_name": "X", "raw": "boom"}, PROVIDER_ERROR),
        (429, "Rate limited upstream", {"provider_name": "X", "raw": "slow down"}, None),
        (400, "Bad request", None, None),
        (401, "No auth credentials found", None, None),
    ],
)  # fmt: skip
def test_documented_shapes(code: object, message: str, metadata: Any, kind: str | None) -> None:
    assert error_kind(code, message, metadata) == kind


def test_in_stream_errors_without_openrouters_metadata_stay_plain() -> None:
    assert stream_error_kind(502, "upstream error", None) is None
    assert stream_error_kind(502, "upstream error", {}) is None
    assert stream_error_kind(502, "x", {"provider_name": "A", "raw": "b"}) == PROVIDER_ERROR


def test_http_bodies_only_on_the_openrouter_route() -> None:
    body = json.dumps({"error": {"code": 503, "message": "No endpoints found"}}).encode()
    assert http_error_kind("openrouter", 503, body) == NO_CAPACITY
    assert http_error_kind("direct", 503, body) is None  # a provider's own 503: http.503
    assert http_error_kind("openrouter", 503, b"<html>Bad gateway</html>") is None
    assert http_error_kind("openrouter", 503, b'["not", "an", "object"]') is None
    assert http_error_kind("openrouter", 502, b'{"error": "a string"}') is None
    # The status stands in for a code the body leaves out.
    assert http_error_kind("openrouter", 402, b'{"error": {"message": "no credits"}}') == NO_CREDITS


@pytest.mark.parametrize(
    ("quirk", "outcome", "kind"),
    [
        ("http-500", Outcome.STREAM_ERROR, PROVIDER_ERROR),
        ("http-503", Outcome.STREAM_ERROR, NO_CAPACITY),
        ("error-after-200", Outcome.STREAM_ERROR, PROVIDER_ERROR),  # after some tokens
        ("outage-refuse", Outcome.STREAM_ERROR, PROVIDER_ERROR),
        ("http-429", Outcome.RATE_LIMITED, "stream.rate_limited"),
        ("finish-error", Outcome.STREAM_ERROR, "stream.finish_error"),  # no error object
    ],
)
async def test_the_simulators_openrouter_front(
    sim: Simulator, session: aiohttp.ClientSession, quirk: str, outcome: Outcome, kind: str
) -> None:
    cfg = make_config(sim, quirk, route="openrouter")
    r = await make_prober(session, cfg).probe(only(cfg), cfg.workloads["small"])
    assert (r.outcome, r.error_kind) == (outcome, kind), r
    truth = [t for t in sim.farm.truth if t.route == "openrouter"][-1]
    assert (truth.provider, truth.outcome) == (quirk, outcome)
    # The same faults straight from the provider keep their plain kinds.
    direct = make_config(sim, quirk)
    d = await make_prober(session, direct).probe(only(direct), direct.workloads["small"])
    assert d.error_kind is None or not d.error_kind.startswith("openrouter.")


async def test_the_demos_flaky_provider_shows_its_outage_as_no_capacity(
    session: aiohttp.ClientSession,
) -> None:
    farm = demo_farm(seed=3, api_key=API_KEY, outage_start_s=0.0, outage_duration_s=3600.0)
    async with run_simulator(farm) as sim:
        cfg = make_config(sim, "Flaky", route="openrouter", timeouts={"first_token_s": 10})
        r = await make_prober(session, cfg).probe(only(cfg), cfg.workloads["small"])
    assert (r.outcome, r.error_kind) == (Outcome.STREAM_ERROR, NO_CAPACITY), r


# An OpenRouter-shaped server that is not the simulator: each pinned provider name answers one
# documented HTTP error.
ANSWERS: dict[str, tuple[int, dict[str, Any]]] = {
    "moderated": (403, {"code": 403, "message": "Input flagged", "metadata": MODERATION_META}),
    "broke": (402, {"code": 402, "message": "Insufficient credits"}),
    "full": (503, {"code": 503, "message": "No allowed providers are available"}),
    "crashed": (
        502,
        {
            "code": 502,
            "message": "Provider returned error",
            "metadata": {"provider_name": "crashed", "raw": UPSTREAM_500},
        },
    ),
    "slow": (408, {"code": 408, "message": "Request timed out"}),
    "limited": (429, {"code": 429, "message": "Rate limited", "metadata": {"raw": "x"}}),
}
KIND = {
    "moderated": (Outcome.CLIENT_ERROR, MODERATION),
    "broke": (Outcome.CLIENT_ERROR, NO_CREDITS),
    "full": (Outcome.SERVER_ERROR, NO_CAPACITY),
    "crashed": (Outcome.SERVER_ERROR, PROVIDER_ERROR),
    "slow": (Outcome.SERVER_ERROR, TIMEOUT),
    "limited": (Outcome.RATE_LIMITED, "http.429"),
}


@pytest.fixture
async def openrouter_like() -> AsyncIterator[str]:
    async def chat(request: web.Request) -> web.Response:
        body = await request.json()
        (pinned,) = body["provider"]["only"]
        status, error = ANSWERS[pinned]
        return web.json_response({"error": error}, status=status)

    app = web.Application()
    app.router.add_post("/api/v1/chat/completions", chat)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/api/v1"
    finally:
        await runner.cleanup()


async def test_http_error_objects_from_an_openrouter_like_server(
    openrouter_like: str, session: aiohttp.ClientSession
) -> None:
    cfg = parse_config(
        {
            "timeouts": FAST_TIMEOUTS,
            "openrouter": {"base_url": openrouter_like, "api_key_env": "KEY"},
            "workloads": {"small": {"input_tokens": 20, "max_tokens": 20}},
            "targets": [{"route": "openrouter", "model": DEMO_MODEL, "providers": list(ANSWERS)}],
        },
        {"KEY": API_KEY},
    )
    prober = make_prober(session, cfg)
    for target in cfg.targets:
        r = await prober.probe(target, cfg.workloads["small"])
        assert (r.outcome, r.error_kind) == KIND[target.provider], r
        assert r.http_status == ANSWERS[target.provider][0]
