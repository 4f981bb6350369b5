"""The pure bounds of the probe path: incremental token counts, bounded decoding, the SSE line
cap, redaction of secrets and control characters, connection phase arithmetic."""

from __future__ import annotations

import json
import random
import zlib
from pathlib import Path

import pytest

from monitor.probing.body import BodyDecoder, EncodingError, RateBucket
from monitor.probing.chunks import Chunk, read_event
from monitor.probing.metrics import StreamMeter, measure
from monitor.probing.phases import Phases
from monitor.probing.sse import SSEError, SSEEvent, SSEParser
from monitor.probing.tokens import (
    ESTIMATE,
    TokenCounter,
    TokenTally,
    counter_from_file,
    default_counter,
    estimate_tokens,
)
from monitor.redact import escape_controls, redact, short_message
from monitor.results import TokenSource

README = Path(__file__).resolve().parent.parent / "README.md"


def test_default_counter_is_tiktoken_cl100k_offline() -> None:
    counter = default_counter()
    assert counter.name == "cl100k_base"
    assert counter.source is TokenSource.TOKENIZER
    assert counter.count("Hello, world!") == 4  # cl100k: "Hello", ",", " world", "!"


@pytest.mark.parametrize("keep", [1024, 64 * 1024])
def test_tally_fed_in_random_pieces_counts_exactly_what_the_whole_text_counts(keep: int) -> None:
    counter = default_counter()
    text = README.read_text(encoding="utf-8") * 3
    tally = TokenTally(counter, segment_chars=1024, keep_chars=keep)
    rng = random.Random(5)
    i = 0
    while i < len(text):
        n = rng.randint(1, 700)
        tally.feed(text[i : i + n])
        i += n
        tally.step(1024)
        assert tally.pending_chars <= keep + 700 + 1024  # never the whole text
    while tally.step(1024, keep=0):
        pass
    assert tally.chars == len(text)
    assert tally.total() == counter.count(text)


def test_tally_with_the_estimate_keeps_no_text() -> None:
    tally = TokenTally(ESTIMATE)
    for _ in range(1000):
        tally.feed("abcd")
    assert tally.pending_chars == 0
    assert tally.total() == estimate_tokens("abcd" * 1000) == 1000
    assert tally.source is TokenSource.ESTIMATE


def test_tally_out_of_time_estimates_the_rest() -> None:
    tally = TokenTally(default_counter(), segment_chars=1024, keep_chars=1024)
    tally.feed("word " * 2000)
    tally.give_up()
    assert tally.source is TokenSource.ESTIMATE
    assert tally.total() == estimate_tokens("word " * 2000)


def test_hf_tokenizer_json_is_loaded(tmp_path: Path) -> None:
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import models, pre_tokenizers, trainers

    tok = tokenizers.Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(
        [README.read_text(encoding="utf-8")], trainers.BpeTrainer(vocab_size=300)
    )
    path = tmp_path / "tokenizer.json"
    tok.save(str(path))
    counter = counter_from_file(path)
    text = "A probe measures what the provider sends."
    assert counter.count(text) == len(tok.encode(text).ids)
    assert counter.source is TokenSource.TOKENIZER
    with pytest.raises(ValueError, match="cannot load"):
        counter_from_file(tmp_path / "missing.json")


def test_usage_is_read_but_absurd_values_are_not() -> None:
    big = read_event(SSEEvent('{"usage": {"completion_tokens": 1e400, "cost": 1e999}}'))
    assert isinstance(big, Chunk)
    assert big.usage is not None
    assert (big.usage.completion_tokens, big.usage.cost_usd) == (None, None)
    huge_int = read_event(SSEEvent('{"usage": {"completion_tokens": ' + "9" * 400 + "}}"))
    assert isinstance(huge_int, Chunk)
    assert huge_int.usage is not None
    assert huge_int.usage.completion_tokens is None


def test_implausible_usage_is_replaced_by_the_count_and_flagged() -> None:
    meter = StreamMeter(0, TokenTally(TokenCounter(lambda t: len(t.split()))))
    for i in range(3):
        c = read_event(SSEEvent(json.dumps({"choices": [{"delta": {"content": f" w{i}"}}]})))
        assert isinstance(c, Chunk)
        meter.add((i + 1) * 1_000_000, c)
    usage = {"usage": {"prompt_tokens": 10, "completion_tokens": 2**31 - 1, "cost": 1e300}}
    c = read_event(SSEEvent(json.dumps(usage)))
    assert isinstance(c, Chunk)
    meter.add(4_000_000, c)
    m = measure(meter, 5_000_000, prompt_tokens=12, prices=None, max_tokens=20)
    assert (m.output_tokens, m.token_source) == (3, TokenSource.TOKENIZER)
    assert m.input_tokens == 12
    assert m.cost_usd is None
    assert m.flags == ("usage_implausible",)
    assert m.itl_p50_ms == pytest.approx(1.0)
    assert m.max_gap_ms == pytest.approx(1.0)


def test_gzip_is_undone_in_bounded_steps() -> None:
    raw = b"data: x\n\n" * 200_000
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    decoder = BodyDecoder("gzip")
    decoder.push(z.compress(raw) + z.flush())
    out = bytearray()
    while True:
        piece = decoder.pull(4096)
        if not piece:
            break
        assert len(piece) <= 4096
        out += piece
    assert bytes(out) == raw
    assert BodyDecoder(None).identity
    with pytest.raises(EncodingError, match="unsupported"):
        BodyDecoder("br")
    bad = BodyDecoder("gzip")
    bad.push(b"not gzip at all")
    with pytest.raises(EncodingError):
        bad.pull(4096)


def test_a_long_line_in_many_reads_is_cut_at_the_cap() -> None:
    parser = SSEParser(max_line_bytes=64 * 1024)
    items = []
    for _ in range(100):
        items += parser.feed(b"x" * 1024)
    assert [type(i) for i in items] == [SSEError]
    items = parser.feed(b"yyy\n\ndata: ok\n\n")  # the rest of the long line is dropped
    assert items == [SSEEvent("ok")]


def test_secrets_cut_short_and_control_characters() -> None:
    key = "sk-live-abcdefghijklmnop"
    body = " " * 4085 + key
    cut = body[:4096]  # what a 4 KiB read keeps: the first 11 characters of the key
    assert key[:11] in cut
    message = short_message(cut, [key])
    assert key[:8] not in message
    assert "***" in message
    assert redact(f"token {key[:9]}", [key]) == "token ***"
    assert short_message("a\x1b[31mb\x00c\u009bd\te\nf") == "a[31mbcd e f"
    assert escape_controls("a\x1b[0m\tb\n") == "a\\x1b[0m\tb\n"


def test_phase_arithmetic() -> None:
    ms = 1_000_000
    p = Phases(
        start_ns=0,
        connect_start_ns=1 * ms,
        dns_start_ns=1 * ms,
        dns_end_ns=3 * ms,
        tls_start_ns=7 * ms,
        connect_end_ns=12 * ms,
        sent_ns=13 * ms,
        headers_ns=20 * ms,
    )
    assert (p.dns_ms, p.connect_ms, p.tls_ms, p.ttfb_ms, p.network_ms) == (2, 4, 5, 7, 9)
    plain = Phases(connect_start_ns=1 * ms, connect_end_ns=2 * ms)
    assert (plain.dns_ms, plain.connect_ms, plain.tls_ms) == (None, 1, None)


def test_rate_bucket_holds_back_only_beyond_the_burst() -> None:
    bucket = RateBucket(rate=1000.0, burst=500.0, now=0.0)
    assert bucket.take(400, 0.0) == 0.0  # within the burst
    assert bucket.take(200, 0.0) == pytest.approx(0.1)  # 100 bytes over at 1000/s
    assert bucket.take(0, 0.1) == 0.0  # refilled by then
    assert bucket.take(100, 10.0) == 0.0  # a long pause refills up to the burst only
    assert bucket.take(500, 10.0) == pytest.approx(0.1)
