"""The probe client against the simulator: every quirk and fault gives the right outcome,
error_kind, tokens and timings, compared with the simulator's ground truth."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
import time

import aiohttp
import pytest

from monitor.config import parse_config
from monitor.results import Outcome, TokenSource
from monitor.runtime import make_prober
from monitor.simulator import DEMO_MODEL, QUIRKS, Simulator, run_simulator
from monitor.simulator.farm import Farm
from monitor.simulator.profiles import ProviderProfile, ServedModel
from tests.conftest import API_KEY, make_config, only

# Faults whose outcome a correct monitor records, with the error_kind it should name.
EXPECTED_KIND = {
    "error-after-200": "stream.error",
    "finish-error": "stream.finish_error",
    "hang": "timeout.ttft",
    "stall": "timeout.idle",
    "cut": "stream.cut",
    "garbage": "stream.malformed_json",
    "empty": "empty",
    "http-500": "http.500",
    "http-503": "http.503",
    "http-429": "http.429",
    "outage-refuse": "conn.reset",
}


@pytest.mark.parametrize("quirk", sorted(set(QUIRKS) - {"rate-limited"}))
async def test_each_quirk_direct_matches_ground_truth(
    sim: Simulator, session: aiohttp.ClientSession, quirk: str
) -> None:
    cfg = make_config(sim, quirk)
    result = await make_prober(session, cfg).probe(only(cfg), cfg.workloads["small"])
    truth = [t for t in sim.farm.truth if t.provider == quirk]
    assert truth, "the simulator saw no request"
    intended = truth[-1]
    assert result.outcome == intended.outcome, (result, intended)
    assert result.error_kind == EXPECTED_KIND.get(quirk), result
    assert result.model == DEMO_MODEL
    assert result.provider == quirk
    assert result.route == "direct"
    assert result.vantage == "test"
    assert result.workload == "small"
    assert result.started_at.tzinfo is not None
    if result.outcome is Outcome.OK:
        assert result.output_tokens == intended.output_tokens or result.token_source is not (
            TokenSource.USAGE
        )
        assert result.ttft_ms is not None
        assert result.latency_ms is not None
        assert result.ttft_ms <= result.latency_ms
        assert result.chunks == intended.chunks
        assert result.http_status == 200
    # No secret ever appears in a result.
    assert API_KEY not in json.dumps(result.to_json())


@pytest.mark.parametrize("route", ["direct", "openrouter"])
async def test_plain_timings_match_what_was_sent(
    sim: Simulator, session: aiohttp.ClientSession, route: str
) -> None:
    cfg = make_config(sim, "plain", route=route)
    prober = make_prober(session, cfg)
    results = [await prober.probe(only(cfg), cfg.workloads["small"]) for _ in range(3)]
    records = [t for t in sim.farm.truth if t.provider == "plain"]
    for result, truth in zip(results, records, strict=True):
        assert result.outcome is Outcome.OK
        assert result.token_source is TokenSource.USAGE
        assert result.output_tokens == truth.tokens_written == 20
        assert truth.first_token_ns is not None
        assert truth.last_token_ns is not None
        # TTFT measured by the client ≥ the server's own view (arrival → first write), and
        # not much more on loopback.
        server_ttft_ms = (truth.first_token_ns - truth.arrival_ns) / 1e6
        assert result.ttft_ms is not None
        assert server_ttft_ms <= result.ttft_ms + 0.5
        assert result.ttft_ms - server_ttft_ms < 25
        sent_span_s = (truth.last_token_ns - truth.first_token_ns) / 1e9
        assert result.decode_tps == pytest.approx((20 - 1) / sent_span_s, rel=0.25)
        assert result.e2e_tps is not None
        assert result.e2e_tps < result.decode_tps
        assert result.buffered is False
        if route == "openrouter":
            assert result.served_by == "plain"
            assert result.cost_usd is not None


async def test_reasoning_tokens_count_for_ttft_not_ttfa(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    cfg = make_config(sim, "reasoning", "reasoning-field")
    prober = make_prober(session, cfg)
    for target in cfg.targets:
        r = await prober.probe(target, cfg.workloads["small"])
        assert r.outcome is Outcome.OK
        assert r.ttft_ms is not None
        assert r.ttfa_ms is not None
        assert r.ttft_ms < r.ttfa_ms
        truth = [t for t in sim.farm.truth if t.provider == target.provider][-1]
        assert r.output_tokens == truth.output_tokens  # reasoning included


async def test_usage_on_every_chunk_is_not_summed_and_no_usage_is_counted(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    cfg = make_config(sim, "usage-every", "usage-none")
    prober = make_prober(session, cfg)
    every, none = [await prober.probe(t, cfg.workloads["small"]) for t in cfg.targets]
    assert every.output_tokens == 20
    assert every.token_source is TokenSource.USAGE
    # No usage: counted with tiktoken's cl100k_base, exact for the simulator's one-token words.
    assert none.token_source is TokenSource.TOKENIZER
    assert none.output_tokens == 20
    assert none.input_tokens is not None  # counted from the prompt


async def test_several_tokens_per_chunk(sim: Simulator, session: aiohttp.ClientSession) -> None:
    cfg = make_config(sim, "multi-token")
    r = await make_prober(session, cfg).probe(only(cfg), cfg.workloads["small"])
    assert r.outcome is Outcome.OK
    assert r.output_tokens == 20
    assert r.chunks == 5  # chunks are not tokens


async def test_buffered_stream_is_flagged(sim: Simulator, session: aiohttp.ClientSession) -> None:
    cfg = make_config(sim, "buffered")
    r = await make_prober(session, cfg).probe(only(cfg), cfg.workloads["small"])
    assert r.outcome is Outcome.OK
    assert r.buffered is True
    assert r.decode_tps is None
    assert r.e2e_tps is not None


async def test_stream_options_rejection_retries_once_and_is_remembered(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    cfg = make_config(sim, "rejects-stream-options")
    prober = make_prober(session, cfg)
    target = only(cfg)
    first = await prober.probe(target, cfg.workloads["small"])
    assert first.outcome is Outcome.OK
    assert prober.rejects_stream_options(target)
    assert len([t for t in sim.farm.truth if t.provider == target.provider]) == 2
    second = await prober.probe(target, cfg.workloads["small"])
    assert second.outcome is Outcome.OK
    assert len([t for t in sim.farm.truth if t.provider == target.provider]) == 3


async def test_rate_limit_keeps_retry_after(sim: Simulator, session: aiohttp.ClientSession) -> None:
    cfg = make_config(sim, "rate-limited")
    prober = make_prober(session, cfg)
    first = await prober.probe(only(cfg), cfg.workloads["small"])
    second = await prober.probe(only(cfg), cfg.workloads["small"])
    assert first.outcome is Outcome.OK
    assert second.outcome is Outcome.RATE_LIMITED
    assert second.http_status == 429
    assert second.retry_after_s is not None
    assert second.retry_after_s > 0


async def test_http_429_fault_has_retry_after(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    cfg = make_config(sim, "http-429")
    r = await make_prober(session, cfg).probe(only(cfg), cfg.workloads["small"])
    assert r.outcome is Outcome.RATE_LIMITED
    assert r.retry_after_s is not None


async def test_error_after_200_keeps_the_message(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    cfg = make_config(sim, "error-after-200")
    r = await make_prober(session, cfg).probe(only(cfg), cfg.workloads["small"])
    assert r.outcome is Outcome.STREAM_ERROR
    assert r.http_status == 200
    assert r.error_message
    assert r.latency_ms is None or r.latency_ms > 0


@pytest.mark.parametrize(
    ("quirk", "outcome", "kind"),
    [
        ("plain", Outcome.OK, None),
        ("comments", Outcome.OK, None),
        ("http-500", Outcome.STREAM_ERROR, "openrouter.provider_error"),  # in-stream, after 200
        ("empty", Outcome.EMPTY_RESPONSE, "empty"),
        ("cut", Outcome.STREAM_ERROR, "stream.cut"),
        ("http-429", Outcome.RATE_LIMITED, "stream.rate_limited"),
    ],
)
async def test_openrouter_route(
    sim: Simulator,
    session: aiohttp.ClientSession,
    quirk: str,
    outcome: Outcome,
    kind: str | None,
) -> None:
    cfg = make_config(sim, quirk, route="openrouter")
    target = only(cfg)
    assert target.route == "openrouter"
    r = await make_prober(session, cfg).probe(target, cfg.workloads["small"])
    assert (r.outcome, r.error_kind) == (outcome, kind), r
    assert r.route == "openrouter"
    truth = [t for t in sim.farm.truth if t.route == "openrouter"][-1]
    assert truth.provider == quirk  # the pin reached the right provider
    if outcome is Outcome.OK:
        assert r.cost_usd is not None
        assert r.cost_usd > 0


async def test_wrong_key_is_a_client_error_and_never_shown(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    doc = {
        "timeouts": {"first_token_s": 2, "total_s": 5},
        "targets": [
            {
                "route": "direct",
                "model": DEMO_MODEL,
                "provider": "plain",
                "base_url": sim.direct_base_url("plain"),
                "api_key_env": "BAD",
            }
        ],
    }
    cfg = parse_config(doc, {"BAD": "sk-wrong-secret-value-42"})
    r = await make_prober(session, cfg).probe(only(cfg), cfg.workloads["heartbeat"])
    assert (r.outcome, r.error_kind) == (Outcome.CLIENT_ERROR, "http.401")
    assert "sk-wrong-secret-value-42" not in json.dumps(r.to_json())


async def test_provider_echoing_the_key_is_redacted(session: aiohttp.ClientSession) -> None:
    key = "sk-echoed-secret-123456"
    profile = ProviderProfile(
        "echo",
        "echo",
        (ServedModel(DEMO_MODEL),),
        ttft_ms=5,
        tps=500,
        output_tokens=3,
        p_http_500=1.0,
        error_message=f"auth header was Bearer {key} and key={key}",
    )
    async with run_simulator(Farm((profile,), api_key=key)) as s:
        cfg = parse_config(
            {
                "targets": [
                    {
                        "route": "direct",
                        "model": DEMO_MODEL,
                        "provider": "echo",
                        "base_url": s.direct_base_url("echo"),
                        "api_key_env": "K",
                    }
                ]
            },
            {"K": key},
        )
        r = await make_prober(session, cfg).probe(only(cfg), cfg.workloads["heartbeat"])
    assert r.outcome is Outcome.SERVER_ERROR
    assert r.error_message
    assert "***" in r.error_message
    assert key not in json.dumps(r.to_json())


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_connection_refused(session: aiohttp.ClientSession) -> None:
    cfg = parse_config(
        {
            "targets": [
                {
                    "route": "direct",
                    "model": "m",
                    "provider": "gone",
                    "base_url": f"http://127.0.0.1:{_closed_port()}/v1",
                }
            ]
        },
        {},
    )
    r = await make_prober(session, cfg).probe(only(cfg), cfg.workloads["heartbeat"])
    assert (r.outcome, r.error_kind) == (Outcome.CONNECTION_ERROR, "conn.refused")


async def test_connect_timeout_on_a_listener_that_never_accepts(
    session: aiohttp.ClientSession,
) -> None:
    # A listening socket with a full backlog: the TCP handshake never completes.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(8):
            f = socket.socket()
            f.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                f.connect(("127.0.0.1", port))
            fillers.append(f)
        cfg = parse_config(
            {
                "timeouts": {"connect_s": 0.3, "first_token_s": 3, "total_s": 5},
                "targets": [
                    {
                        "route": "direct",
                        "model": "m",
                        "provider": "p",
                        "base_url": f"http://127.0.0.1:{port}/v1",
                    }
                ],
            },
            {},
        )
        start = time.monotonic()
        r = await make_prober(session, cfg).probe(only(cfg), cfg.workloads["heartbeat"])
        elapsed = time.monotonic() - start
    finally:
        for f in fillers:
            f.close()
        listener.close()
    # Linux may complete the handshake into the backlog anyway; then headers never come.
    assert r.outcome is Outcome.TIMEOUT
    assert r.error_kind in ("timeout.connect", "timeout.ttft")
    assert elapsed < 3.5


async def test_total_deadline(sim: Simulator, session: aiohttp.ClientSession) -> None:
    # Slow but steady: never idle, never first-token late, yet longer than total_s.
    cfg = make_config(
        sim,
        "plain",
        timeouts={"connect_s": 1, "first_token_s": 0.05, "idle_s": 1, "total_s": 0.05},
    )
    r = await make_prober(session, cfg).probe(only(cfg), cfg.workloads["small"])
    assert r.outcome is Outcome.TIMEOUT
    assert r.error_kind == "timeout.total"


async def test_garbage_server_is_a_recorded_outcome(session: aiohttp.ClientSession) -> None:
    """A raw TCP server answering with a 200 that is not an event stream."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        body = b"<html>not a stream</html>"
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        cfg = parse_config(
            {
                "targets": [
                    {
                        "route": "direct",
                        "model": "m",
                        "provider": "p",
                        "base_url": f"http://127.0.0.1:{port}/v1",
                    }
                ]
            },
            {},
        )
        r = await make_prober(session, cfg).probe(only(cfg), cfg.workloads["heartbeat"])
    assert (r.outcome, r.error_kind) == (Outcome.STREAM_ERROR, "stream.not_sse")
    assert r.error_message is not None
    assert "not a stream" in r.error_message


async def test_provider_gate_bounds_concurrency_and_rate(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    cfg = make_config(sim, "plain", providers={"plain": {"concurrency": 1, "requests_per_s": 10}})
    prober = make_prober(session, cfg)
    start = time.monotonic()
    results = await asyncio.gather(
        *(prober.probe(only(cfg), cfg.workloads["heartbeat"]) for _ in range(4))
    )
    elapsed = time.monotonic() - start
    assert all(r.outcome is Outcome.OK for r in results)
    arrivals = sorted(t.arrival_ns for t in sim.farm.truth)
    gaps_s = [(b - a) / 1e9 for a, b in itertools.pairwise(arrivals)]
    # At most 10 starts a second: 0.1 s apart at the client, seen at the provider give or take
    # the connection set-up's jitter (0.099 s on a quiet machine; without the rate limit the
    # gaps are one probe long, ~0.035 s)
    assert min(gaps_s) >= 0.075
    assert elapsed >= 0.3
    # Concurrency 1: no two requests overlapped.
    spans = sorted((t.arrival_ns, t.last_token_ns or t.arrival_ns) for t in sim.farm.truth)
    for (_, end), (start_next, _) in itertools.pairwise(spans):
        assert start_next >= end
