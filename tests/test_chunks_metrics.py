"""Chunk reading, the stream meter and the metric formulas of DESIGN.md section 2."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.probing.chunks import DONE, Chunk, Malformed, StreamError, Usage, read_event
from monitor.probing.classify import Ending, classify_status, classify_stream, parse_retry_after
from monitor.probing.metrics import Prices, StreamMeter, decode_tps, is_buffered, measure
from monitor.probing.sse import SSEEvent
from monitor.probing.tokens import TokenCounter, TokenTally, estimate_tokens
from monitor.results import Outcome, TokenSource

MS = 1_000_000


def ev(obj: object) -> SSEEvent:
    return SSEEvent(json.dumps(obj))


def delta(**d: object) -> dict[str, object]:
    return {"choices": [{"index": 0, "delta": d, "finish_reason": None}]}


@pytest.mark.parametrize(
    ("obj", "has_token"),
    [
        (delta(role="assistant"), False),
        (delta(role="assistant", content=""), False),
        (delta(content="Hi"), True),
        (delta(reasoning="think"), True),
        (delta(reasoning_content="think"), True),
        (delta(tool_calls=[{"index": 0, "function": {"name": "f"}}]), True),
        (delta(tool_calls=[]), False),
        ({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 5}}, False),
        ({"choices": None}, False),
    ],
)
def test_what_counts_as_a_token(obj: object, has_token: bool) -> None:
    chunk = read_event(ev(obj))
    assert isinstance(chunk, Chunk)
    assert chunk.has_token is has_token


def test_done_malformed_and_non_object() -> None:
    assert read_event(SSEEvent("[DONE]")) is DONE
    bad = read_event(SSEEvent('{"choices": [}'))
    assert isinstance(bad, Malformed)
    assert bad.excerpt == '{"choices": [}'
    assert isinstance(read_event(SSEEvent("[1, 2]")), Malformed)


def test_usage_cost_error_and_provider_are_read() -> None:
    chunk = read_event(
        ev(
            {
                "provider": "DeepInfra",
                "error": {"code": 502, "message": "upstream died"},
                "choices": [{"delta": {"content": ""}, "finish_reason": "error"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 4, "cost": 0.00012},
            }
        )
    )
    assert isinstance(chunk, Chunk)
    assert chunk.error == StreamError(502, "upstream died")
    assert chunk.finish_reason == "error"
    assert chunk.usage == Usage(10, 4, 0.00012)
    assert chunk.provider == "DeepInfra"


def feed(meter: StreamMeter, t_ms: float, obj: object) -> None:
    chunk = read_event(ev(obj))
    assert isinstance(chunk, Chunk)
    meter.add(int(t_ms * MS), chunk)


def test_meter_timings_reasoning_then_answer() -> None:
    m = StreamMeter(t0_ns=0)
    feed(m, 50, delta(role="assistant", content=""))  # role-only: not a token
    feed(m, 100, delta(reasoning="hmm"))  # first token
    feed(m, 150, delta(reasoning=" ok"))
    feed(m, 300, delta(content="Yes"))  # first answer
    feed(m, 400, delta(content="!"))  # last token
    feed(m, 410, {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 9}})
    r = measure(m, 500 * MS, prompt_tokens=5, prices=None)
    assert r.ttft_ms == 100
    assert r.ttfa_ms == 300
    assert r.latency_ms == 500
    assert r.output_tokens == 9
    assert r.token_source is TokenSource.USAGE
    assert r.input_tokens == 7
    assert r.decode_tps == pytest.approx(8 / 0.3)
    assert r.e2e_tps == pytest.approx(9 / 0.5)
    assert r.chunks == 4
    assert r.buffered is False
    assert r.cost_usd is None


def test_usage_on_every_chunk_is_never_summed() -> None:
    m = StreamMeter(t0_ns=0)
    for i in range(1, 6):
        feed(m, 10 * i, {**delta(content="ab"), "usage": {"completion_tokens": i}})
    r = measure(m, 60 * MS, prompt_tokens=None, prices=None)
    assert r.output_tokens == 5


def test_without_usage_tokens_are_estimated_from_text() -> None:
    m = StreamMeter(t0_ns=0)
    feed(m, 10, delta(content="a" * 40))
    feed(m, 20, delta(content="b" * 40))
    r = measure(m, 30 * MS, prompt_tokens=12, prices=None)
    assert r.token_source is TokenSource.ESTIMATE
    assert r.output_tokens == estimate_tokens("a" * 40 + "b" * 40) == 20
    assert r.input_tokens == 12


def test_tokenizer_counter_is_used_when_given() -> None:
    counter = TokenCounter(lambda text: len(text.split()))
    m = StreamMeter(t0_ns=0, tally=TokenTally(counter))
    feed(m, 10, delta(content="one two three"))
    r = measure(m, 20 * MS, prompt_tokens=None, prices=None)
    assert (r.output_tokens, r.token_source) == (3, TokenSource.TOKENIZER)


def test_buffered_stream_has_no_decode_speed() -> None:
    m = StreamMeter(t0_ns=0)
    for _ in range(12):
        feed(m, 950, delta(content="tok "))  # all in one read
    feed(m, 950, {"choices": [], "usage": {"completion_tokens": 12}})
    r = measure(m, 1000 * MS, prompt_tokens=None, prices=None)
    assert r.decode_tps is None
    assert r.buffered is True
    assert r.e2e_tps == pytest.approx(12.0)


def test_cost_from_usage_wins_over_prices_and_prices_apply_otherwise() -> None:
    prices = Prices(input_per_mtok=1.0, output_per_mtok=3.0)
    m = StreamMeter(t0_ns=0)
    feed(m, 10, {**delta(content="x"), "usage": {"prompt_tokens": 1000, "completion_tokens": 100}})
    r = measure(m, 20 * MS, prompt_tokens=None, prices=prices)
    assert r.cost_usd == pytest.approx((1000 * 1.0 + 100 * 3.0) / 1e6)
    feed(m, 15, {"choices": [], "usage": {"completion_tokens": 100, "cost": 0.005}})
    r = measure(m, 20 * MS, prompt_tokens=None, prices=prices)
    assert r.cost_usd == 0.005


@pytest.mark.parametrize(
    ("tokens", "first", "last", "expected"),
    [(1, 0, 0, None), (2, 0, 0, None), (2, None, 5, None), (11, 0, 1_000_000_000, 10.0)],
)
def test_decode_tps_edges(
    tokens: int, first: int | None, last: int | None, expected: float | None
) -> None:
    assert decode_tps(tokens, first, last) == expected


def test_buffered_threshold() -> None:
    assert is_buffered(10, 900.0, 1000.0) is True
    assert is_buffered(9, 999.0, 1000.0) is False
    assert is_buffered(10, 899.0, 1000.0) is False


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (429, Outcome.RATE_LIMITED),
        (400, Outcome.CLIENT_ERROR),
        (401, Outcome.CLIENT_ERROR),
        (402, Outcome.CLIENT_ERROR),
        (404, Outcome.CLIENT_ERROR),
        (408, Outcome.SERVER_ERROR),
        (500, Outcome.SERVER_ERROR),
        (503, Outcome.SERVER_ERROR),
        (302, Outcome.CLIENT_ERROR),
        (307, Outcome.CLIENT_ERROR),
    ],
)
def test_http_status_outcomes(status: int, outcome: Outcome) -> None:
    assert classify_status(status) == (outcome, f"http.{status}")


def meter_with(**chunk: object) -> StreamMeter:
    m = StreamMeter(t0_ns=0)
    feed(m, 1, chunk)
    return m


@pytest.mark.parametrize(
    ("meter", "ending", "tokens", "expected"),
    [
        (meter_with(**delta(content="x")), Ending.DONE, 1, (Outcome.OK, None)),
        (
            meter_with(choices=[{"delta": {"content": "x"}, "finish_reason": "stop"}]),
            Ending.EOF,
            1,
            (Outcome.OK, None),
        ),
        (
            meter_with(**delta(content="x")),
            Ending.EOF,
            1,
            (Outcome.STREAM_ERROR, "stream.truncated"),
        ),
        (meter_with(**delta(content="x")), Ending.CUT, 1, (Outcome.STREAM_ERROR, "stream.cut")),
        (
            meter_with(**delta(content="x")),
            Ending.MALFORMED,
            1,
            (Outcome.STREAM_ERROR, "stream.malformed_json"),
        ),
        (meter_with(**delta(role="assistant")), Ending.DONE, 0, (Outcome.EMPTY_RESPONSE, "empty")),
        (
            meter_with(error={"code": 502, "message": "x"}),
            Ending.DONE,
            0,
            (Outcome.STREAM_ERROR, "stream.error"),
        ),
        (
            meter_with(error={"code": 429, "message": "slow down"}),
            Ending.DONE,
            0,
            (Outcome.RATE_LIMITED, "stream.rate_limited"),
        ),
        (
            meter_with(choices=[{"delta": {"content": "x"}, "finish_reason": "error"}]),
            Ending.DONE,
            1,
            (Outcome.STREAM_ERROR, "stream.finish_error"),
        ),
        (StreamMeter(t0_ns=0), Ending.NOT_SSE, 0, (Outcome.STREAM_ERROR, "stream.not_sse")),
    ],
)
def test_stream_outcomes(
    meter: StreamMeter, ending: Ending, tokens: int, expected: tuple[Outcome, str | None]
) -> None:
    assert classify_stream(meter, ending, tokens) == expected


def test_retry_after_seconds_and_http_date() -> None:
    now = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after("1.5", now) == 1.5
    later = (now + timedelta(seconds=30)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert parse_retry_after(later, now) == 30.0
    for bad in (None, "", "soon", "-3", "nan", "inf"):
        assert parse_retry_after(bad, now) is None


def test_outcome_uptime_accounting() -> None:
    counted = {o for o in Outcome if o.counts_against_uptime}
    excluded = {o for o in Outcome if o.excluded_from_uptime}
    assert Outcome.OK not in counted | excluded
    assert excluded == {Outcome.RATE_LIMITED, Outcome.CLIENT_ERROR, Outcome.MONITOR_ERROR}
    assert counted & excluded == set()
    assert len(counted) + len(excluded) + 1 == len(Outcome)


def test_buffered_stream_split_over_two_reads_still_has_no_decode_speed() -> None:
    m = StreamMeter(t0_ns=0)
    for i in range(300):
        feed(m, 2000 if i < 150 else 2000.05, delta(content="tok "))
    feed(m, 2000.05, {"choices": [], "usage": {"completion_tokens": 300}})
    r = measure(m, 2001 * MS, prompt_tokens=None, prices=None)
    assert r.buffered is True
    assert r.decode_tps is None


def _cut_point_by_full_scan(text: str, limit: int, start: int = 0) -> int:
    """cut_point's definition: the last match of the safe-cut pattern in the whole window."""
    from monitor.probing.tokens import _CUT, CUT_WINDOW, FORCED_CUT_CHARS

    last = None
    for m in _CUT.finditer(text, max(start + 1, limit - CUT_WINDOW), limit):
        last = m.start()
    return last if last else min(limit, start + FORCED_CUT_CHARS)


@given(
    st.lists(st.sampled_from(["a", "Z", " ", "\n", "1", "_", "é", "\t", "x" * 40, " " * 70])).map(
        "".join
    ),
    st.integers(0, 2000),
    st.integers(0, 2000),
)
def test_cut_point_looking_near_first_finds_the_last_safe_place(
    text: str, limit: int, start: int
) -> None:
    from monitor.probing.tokens import cut_point

    limit = min(limit, len(text) + 2)
    start = min(start, limit)
    assert cut_point(text, limit, start) == _cut_point_by_full_scan(text, limit, start)
