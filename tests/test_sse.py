"""The SSE parser: framing rules, and any split of a stream parses to the same items."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.probing.sse import SSEComment, SSEError, SSEEvent, SSEItem, SSEParser


def parse_all(parts: list[bytes]) -> list[SSEItem]:
    parser = SSEParser()
    out: list[SSEItem] = []
    for part in parts:
        out += parser.feed(part)
    out += parser.close()
    return out


def chunk_json(content: str) -> str:
    return json.dumps({"choices": [{"index": 0, "delta": {"content": content}}]})


def test_basic_events_comments_and_done() -> None:
    stream = (
        b": OPENROUTER PROCESSING\n\n"
        b"data: " + chunk_json("Hi").encode() + b"\n\n"
        b"data:" + chunk_json(" there").encode() + b"\n\n"
        b"data: [DONE]\n\n"
    )
    items = parse_all([stream])
    assert items == [
        SSEComment("OPENROUTER PROCESSING"),
        SSEEvent(chunk_json("Hi")),
        SSEEvent(chunk_json(" there")),
        SSEEvent("[DONE]"),
    ]


def test_crlf_cr_and_mixed_line_endings() -> None:
    for nl in (b"\r\n", b"\r", b"\n"):
        items = parse_all([b"data: a" + nl + nl + b"data: b" + nl + nl])
        assert items == [SSEEvent("a"), SSEEvent("b")], nl


def test_crlf_split_across_reads_is_one_line_end() -> None:
    # "\r" ends one read, "\n" starts the next: one line end, not an empty line in between.
    items = parse_all([b"data: a\r", b"\ndata: b\r\n\r\n"])
    assert items == [SSEEvent("a\nb")]


def test_event_and_id_fields_and_multiline_data() -> None:
    items = parse_all([b"event: error\nid: 7\ndata: line1\ndata: line2\nretry: 10\nfoo: x\n\n"])
    assert items == [SSEEvent("line1\nline2", event="error", id="7")]


def test_event_type_resets_after_dispatch() -> None:
    items = parse_all([b"event: ping\ndata: 1\n\ndata: 2\n\n"])
    assert items == [SSEEvent("1", event="ping"), SSEEvent("2")]


def test_only_one_leading_space_is_stripped() -> None:
    assert parse_all([b"data:  two\n\n"]) == [SSEEvent(" two")]


def test_empty_line_without_data_dispatches_nothing() -> None:
    assert parse_all([b"\n\n\nevent: x\n\n"]) == []


def test_unterminated_event_is_flushed_on_close() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: tail") == []
    assert parser.has_pending
    assert parser.close() == [SSEEvent("tail")]


def test_invalid_utf8_is_replaced_not_raised() -> None:
    items = parse_all([b"data: \xff\xfe\n\n"])
    assert items == [SSEEvent("\ufffd\ufffd")]


def test_overlong_line_is_an_error_value_and_parsing_resumes() -> None:
    parser = SSEParser(max_line_bytes=16)
    out = parser.feed(b"data: " + b"x" * 40)
    out += parser.feed(b"y" * 40)
    out += parser.feed(b"zz\n\ndata: ok\n\n")
    assert out == [SSEError("line longer than 16 bytes"), SSEEvent("ok")]


# A realistic stream with every framing feature, for the split property.
_FIELDS = st.sampled_from(["data", "event", "id", ":comment", "retry"])
_VALUE = st.text(
    alphabet=st.characters(blacklist_characters="\r\n\x00", blacklist_categories=("Cs",)),
    max_size=20,
)
_NL = st.sampled_from([b"\n", b"\r\n", b"\r"])


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    out = b""
    for _ in range(draw(st.integers(1, 8))):
        for _ in range(draw(st.integers(0, 4))):
            field = draw(_FIELDS)
            value = draw(_VALUE).encode()
            sep = draw(st.sampled_from([b": ", b":"]))
            nl = draw(_NL)
            if field.startswith(":"):
                out += b":" + value + nl
            else:
                out += field.encode() + sep + value + nl
        out += draw(_NL)
    return out


@given(streams(), st.lists(st.integers(0, 10_000), max_size=30))
@settings(max_examples=300, deadline=None)
def test_any_split_parses_to_the_same_items(stream: bytes, cuts: list[int]) -> None:
    whole = parse_all([stream])
    points = sorted({c % (len(stream) + 1) for c in cuts})
    parts = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    assert parse_all(parts) == whole


@given(streams())
@settings(max_examples=100, deadline=None)
def test_one_byte_at_a_time_parses_to_the_same_items(stream: bytes) -> None:
    assert parse_all([stream[i : i + 1] for i in range(len(stream))]) == parse_all([stream])


@given(st.lists(_VALUE, min_size=1, max_size=10), _NL)
@settings(max_examples=100, deadline=None)
def test_data_values_round_trip(values: list[str], nl: bytes) -> None:
    stream = b"".join(b"data: " + v.encode() + nl + nl for v in values)
    assert parse_all([stream]) == [SSEEvent(v) for v in values]
