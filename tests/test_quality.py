"""Quality probes: request bodies of tool_call/structured workloads, tool-call deltas reassembled
from the stream, and the verdict of `monitor.probing.quality` for each way an answer can break."""

from __future__ import annotations

import json
from typing import Any

import pytest

from monitor.config import Target, Workload
from monitor.probing.chunks import Chunk, read_event
from monitor.probing.prompts import build_body
from monitor.probing.quality import MAX_KEPT_CHARS, Capture, Quality, classify
from monitor.probing.sse import SSEEvent
from monitor.probing.tools import STRUCTURED_SCHEMA, TOOL_SCHEMAS


def direct_target() -> Target:
    return Target("m", "Alpha", "direct", "http://127.0.0.1:1/v1", "m")


def openrouter_target() -> Target:
    return Target(
        "m", "Alpha", "openrouter", "http://127.0.0.1:1/api/v1", "m", endpoint="alpha/fp8"
    )


def chunk(**delta: Any) -> Chunk:
    obj = {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
    c = read_event(SSEEvent(json.dumps(obj)))
    assert isinstance(c, Chunk)
    return c


def calls_stream(name: str, arguments: str, *, pieces: int = 3, index: int = 0) -> list[Chunk]:
    """A tool call as providers stream it: id and name first, the arguments in fragments."""
    first = chunk(
        tool_calls=[
            {"index": index, "id": "call_1", "type": "function", "function": {"name": name}}
        ]
    )
    step = max(1, len(arguments) // pieces)
    frags = [arguments[i : i + step] for i in range(0, len(arguments), step)]
    rest = [chunk(tool_calls=[{"index": index, "function": {"arguments": f}}]) for f in frags]
    return [first, *rest]


def verdict(kind: str, chunks: list[Chunk]) -> Quality:
    cap = Capture()
    for c in chunks:
        cap.add(c)
    return classify(kind, cap)


GOOD_ARGS = '{"city": "Lisbon", "unit": "celsius"}'
GOOD_CITY = '{"city": "Lisbon", "country": "Portugal", "population": 545000, "coastal": true}'


def test_tool_call_body_carries_the_tools_and_tool_choice() -> None:
    w = Workload(name="tools", input_tokens=60, max_tokens=200, kind="tool_call")
    body = build_body(direct_target(), w, "n0nce", stream_options=True)
    names = [t["function"]["name"] for t in body["tools"]]
    assert names == list(TOOL_SCHEMAS)
    assert body["tools"][0]["function"]["parameters"] == TOOL_SCHEMAS["get_weather"]
    assert body["tool_choice"] == "required"
    assert "get_weather" in body["messages"][0]["content"]
    assert "n0nce" in body["messages"][0]["content"]
    assert "response_format" not in body
    auto = w.model_copy(update={"tool_choice": "auto"})
    assert build_body(direct_target(), auto, "x", stream_options=False)["tool_choice"] == "auto"


def test_structured_body_carries_a_strict_json_schema() -> None:
    w = Workload(name="json", input_tokens=60, max_tokens=200, kind="structured")
    body = build_body(openrouter_target(), w, "n0nce", stream_options=False)
    rf = body["response_format"]
    assert rf["type"] == "json_schema"
    assert rf["json_schema"]["strict"] is True
    assert rf["json_schema"]["schema"] == STRUCTURED_SCHEMA
    assert rf["json_schema"]["name"]
    assert "tools" not in body
    assert body["provider"]["only"]  # the pin is still there


def test_plain_body_has_neither() -> None:
    body = build_body(
        direct_target(), Workload(input_tokens=10, max_tokens=5), "x", stream_options=False
    )
    assert "tools" not in body and "response_format" not in body


def test_workload_kind_is_validated() -> None:
    with pytest.raises(ValueError, match="kind"):
        Workload(input_tokens=10, max_tokens=5, kind="vision")  # type: ignore[arg-type]
    assert not Workload(input_tokens=1, max_tokens=1).quality
    assert Workload(input_tokens=1, max_tokens=1, kind="structured").quality


def test_fragmented_tool_call_is_reassembled() -> None:
    cap = Capture()
    for c in calls_stream("get_weather", GOOD_ARGS, pieces=7):
        assert c.has_token
        cap.add(c)
    assert cap.tool_calls() == [("get_weather", GOOD_ARGS)]
    assert classify("tool_call", cap) is Quality.OK


def test_two_calls_interleaved_by_index() -> None:
    a = calls_stream("get_weather", GOOD_ARGS, index=0)
    b = calls_stream("get_time", '{"timezone": "Europe/Lisbon"}', index=1)
    mixed = [x for pair in zip(a, b, strict=False) for x in pair] + a[len(b) :] + b[len(a) :]
    cap = Capture()
    for c in mixed:
        cap.add(c)
    assert cap.tool_calls() == [
        ("get_weather", GOOD_ARGS),
        ("get_time", '{"timezone": "Europe/Lisbon"}'),
    ]
    assert classify("tool_call", cap) is Quality.OK


@pytest.mark.parametrize(
    ("name", "arguments", "expected"),
    [
        ("get_weather", GOOD_ARGS, Quality.OK),
        ("get_weather", '{"city": "Lisbon", "unit": "celsius"', Quality.INVALID_JSON),
        ("get_weather", "", Quality.INVALID_JSON),
        ("get_weather", "city=Lisbon", Quality.INVALID_JSON),
        ("get_wether", GOOD_ARGS, Quality.UNKNOWN_TOOL),
        ("get_weather", '{"city": "Lisbon", "unit": "kelvin"}', Quality.SCHEMA_MISMATCH),
        ("get_weather", '{"city": "Lisbon"}', Quality.SCHEMA_MISMATCH),
        ("get_weather", '{"city": 7, "unit": "celsius"}', Quality.SCHEMA_MISMATCH),
        ("get_weather", '["Lisbon", "celsius"]', Quality.SCHEMA_MISMATCH),
        ("get_weather", "[" * 100_000 + "]" * 100_000, Quality.INVALID_JSON),  # over the cap
    ],
)
def test_tool_call_verdicts(name: str, arguments: str, expected: Quality) -> None:
    assert verdict("tool_call", calls_stream(name, arguments)) is expected


def test_no_tool_call_when_the_model_only_talks() -> None:
    assert verdict("tool_call", [chunk(content="It is sunny in Lisbon.")]) is Quality.NO_TOOL_CALL
    assert verdict("tool_call", []) is Quality.NO_TOOL_CALL


def test_arguments_sent_as_an_object_are_accepted() -> None:
    c = chunk(
        tool_calls=[
            {"index": 0, "function": {"name": "get_weather", "arguments": json.loads(GOOD_ARGS)}}
        ]
    )
    assert verdict("tool_call", [c]) is Quality.OK


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD_CITY, Quality.OK),
        ("  \n", Quality.NO_STRUCTURED_OUTPUT),
        ("", Quality.NO_STRUCTURED_OUTPUT),
        ("```json\n" + GOOD_CITY + "\n```", Quality.INVALID_JSON),
        (GOOD_CITY[:-5], Quality.INVALID_JSON),
        (
            '{"city": "Lisbon", "country": "Portugal", "population": "545k", "coastal": true}',
            Quality.SCHEMA_MISMATCH,
        ),
        (GOOD_CITY[:-1] + ', "mayor": "x"}', Quality.SCHEMA_MISMATCH),
        ("[" * 30_000 + "]" * 30_000, Quality.INVALID_JSON),  # nested past the recursion limit
    ],
)
def test_structured_verdicts(text: str, expected: Quality) -> None:
    pieces = [chunk(content=text[i : i + 9]) for i in range(0, len(text), 9)] if text else []
    assert verdict("structured", pieces) is expected


def test_kept_text_is_bounded() -> None:
    cap = Capture()
    piece = chunk(content="x" * 1000)
    for _ in range(2 * MAX_KEPT_CHARS // 1000):
        cap.add(piece)
    assert cap.overflow
    assert len(cap.answer) <= MAX_KEPT_CHARS
    assert classify("structured", cap) is Quality.INVALID_JSON


def test_too_many_calls_overflow() -> None:
    cap = Capture()
    for i in range(100):
        for c in calls_stream("get_time", '{"timezone": "UTC"}', index=i):
            cap.add(c)
    assert len(cap.calls) <= 16
    assert cap.overflow
    assert classify("tool_call", cap) is Quality.INVALID_JSON


def test_classify_refuses_a_plain_kind() -> None:
    with pytest.raises(ValueError, match="plain"):
        classify("plain", Capture())


def test_status_quality_error_shares() -> None:
    from datetime import UTC, datetime, timedelta

    from monitor.aggregate import Accounting
    from monitor.config.sections import FAILURE_OUTCOMES
    from monitor.results import Outcome
    from monitor.rollup import fold
    from monitor.status import target_status
    from tests.factories import result

    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    rows = [  # (minutes ago, workload, outcome, quality)
        (1, "tools", Outcome.OK, "ok"),
        (2, "tools", Outcome.OK, "unknown_tool"),
        (3, "tools", Outcome.OK, "ok"),
        (4, "tools", Outcome.OK, "invalid_json"),
        (4, "tools", Outcome.TIMEOUT, None),  # not ok: not in the share
        (2, "json", Outcome.OK, "schema_mismatch"),
        (20, "json", Outcome.OK, "ok"),
        (3, "short", Outcome.OK, None),
    ]
    recent = [
        result(started_at=now - timedelta(minutes=m), workload=w, outcome=o, quality=q)
        for m, w, o, q in rows
    ]
    kinds = {"tools": "tool_call", "json": "structured", "short": "plain"}
    acct = Accounting(frozenset(o.value for o in FAILURE_OUTCOMES))
    key = ("acme/model-1", "Alpha", "direct")
    (s,) = target_status([key], recent, fold(recent), {}, now, acct, kinds)
    assert s.windows["5m"].tool_call_error_pct == pytest.approx(50.0)
    assert s.windows["5m"].structured_error_pct == pytest.approx(100.0)
    assert s.windows["30m"].structured_error_pct == pytest.approx(50.0)
    assert s.windows["1d"].tool_call_error_pct == pytest.approx(50.0)  # from the rollups
    assert s.windows["1d"].structured_error_pct == pytest.approx(50.0)
    # quality failures do not lower uptime: 7 ok, 1 timeout
    assert s.windows["30m"].uptime_pct == pytest.approx(100 * 7 / 8)
    (bare,) = target_status([key], recent, fold(recent), {}, now, acct)  # no kinds known
    assert bare.windows["5m"].tool_call_error_pct is None
