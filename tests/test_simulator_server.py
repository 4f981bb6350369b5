"""The simulator served in-process on an ephemeral port, checked with real clients: the official
`openai` SDK for whole streams, aiohttp for raw status codes, headers and broken connections."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import openai
import pytest

from monitor.results import Outcome
from monitor.simulator import DEMO_MODEL, Farm, Simulator, quirks_farm, run_simulator, serve

KEY = "sk-sim-test"
MESSAGES = [{"role": "user", "content": "Say something about load balancing, please."}]
BODY = {
    "model": DEMO_MODEL,
    "messages": MESSAGES,
    "stream": True,
    "stream_options": {"include_usage": True},
}
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    farm = quirks_farm(api_key=KEY, include_cost=True, stamp_send_time=True, processing_s=0.02)
    async with run_simulator(farm) as running:
        yield running


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers=AUTH) as client:
        yield client


async def eventually(condition: Callable[[], bool], timeout_s: float = 2.0) -> None:
    """Wait until `condition()` holds, checking every 10 ms; fail after `timeout_s`."""
    for _ in range(int(timeout_s / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached in time")


async def sdk_stream(
    base_url: str, *, extra_body: dict[str, Any] | None = None, **kwargs: Any
) -> tuple[str, Any, list[Any]]:
    """Stream one completion with the openai SDK: (text, last usage, all chunks)."""
    async with openai.AsyncOpenAI(base_url=base_url, api_key=KEY, max_retries=0) as client:
        stream: Any = await client.chat.completions.create(
            model=DEMO_MODEL,
            messages=MESSAGES,  # type: ignore[arg-type]
            stream=True,
            extra_body=extra_body,
            **kwargs,
        )
        text, usage, seen = "", None, []
        async for chunk in stream:
            seen.append(chunk)
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
            if chunk.usage is not None:
                usage = chunk.usage
        return text, usage, seen


@pytest.mark.parametrize(
    "name",
    [
        "plain",
        "comments",
        "role-first",
        "reasoning",
        "reasoning-field",
        "usage-every",
        "multi-token",
        "buffered",
        "crlf",
        "no-space",
        "no-done",
        "empty",
    ],
)
async def test_openai_sdk_streams_every_well_formed_quirk(sim: Simulator, name: str) -> None:
    text, usage, _ = await sdk_stream(
        sim.direct_base_url(name), stream_options={"include_usage": True}
    )
    record = sim.farm.truth[-1]
    assert (record.provider, record.route, record.closed_by) == (name, "direct", "server")
    assert record.closed_ns is not None
    assert record.arrival_ns <= (record.last_token_ns or record.arrival_ns) <= record.closed_ns
    assert text == record.content
    assert usage is not None
    assert usage.completion_tokens == record.output_tokens == record.tokens_written
    assert usage.model_extra["cost"] > 0 or record.output_tokens == 0
    assert record.chunks_written == record.chunks


async def test_openai_sdk_without_usage(sim: Simulator) -> None:
    text, usage, _ = await sdk_stream(sim.direct_base_url("usage-none"))
    assert usage is None
    assert text == sim.farm.truth[-1].content
    assert len(text) == 5 * 20


async def test_openai_sdk_through_the_openrouter_front(sim: Simulator) -> None:
    pin = {"provider": {"only": ["Reasoning"], "allow_fallbacks": False}}
    text, usage, chunks = await sdk_stream(
        sim.openrouter_base_url, extra_body=pin | {"usage": {"include": True}}, max_tokens=12
    )
    record = sim.farm.truth[-1]
    assert (record.provider, record.route, record.outcome) == (
        "reasoning",
        "openrouter",
        Outcome.OK,
    )
    assert record.output_tokens == 12  # 8 reasoning + 4 answer tokens
    assert text == record.content
    assert len(text) == 4 * 5
    assert usage.completion_tokens == 12
    assert usage.completion_tokens_details.reasoning_tokens == 8
    assert usage.model_extra["cost"] == pytest.approx((usage.prompt_tokens + 12) * 0.5 / 1e6)
    assert {c.model_extra["provider"] for c in chunks} == {"reasoning"}
    reasoning = "".join(
        (c.choices[0].delta.model_extra or {}).get("reasoning") or "" for c in chunks if c.choices
    )
    assert len(reasoning) == 8 * 5
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "length"


async def test_openai_sdk_raises_on_an_error_after_200(sim: Simulator) -> None:
    with pytest.raises(openai.APIError, match="Upstream provider error"):
        await sdk_stream(sim.direct_base_url("error-after-200"))
    pin = {"provider": {"only": ["http-503"]}}
    with pytest.raises(openai.APIError, match="Upstream provider error"):
        await sdk_stream(sim.openrouter_base_url, extra_body=pin)
    assert sim.farm.truth[-1].outcome is Outcome.STREAM_ERROR


async def test_wrong_key_is_401(sim: Simulator, session: aiohttp.ClientSession) -> None:
    url = sim.direct_base_url("plain") + "/chat/completions"
    for headers in ({"Authorization": "Bearer nope"}, {"Authorization": ""}):
        async with session.post(url, json=BODY, headers=headers) as response:
            assert response.status == 401
            assert "API key" in (await response.json())["error"]["message"]
    async with openai.AsyncOpenAI(
        base_url=sim.openrouter_base_url, api_key="nope", max_retries=0
    ) as client:
        with pytest.raises(openai.AuthenticationError):
            await client.chat.completions.create(model=DEMO_MODEL, messages=MESSAGES, stream=True)  # type: ignore[arg-type]


async def test_rate_limit_answers_429_with_retry_after(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    url = sim.direct_base_url("rate-limited") + "/chat/completions"
    async with session.post(url, json=BODY) as response:
        assert response.status == 200
        await response.read()
    async with session.post(url, json=BODY) as response:
        assert response.status == 429
        assert int(response.headers["Retry-After"]) >= 1
        assert (await response.json())["error"]["type"] == "rate_limit_error"
    pinned = BODY | {"provider": {"only": ["rate-limited"], "allow_fallbacks": False}}
    async with session.post(sim.openrouter_base_url + "/chat/completions", json=pinned) as response:
        assert response.status == 429
        assert int(response.headers["Retry-After"]) >= 1
        assert (await response.json())["error"]["code"] == 429
    assert [r.outcome for r in sim.farm.truth] == [
        Outcome.OK,
        Outcome.RATE_LIMITED,
        Outcome.RATE_LIMITED,
    ]


async def test_rejected_stream_options_is_a_400_naming_them(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    url = sim.direct_base_url("rejects-stream-options") + "/chat/completions"
    async with session.post(url, json=BODY) as response:
        assert response.status == 400
        assert "stream_options" in (await response.json())["error"]["message"]
    without = {k: v for k, v in BODY.items() if k != "stream_options"}
    async with session.post(url, json=without) as response:
        assert response.status == 200
        assert (await response.read()).endswith(b"data: [DONE]\n\n")


async def test_cut_breaks_the_chunked_body(sim: Simulator, session: aiohttp.ClientSession) -> None:
    url = sim.direct_base_url("cut") + "/chat/completions"
    async with session.post(url, json=BODY) as response:
        assert response.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()
    record = sim.farm.truth[-1]
    assert (record.ending, record.tokens_written, record.closed_by) == ("cut", 10, "server")


async def test_refuse_outage_drops_the_connection(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    url = sim.direct_base_url("outage-refuse") + "/chat/completions"
    with pytest.raises(aiohttp.ServerDisconnectedError):
        async with session.post(url, json=BODY):
            pass
    assert sim.farm.truth[-1].outcome is Outcome.CONNECTION_ERROR


async def test_http_errors_and_unknown_routes(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    async with session.post(sim.direct_base_url("http-500") + "/chat/completions", json=BODY) as r:
        assert r.status == 500
        assert (await r.json())["error"]["message"] == "Upstream provider error"
    async with session.post(sim.direct_base_url("nobody") + "/chat/completions", json=BODY) as r:
        assert r.status == 404
    unknown = BODY | {"model": "no/such-model"}
    async with session.post(sim.openrouter_base_url + "/chat/completions", json=unknown) as r:
        assert r.status == 404
        assert (await r.json())["error"]["code"] == 404


async def test_openrouter_front_sends_processing_comments_first(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    pinned = BODY | {"provider": {"only": ["buffered"]}}  # first token after 0.125 s
    async with session.post(sim.openrouter_base_url + "/chat/completions", json=pinned) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/event-stream")
        raw = await r.read()
    assert raw.startswith(b": OPENROUTER PROCESSING\n\n" * 3)
    assert raw.endswith(b"data: [DONE]\n\n")


async def test_send_time_stamps_and_timing(sim: Simulator, session: aiohttp.ClientSession) -> None:
    before_ns = time.monotonic_ns()
    arrivals: list[tuple[int, dict[str, Any]]] = []
    async with session.post(sim.direct_base_url("plain") + "/chat/completions", json=BODY) as r:
        async for line in r.content:
            if line.startswith(b"data: {"):
                arrivals.append((time.perf_counter_ns(), json.loads(line[6:])))
    record = sim.farm.truth[-1]
    stamps = [chunk["x_sent_ns"] for _, chunk in arrivals]
    assert stamps == sorted(stamps)
    received = [at_ns for at_ns, _ in arrivals]
    assert all(before_ns <= sent <= got for sent, got in zip(stamps, received, strict=True))
    assert record.first_token_ns == stamps[0]
    # the server keeps to its plan: first token at the intended TTFT, from arrival, within 40 ms
    assert record.ttft_s is not None
    assert record.first_token_ns is not None
    actual_s = (record.first_token_ns - record.arrival_ns) / 1e9
    assert record.ttft_s - 0.002 <= actual_s <= record.ttft_s + 0.04


async def test_endpoints_and_models(sim: Simulator, session: aiohttp.ClientSession) -> None:
    url = f"{sim.openrouter_base_url}/models/{DEMO_MODEL}/endpoints"
    async with session.get(url) as r:
        assert r.status == 200
        data = (await r.json())["data"]
    assert data["id"] == DEMO_MODEL
    assert {"id", "name", "created", "description", "architecture", "endpoints"} <= data.keys()
    endpoint = data["endpoints"][0]
    assert set(endpoint) >= {
        "name",
        "provider_name",
        "tag",
        "context_length",
        "pricing",
        "quantization",
        "max_completion_tokens",
        "max_prompt_tokens",
        "supported_parameters",
        "status",
        "uptime_last_30m",
    }
    assert endpoint["name"] == f"plain | {DEMO_MODEL}"
    assert float(endpoint["pricing"]["prompt"]) == pytest.approx(0.5e-6)
    assert len(data["endpoints"]) == len(sim.farm.profiles)
    async with session.get(f"{sim.openrouter_base_url}/models/no/such/endpoints") as r:
        assert r.status == 404
    async with session.get(f"{sim.openrouter_base_url}/models") as r:
        assert [m["id"] for m in (await r.json())["data"]] == [DEMO_MODEL]
    async with session.get(sim.direct_base_url("plain") + "/models") as r:
        assert (await r.json())["data"][0]["id"] == DEMO_MODEL
    async with session.get(
        sim.direct_base_url("plain") + "/models", headers={"Authorization": ""}
    ) as r:
        assert r.status == 401


async def test_truth_and_reset_over_http(sim: Simulator, session: aiohttp.ClientSession) -> None:
    async with session.post(sim.direct_base_url("plain") + "/chat/completions", json=BODY) as r:
        await r.read()
    async with session.get(sim.base_url + "/_sim/truth") as r:
        truth = await r.json()
    assert truth == [record.to_json() for record in sim.farm.truth]
    assert truth[0]["outcome"] == "ok"
    assert truth[0]["tokens_written"] == 20
    later = f"{sim.base_url}/_sim/truth?since_ns={sim.farm.truth[0].arrival_ns + 1}"
    async with session.get(later) as r:
        assert await r.json() == []
    async with session.post(sim.base_url + "/_sim/reset") as r:
        assert r.status == 200
    assert sim.farm.truth == []


async def test_hang_and_stall_do_not_block_shutdown() -> None:
    farm = quirks_farm(processing_s=0.02)

    async def request(client: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> str:
        try:
            async with client.post(url, json=body) as response:
                await response.read()
                return f"completed {response.status}"
        except aiohttp.ClientError as exc:
            return type(exc).__name__

    async with aiohttp.ClientSession() as client:
        async with run_simulator(farm) as sim:
            calls = [
                (sim.direct_base_url("hang") + "/chat/completions", BODY),
                (sim.direct_base_url("stall") + "/chat/completions", BODY),
                (
                    sim.openrouter_base_url + "/chat/completions",
                    BODY | {"provider": {"only": ["hang"]}},
                ),
            ]
            tasks = [asyncio.create_task(request(client, url, body)) for url, body in calls]
            await eventually(lambda: sum(r.tokens_written for r in farm.truth) == 10)
            await asyncio.sleep(0.1)  # the OpenRouter hang keeps sending its comments
            stopping = time.perf_counter()
        stopped_s = time.perf_counter() - stopping
        results = await asyncio.wait_for(asyncio.gather(*tasks), timeout=5)
    assert stopped_s < 0.5
    assert not any(result.startswith("completed") for result in results)
    assert [r.closed_by for r in farm.truth] == ["shutdown"] * 3
    assert [r.outcome for r in farm.truth] == [Outcome.TIMEOUT] * 3


async def test_a_client_giving_up_on_a_hang_ends_its_handler(sim: Simulator) -> None:
    timeout = aiohttp.ClientTimeout(total=0.2)
    async with aiohttp.ClientSession(headers=AUTH, timeout=timeout) as client:
        with pytest.raises(TimeoutError):
            async with client.post(
                sim.direct_base_url("stall") + "/chat/completions", json=BODY
            ) as r:
                await r.read()
    await eventually(lambda: sim.farm.truth[-1].closed_by is not None)
    record = sim.farm.truth[-1]
    assert record.closed_by == "client"
    assert record.closed_ns is not None
    assert record.closed_ns - record.arrival_ns >= 0.15e9  # when the client gave up (0.2 s)


async def test_serve_runs_until_cancelled() -> None:
    farm = Farm(quirks_farm().profiles[:1])
    started: asyncio.Future[Simulator] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve(farm, "127.0.0.1", 0, ready=started.set_result))
    sim = await asyncio.wait_for(started, timeout=5)
    async with (
        aiohttp.ClientSession() as client,
        client.get(sim.direct_base_url("plain") + "/models") as r,
    ):
        assert r.status == 200
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
