"""The simulator's pure part: plans (bytes, timing, ground truth), the farm's decisions, the
catalogue JSON. No sockets."""

from __future__ import annotations

import json
import math
import random
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.results import Outcome
from monitor.simulator import DEMO_MODEL, QUIRKS, Farm, ProviderProfile, ServedModel
from monitor.simulator.catalog import direct_models_json, endpoints_json, models_json
from monitor.simulator.farm import TokenBucket
from monitor.simulator.plan import (
    PROCESSING_COMMENT,
    SENT_NS_PLACEHOLDER,
    Plan,
    PlanRequest,
    plan_response,
    token_text,
)
from monitor.simulator.scenarios import demo_farm, quirks_farm

PROMPT_CHARS = 41  # 11 prompt tokens


def profile(name: str) -> ProviderProfile:
    found = quirks_farm().profile(name)
    assert found is not None
    return found


def make_plan(
    prof: ProviderProfile | str,
    *,
    route: str = "direct",
    include_usage: bool = True,
    max_tokens: int | None = None,
    seed: int = 0,
    elapsed_s: float = 1.0,
    **request: Any,
) -> Plan:
    prof = profile(prof) if isinstance(prof, str) else prof
    req = PlanRequest(
        request_id="r1",
        model=DEMO_MODEL,
        prompt_chars=PROMPT_CHARS,
        max_tokens=max_tokens,
        include_usage=include_usage,
        has_stream_options=include_usage,
        route=route,  # type: ignore[arg-type]
        processing_s=0.01,
        **request,
    )
    return plan_response(prof, req, random.Random(seed), elapsed_s=elapsed_s)


def events(body: bytes) -> list[tuple[str, str]]:
    """A minimal SSE reading of a plan's bytes: ("comment" | "data", text) per line."""
    out = []
    for line in body.decode().replace("\r\n", "\n").split("\n"):
        if line.startswith(":"):
            out.append(("comment", line[1:].strip()))
        elif line.startswith("data:"):
            out.append(("data", line.removeprefix("data:").removeprefix(" ")))
        else:
            assert line == "", line
    return out


def chunks(plan: Plan) -> list[dict[str, Any]]:
    """Every data event that is JSON ([DONE] and garbage left out)."""
    out = []
    for kind, text in events(plan.body):
        if kind == "data" and text != "[DONE]":
            try:
                out.append(json.loads(text))
            except ValueError:
                continue
    return out


def deltas(plan: Plan) -> list[dict[str, Any]]:
    return [c["choices"][0]["delta"] for c in chunks(plan) if c.get("choices")]


def last_usage(plan: Plan) -> dict[str, Any] | None:
    usages = [c["usage"] for c in chunks(plan) if "usage" in c]
    return usages[-1] if usages else None


# (status, outcome, ending) each quirks-farm provider intends, at the plan level (the farm's
# own checks, rate limit and stream_options rejection, come before the plan)
EXPECTED = {
    "plain": (200, Outcome.OK, "done"),
    "comments": (200, Outcome.OK, "done"),
    "role-first": (200, Outcome.OK, "done"),
    "reasoning": (200, Outcome.OK, "done"),
    "reasoning-field": (200, Outcome.OK, "done"),
    "usage-every": (200, Outcome.OK, "done"),
    "usage-none": (200, Outcome.OK, "done"),
    "multi-token": (200, Outcome.OK, "done"),
    "error-after-200": (200, Outcome.STREAM_ERROR, "done"),
    "finish-error": (200, Outcome.STREAM_ERROR, "done"),
    "hang": (None, Outcome.TIMEOUT, "hang"),
    "stall": (200, Outcome.TIMEOUT, "stall"),
    "cut": (200, Outcome.STREAM_ERROR, "cut"),
    "garbage": (200, Outcome.STREAM_ERROR, "done"),
    "empty": (200, Outcome.EMPTY_RESPONSE, "done"),
    "http-500": (500, Outcome.SERVER_ERROR, "done"),
    "http-503": (503, Outcome.SERVER_ERROR, "done"),
    "http-429": (429, Outcome.RATE_LIMITED, "done"),
    "rate-limited": (200, Outcome.OK, "done"),
    "outage-refuse": (None, Outcome.CONNECTION_ERROR, "cut"),
    "rejects-stream-options": (200, Outcome.OK, "done"),
    "buffered": (200, Outcome.OK, "done"),
    "crlf": (200, Outcome.OK, "done"),
    "no-space": (200, Outcome.OK, "done"),
    "no-done": (200, Outcome.OK, "done"),
}


def test_every_quirk_has_an_expectation() -> None:
    assert set(EXPECTED) == set(QUIRKS)


@pytest.mark.parametrize("name", sorted(QUIRKS))
def test_quirk_intends_its_status_outcome_and_ending(name: str) -> None:
    plan = make_plan(name)
    status, outcome, ending = EXPECTED[name]
    assert (plan.status, plan.intent.status, plan.intent.outcome, plan.ending) == (
        status,
        status,
        outcome,
        ending,
    )


@pytest.mark.parametrize("name", sorted(n for n, e in EXPECTED.items() if e[0] == 200))
@pytest.mark.parametrize("route", ["direct", "openrouter"])
def test_streamed_bytes_agree_with_the_intent(name: str, route: str) -> None:
    plan = make_plan(name, route=route)
    intent = plan.intent
    assert sum(s.tokens for s in plan.steps) == intent.output_tokens
    assert sum(s.chunks for s in plan.steps) == intent.chunks
    texts = [d.get("content", "") for d in deltas(plan)]
    assert "".join(texts) == intent.content
    reasoning = [d.get("reasoning_content", d.get("reasoning", "")) for d in deltas(plan)]
    assert "".join(reasoning) == "".join(token_text(i) for i in range(intent.reasoning_tokens))
    token_chunks = [
        d
        for d in deltas(plan)
        if any(d.get(k) for k in ("content", "reasoning", "reasoning_content"))
    ]
    assert len(token_chunks) == intent.chunks
    usage = last_usage(plan)
    if usage is not None:
        assert usage["completion_tokens"] == intent.output_tokens
        assert usage["prompt_tokens"] == math.ceil(PROMPT_CHARS / 4)
        assert usage["completion_tokens_details"]["reasoning_tokens"] == intent.reasoning_tokens
    if intent.ttft_s is not None:  # the first token-bearing step is written at ttft_s
        elapsed, first = 0.0, None
        for step in plan.steps:
            elapsed += step.delay_s
            if step.tokens and first is None:
                first = elapsed
        assert first == pytest.approx(intent.ttft_s)
    for chunk in chunks(plan):
        if "choices" in chunk:
            assert chunk["object"] == "chat.completion.chunk"
            assert {"id", "created", "model"} <= chunk.keys()
            assert chunk["model"] == DEMO_MODEL


def test_plain_stream_is_a_proper_openai_stream() -> None:
    plan = make_plan("plain")
    evs = events(plan.body)
    assert evs[-1] == ("data", "[DONE]")
    all_chunks = chunks(plan)
    assert all_chunks[-1]["choices"] == []  # the usage-only chunk
    assert all_chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert all(c["choices"][0]["finish_reason"] is None for c in all_chunks[:-2])
    assert plan.intent.output_tokens == 20
    assert plan.intent.chunks == 20
    assert plan.intent.ttft_s == pytest.approx(0.03)
    assert plan.intent.content == "".join(token_text(i) for i in range(20))
    assert len(plan.intent.content) == 5 * 20
    assert (plan.body[:7], plan.body[-2:]) == (b"data: {", b"\n\n")


def test_comments_come_before_and_among_events() -> None:
    evs = events(make_plan("comments").body)
    assert evs[0] == ("comment", "keep-alive")
    assert sum(kind == "comment" for kind, _ in evs) >= 4
    first_data = next(i for i, (kind, _) in enumerate(evs) if kind == "data")
    last_comment = max(i for i, (kind, _) in enumerate(evs) if kind == "comment")
    assert last_comment > first_data


def test_role_first_chunk() -> None:
    plan = make_plan("role-first")
    assert deltas(plan)[0] == {"role": "assistant", "content": ""}
    assert plan.steps[0].delay_s == 0
    assert plan.steps[0].tokens == 0


@pytest.mark.parametrize(
    ("name", "route", "field"),
    [
        ("reasoning", "direct", "reasoning_content"),
        ("reasoning-field", "direct", "reasoning"),
        ("reasoning", "openrouter", "reasoning"),  # OpenRouter normalises the field
    ],
)
def test_reasoning_tokens_come_first(name: str, route: str, field: str) -> None:
    plan = make_plan(name, route=route)
    ds = [d for d in deltas(plan) if d]
    assert all(field in d for d in ds[:8])
    assert all("content" in d for d in ds[8:])
    assert plan.intent.reasoning_tokens == 8
    assert plan.intent.output_tokens == 28
    assert plan.intent.content == "".join(token_text(i) for i in range(8, 28))


def test_usage_on_every_chunk_is_a_running_total() -> None:
    plan = make_plan("usage-every")
    totals = [c["usage"]["completion_tokens"] for c in chunks(plan)]
    assert totals == list(range(1, 21))
    assert all(c["choices"] for c in chunks(plan))  # no separate usage-only chunk


@pytest.mark.parametrize(("name", "include_usage"), [("usage-none", True), ("plain", False)])
def test_no_usage(name: str, include_usage: bool) -> None:
    assert last_usage(make_plan(name, include_usage=include_usage)) is None


def test_multi_token_chunks() -> None:
    plan = make_plan("multi-token")
    contents = [d["content"] for d in deltas(plan) if d.get("content")]
    assert [len(c) for c in contents] == [20] * 5
    assert plan.intent.chunks == 5
    assert plan.intent.output_tokens == 20


def test_error_object_after_200_ends_the_stream() -> None:
    plan = make_plan("error-after-200")
    evs = events(plan.body)
    assert json.loads(evs[-1][1]) == {"error": {"code": 502, "message": "Upstream provider error"}}
    assert ("data", "[DONE]") not in evs
    assert plan.intent.output_tokens == 10


def test_finish_reason_error() -> None:
    plan = make_plan("finish-error")
    finishes = [c["choices"][0]["finish_reason"] for c in chunks(plan) if c["choices"]]
    assert finishes[-1] == "error"
    assert finishes.count("error") == 1
    assert plan.intent.finish_reason == "error"
    assert plan.intent.output_tokens == 10


@pytest.mark.parametrize("name", ["stall", "cut"])
def test_stall_and_cut_stop_halfway_without_an_end(name: str) -> None:
    plan = make_plan(name)
    assert plan.intent.output_tokens == 10
    assert ("data", "[DONE]") not in events(plan.body)
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks(plan))


def test_garbage_is_one_unparseable_data_line() -> None:
    plan = make_plan("garbage")
    bad = []
    for kind, text in events(plan.body):
        if kind == "data" and text != "[DONE]":
            try:
                json.loads(text)
            except ValueError:
                bad.append(text)
    assert len(bad) == 1
    assert events(plan.body)[-1] == ("data", "[DONE]")
    assert plan.intent.output_tokens == 20


def test_empty_stream() -> None:
    plan = make_plan("empty")
    assert plan.intent.ttft_s is None
    assert plan.intent.content == ""
    assert last_usage(plan) == {
        "prompt_tokens": 11,
        "completion_tokens": 0,
        "total_tokens": 11,
        "completion_tokens_details": {"reasoning_tokens": 0},
    }
    assert chunks(plan)[0]["choices"][0] == {
        "index": 0,
        "delta": {"content": ""},
        "finish_reason": "stop",
    }


@pytest.mark.parametrize(("name", "status"), [("http-500", 500), ("http-503", 503)])
def test_http_errors_carry_an_openai_error_body(name: str, status: int) -> None:
    prof = replace(profile(name), error_message="<script>alert(1)</script>")
    plan = make_plan(prof)
    assert plan.status == status
    assert json.loads(plan.body)["error"]["message"] == "<script>alert(1)</script>"
    assert ("Content-Type", "application/json") in plan.headers


def test_random_429_has_retry_after() -> None:
    plan = make_plan("http-429")
    assert ("Retry-After", "1") in plan.headers
    assert json.loads(plan.body)["error"]["type"] == "rate_limit_error"


def test_buffered_writes_everything_at_once() -> None:
    plan = make_plan("buffered")
    data_steps = [s for s in plan.steps if s.tokens]
    assert len(data_steps) == 1
    assert data_steps[0].tokens == 20
    assert data_steps[0].chunks == 20
    assert plan.intent.ttft_s == pytest.approx(0.03 + 19 / 200)


def test_line_endings_and_data_prefix() -> None:
    crlf = make_plan("crlf").body
    assert crlf.count(b"\r\n") > 0
    assert b"\n" not in crlf.replace(b"\r\n", b"")
    no_space = make_plan("no-space").body
    assert b"data:{" in no_space
    assert b"data: " not in no_space
    assert b"data:[DONE]" in no_space


def test_no_done_ends_with_the_last_chunk() -> None:
    plan = make_plan("no-done")
    assert b"[DONE]" not in plan.body
    assert chunks(plan)[-1]["choices"] == []


def test_max_tokens_limits_the_answer() -> None:
    plan = make_plan("plain", max_tokens=5)
    assert plan.intent.output_tokens == 5
    assert plan.intent.finish_reason == "length"
    assert chunks(plan)[-2]["choices"][0]["finish_reason"] == "length"
    reasoning = make_plan("reasoning", max_tokens=5)  # reasoning counts against max_tokens
    assert reasoning.intent.reasoning_tokens == 5
    assert reasoning.intent.content == ""


def test_cost_in_usage_when_asked() -> None:
    prof = replace(profile("plain"), input_usd_per_mtok=2.0, output_usd_per_mtok=8.0)
    usage = last_usage(make_plan(prof, include_cost=True))
    assert usage is not None
    assert usage["cost"] == pytest.approx((11 * 2.0 + 20 * 8.0) / 1e6)
    usage = last_usage(make_plan(prof))
    assert usage is not None
    assert "cost" not in usage


def test_send_time_placeholder_in_every_json_chunk() -> None:
    plan = make_plan("plain", stamp_send_time=True)
    for kind, text in events(plan.body):
        if kind == "data" and text != "[DONE]":
            assert text.endswith(',"x_sent_ns":' + SENT_NS_PLACEHOLDER.decode() + "}")
    assert SENT_NS_PLACEHOLDER not in make_plan("plain").body


# --- the OpenRouter front --------------------------------------------------------------------


def test_openrouter_front_comments_until_the_first_token() -> None:
    plan = make_plan("buffered", route="openrouter")  # first token at 0.125 s
    evs = events(plan.body)
    processing = [e for e in evs if e == ("comment", PROCESSING_COMMENT[1:].strip())]
    assert len(processing) == math.ceil(0.125 / 0.01)
    assert evs[: len(processing)] == processing
    assert all(c["provider"] == "buffered" for c in chunks(plan))
    assert all(c["id"].startswith("gen-") for c in chunks(plan))


def test_openrouter_usage_always_has_cost() -> None:
    usage = last_usage(make_plan("plain", route="openrouter"))
    assert usage is not None
    assert usage["cost"] == pytest.approx((11 * 0.5 + 20 * 0.5) / 1e6)


def test_openrouter_normalises_the_wire_format() -> None:
    for name in ("crlf", "no-space", "no-done", "comments"):
        body = make_plan(name, route="openrouter").body
        assert b"\r" not in body
        assert b"data:{" not in body
        assert b"keep-alive" not in body
        assert body.endswith(b"data: [DONE]\n\n")


@pytest.mark.parametrize(
    ("name", "code"), [("http-500", 500), ("http-429", 429), ("outage-refuse", 502)]
)
def test_openrouter_relays_upstream_errors_in_stream(name: str, code: int) -> None:
    plan = make_plan(name, route="openrouter")
    assert plan.status == 200
    expected = Outcome.RATE_LIMITED if code == 429 else Outcome.STREAM_ERROR
    assert plan.intent.outcome is expected
    last = chunks(plan)[-1]
    assert last["error"]["code"] == code
    assert last["choices"] == [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}]
    assert events(plan.body)[0] == ("comment", "OPENROUTER PROCESSING")


def test_openrouter_hang_keeps_sending_processing_comments() -> None:
    plan = make_plan("hang", route="openrouter")
    assert (plan.status, plan.ending, plan.intent.outcome) == (200, "hang", Outcome.TIMEOUT)
    assert plan.keepalive == b": OPENROUTER PROCESSING\n\n"
    assert plan.keepalive_s == 0.01


# --- randomness, outages ---------------------------------------------------------------------


NOISY = ProviderProfile(
    "Noisy",
    "noisy",
    (ServedModel(DEMO_MODEL),),
    ttft_ms=300,
    ttft_sigma=0.5,
    tps=50,
    tps_sigma=0.3,
    tokens_per_chunk=3,
    output_tokens=30,
    p_http_500=0.1,
    p_stall=0.1,
    p_cut=0.1,
    p_empty=0.1,
)


def sequence(seed: int, n: int = 40) -> list[Plan]:
    rng = random.Random(seed)
    req = PlanRequest("r", DEMO_MODEL, 100, include_usage=True)
    return [plan_response(NOISY, req, rng, elapsed_s=0.0) for _ in range(n)]


def test_plans_are_deterministic_for_a_seed() -> None:
    assert sequence(7) == sequence(7)
    assert sequence(7) != sequence(8)
    faults = {p.intent.fault for p in sequence(7, 200)}
    assert faults == {"none", "http_500", "stall", "cut", "empty"}
    ttfts = [p.intent.ttft_s for p in sequence(7, 200) if p.intent.fault == "none"]
    assert len(set(ttfts)) > 10


@pytest.mark.parametrize(
    ("mode", "status", "outcome", "ending"),
    [
        ("http_503", 503, Outcome.SERVER_ERROR, "done"),
        ("hang", None, Outcome.TIMEOUT, "hang"),
        ("refuse", None, Outcome.CONNECTION_ERROR, "cut"),
    ],
)
def test_outage_windows(mode: Any, status: int | None, outcome: Outcome, ending: str) -> None:
    prof = replace(profile("plain"), outages=((10.0, 20.0),), outage_mode=mode)
    assert make_plan(prof, elapsed_s=9.99).intent.outcome is Outcome.OK
    inside = make_plan(prof, elapsed_s=10.0)
    assert (inside.status, inside.intent.outcome, inside.ending) == (status, outcome, ending)
    assert inside.intent.fault == f"outage_{mode}"
    assert make_plan(prof, elapsed_s=20.0).intent.outcome is Outcome.OK


@settings(max_examples=150, deadline=None)
@given(
    tokens_per_chunk=st.integers(1, 7),
    output_tokens=st.integers(0, 40),
    reasoning_tokens=st.integers(0, 9),
    max_tokens=st.none() | st.integers(1, 60),
    usage_mode=st.sampled_from(["final", "every"]),
    role_first=st.booleans(),
    buffered=st.booleans(),
    route=st.sampled_from(["direct", "openrouter"]),
    fault=st.sampled_from(["none", "stall", "cut", "stream_error", "finish_error", "garbage"]),
)
def test_token_counts_agree_everywhere(
    tokens_per_chunk: int,
    output_tokens: int,
    reasoning_tokens: int,
    max_tokens: int | None,
    usage_mode: Any,
    role_first: bool,
    buffered: bool,
    route: str,
    fault: str,
) -> None:
    faults: dict[str, Any] = {f"p_{fault}": 1.0} if fault != "none" else {}
    prof = replace(
        profile("plain"),
        tokens_per_chunk=tokens_per_chunk,
        output_tokens=output_tokens,
        reasoning_tokens=reasoning_tokens,
        usage_mode=usage_mode,
        role_first_chunk=role_first,
        buffered=buffered,
        **faults,
    )
    plan = make_plan(prof, max_tokens=max_tokens, route=route)
    intent = plan.intent
    natural = output_tokens + reasoning_tokens
    limit = natural if max_tokens is None else min(natural, max_tokens)
    if fault in ("none", "garbage"):
        assert intent.output_tokens == limit
    else:
        assert intent.output_tokens <= limit
    assert sum(s.tokens for s in plan.steps) == intent.output_tokens
    assert intent.chunks <= math.ceil(intent.output_tokens / tokens_per_chunk) + 1
    usage = last_usage(plan)
    if usage is not None:
        assert usage["completion_tokens"] == intent.output_tokens
    delays = [s.delay_s for s in plan.steps]
    assert all(d >= 0 for d in delays)
    if intent.outcome is Outcome.OK:
        assert intent.output_tokens >= 1
        assert intent.ttft_s is not None


# --- the farm: gateway checks, routing, rate limits, truth --------------------------------


def body(**extra: Any) -> bytes:
    request = {
        "model": DEMO_MODEL,
        "messages": [{"role": "user", "content": "x" * PROMPT_CHARS}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    return json.dumps(request | extra).encode()


def test_farm_requires_the_api_key_when_set() -> None:
    farm = quirks_farm(api_key="sk-test")
    plan, record = farm.plan_chat("direct", "plain", None, body(), 0)
    assert (plan.status, record.outcome, record.fault) == (401, Outcome.CLIENT_ERROR, "auth")
    plan, _ = farm.plan_chat("direct", "plain", "Bearer wrong", body(), 0)
    assert plan.status == 401
    plan, _ = farm.plan_chat("direct", "plain", "Bearer sk-test", body(), 0)
    assert plan.status == 200


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[]", "JSON object"),
        (body(stream=False), "stream"),
        (body(max_tokens=0), "max_tokens"),
        (body(messages=[]), "messages"),
    ],
)
def test_farm_rejects_bad_requests(raw: bytes, message: str) -> None:
    plan, record = quirks_farm().plan_chat("direct", "plain", None, raw, 0)
    assert plan.status == 400
    assert message in json.loads(plan.body)["error"]["message"]
    assert record.outcome is Outcome.CLIENT_ERROR


def test_farm_routes_and_pins() -> None:
    farm = Farm(
        (
            ProviderProfile("Alpha", "alpha", (ServedModel("a/one", "one-instruct"),)),
            ProviderProfile("Beta", "beta", (ServedModel("a/one"), ServedModel("b/two"))),
        )
    )
    plan, record = farm.plan_chat("direct", "alpha", None, body(model="one-instruct"), 0)
    assert plan.status == 200
    assert record.model == "one-instruct"
    assert chunks(plan)[0]["model"] == "one-instruct"
    plan, _ = farm.plan_chat("direct", "alpha", None, body(model="b/two"), 0)
    assert plan.status == 404
    assert json.loads(plan.body)["error"]["code"] == "model_not_found"
    plan, _ = farm.plan_chat("openrouter", None, None, body(model="c/none"), 0)
    assert plan.status == 404
    assert json.loads(plan.body)["error"]["code"] == 404
    pin = {"only": ["alpha"], "allow_fallbacks": False}
    plan, _ = farm.plan_chat("openrouter", None, None, body(model="b/two", provider=pin), 0)
    assert plan.status == 404
    error = json.loads(plan.body)["error"]
    assert error["message"] == "No allowed providers are available for the selected model."
    assert error["metadata"] == {"available_providers": ["beta"], "requested_providers": ["alpha"]}
    for name in ("ALPHA", "alpha", "Alpha"):
        pin = {"only": [name], "allow_fallbacks": False}
        _, record = farm.plan_chat("openrouter", None, None, body(model="a/one", provider=pin), 0)
        assert (record.provider, record.model, record.route) == ("Alpha", "a/one", "openrouter")
    chosen = {
        farm.plan_chat("openrouter", None, None, body(model="a/one"), 0)[1].provider
        for _ in range(30)
    }
    assert chosen == {"Alpha", "Beta"}


def test_farm_rate_limit_is_a_token_bucket_with_retry_after() -> None:
    farm = quirks_farm()  # "rate-limited": 0.5 requests/s, burst 1
    second = 1_000_000_000
    assert farm.plan_chat("direct", "rate-limited", None, body(), 0)[0].status == 200
    plan, record = farm.plan_chat("direct", "rate-limited", None, body(), second // 2)
    assert plan.status == 429
    assert ("Retry-After", "2") in plan.headers
    assert record.outcome is Outcome.RATE_LIMITED
    assert record.fault == "rate_limit"
    assert json.loads(plan.body)["error"]["type"] == "rate_limit_error"
    # the same bucket applies on the OpenRouter front, as an HTTP 429 before any stream
    pin = {"only": ["rate-limited"]}
    plan, _ = farm.plan_chat("openrouter", None, None, body(provider=pin), second)
    assert plan.status == 429
    assert ("Retry-After", "1") in plan.headers
    assert farm.plan_chat("direct", "rate-limited", None, body(), 2 * second)[0].status == 200


def test_token_bucket() -> None:
    bucket = TokenBucket(rate_per_s=2.0, capacity=3.0)
    assert [bucket.take(0.0) for _ in range(3)] == [None, None, None]
    assert bucket.take(0.0) == pytest.approx(0.5)
    assert bucket.take(0.5) is None
    assert bucket.take(0.5) == pytest.approx(0.5)


def test_farm_rejects_stream_options_only_on_the_direct_route() -> None:
    farm = quirks_farm()
    plan, record = farm.plan_chat("direct", "rejects-stream-options", None, body(), 0)
    assert plan.status == 400
    assert "stream_options" in json.loads(plan.body)["error"]["message"]
    assert record.fault == "stream_options"
    without = json.loads(body())
    del without["stream_options"]
    raw = json.dumps(without).encode()
    assert farm.plan_chat("direct", "rejects-stream-options", None, raw, 0)[0].status == 200
    pin = {"only": ["rejects-stream-options"]}
    assert farm.plan_chat("openrouter", None, None, body(provider=pin), 0)[0].status == 200


def test_openrouter_usage_include_asks_for_usage() -> None:
    farm = quirks_farm()
    raw = json.loads(body(usage={"include": True}, provider={"only": ["plain"]}))
    del raw["stream_options"]
    plan, _ = farm.plan_chat("openrouter", None, None, json.dumps(raw).encode(), 0)
    usage = last_usage(plan)
    assert usage is not None
    assert "cost" in usage


def test_farm_keeps_and_resets_the_truth() -> None:
    farm = quirks_farm(seed=3)
    first = [farm.plan_chat("direct", "plain", None, body(), 0)[1] for _ in range(3)]
    assert farm.truth == first
    assert [r.request_id for r in first] == ["sim-000001", "sim-000002", "sim-000003"]
    assert first[0].to_json()["outcome"] == "ok"
    json.dumps([r.to_json() for r in farm.truth])
    farm.reset(now_ns=5)
    assert farm.truth == []
    assert farm.start_ns == 5
    assert farm.plan_chat("direct", "plain", None, body(), 0)[1].request_id == "sim-000001"
    farm.max_truth = 10
    ids = [farm.plan_chat("direct", "plain", None, body(), 0)[1].request_id for _ in range(30)]
    assert 10 <= len(farm.truth) <= 11
    assert farm.truth[-1].request_id == ids[-1]


def test_farm_outages_follow_its_clock() -> None:
    farm = demo_farm(outage_start_s=20.0, outage_duration_s=15.0)
    farm.start_ns = 1_000_000_000
    faults = [
        farm.plan_chat("direct", "flaky", None, body(), farm.start_ns + s * 1_000_000_000)[1].fault
        for s in (19, 20, 34, 35)
    ]
    assert faults[1:3] == ["outage_http_503", "outage_http_503"]
    assert "outage_http_503" not in (faults[0], faults[3])


@pytest.mark.parametrize(
    "changes",
    [
        {"slug": "Not A Slug"},
        {"p_http_500": 0.7, "p_cut": 0.5},
        {"tokens_per_chunk": 0},
        {"tps": 0.0},
        {"outages": ((5.0, 5.0),)},
        {"usage_mode": "sometimes"},
        {"models": ()},
    ],
)
def test_profiles_are_validated(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="profile"):
        replace(profile("plain"), **changes)


def test_scenarios_are_consistent() -> None:
    demo = demo_farm()
    assert [p.name for p in demo.profiles] == [
        "Swiftly",
        "Swiftly Turbo",
        "Budget",
        "Flaky",
        "Throttled",
    ]
    assert {p.provider_label for p in demo.profiles} == {"Swiftly", "Budget", "Flaky", "Throttled"}
    assert demo.model_ids() == [DEMO_MODEL]
    quirks = quirks_farm()
    assert [p.name for p in quirks.profiles] == list(QUIRKS)
    with pytest.raises(ValueError, match="unique"):
        Farm(quirks.profiles + quirks.profiles[:1])


# --- catalogue JSON --------------------------------------------------------------------------


def test_endpoints_json_has_openrouters_shape() -> None:
    farm = demo_farm()
    found = endpoints_json(farm, DEMO_MODEL, now_ns=0)
    assert found is not None
    data = found["data"]
    assert {"id", "name", "created", "description", "architecture", "endpoints"} <= data.keys()
    assert data["id"] == DEMO_MODEL
    budget = next(e for e in data["endpoints"] if e["provider_name"] == "Budget")
    assert budget["name"] == f"Budget | {DEMO_MODEL}"
    assert budget["pricing"] == {
        "prompt": "0.0000004",
        "completion": "0.0000004",
        "request": "0",
        "image": "0",
    }
    assert budget["tag"] == "budget/int4"
    assert budget["quantization"] == "int4"
    assert budget["context_length"] == 32768
    assert budget["max_completion_tokens"] == 4096
    assert budget["status"] == 0
    assert budget["uptime_last_30m"] is None
    assert "max_tokens" in budget["supported_parameters"]
    assert endpoints_json(farm, "no/such", now_ns=0) is None


def test_endpoint_uptime_comes_from_the_truth() -> None:
    farm = quirks_farm()
    pin = {"only": ["http-500"]}
    farm.plan_chat("openrouter", None, None, body(provider=pin), 0)
    farm.plan_chat("openrouter", None, None, body(provider={"only": ["http-429"]}), 0)
    found = endpoints_json(farm, DEMO_MODEL, now_ns=1)
    assert found is not None
    uptime = {e["provider_name"]: e["uptime_last_30m"] for e in found["data"]["endpoints"]}
    assert uptime["http-500"] == 0.0
    assert uptime["plain"] is None


def test_models_lists() -> None:
    farm = demo_farm()
    listed = models_json(farm)["data"]
    assert [m["id"] for m in listed] == [DEMO_MODEL]
    assert listed[0]["pricing"]["prompt"] == "0.0000004"  # the cheapest provider
    swiftly = farm.profile("swiftly")
    assert swiftly is not None
    assert direct_models_json(farm, swiftly)["data"][0]["id"] == "wizardlm-2-8x22b-instruct"
