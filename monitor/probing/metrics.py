"""Probe metric math: a meter fed timed chunks, and the DESIGN.md section 2 numbers it yields.

Pure: times are `perf_counter_ns` stamps taken by the transport when the bytes arrived; nothing
here reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from monitor.config import Prices
from monitor.probing.chunks import Chunk, StreamError, Usage
from monitor.probing.tokens import TokenCounter
from monitor.results import TokenSource

NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000
BUFFERED_MIN_TOKENS = 10
BUFFERED_TTFT_SHARE = 0.9


@dataclass(slots=True)
class StreamMeter:
    """Accumulates what one stream delivered; `add` takes each chunk with its arrival stamp."""

    t0_ns: int
    first_token_ns: int | None = None
    first_answer_ns: int | None = None
    last_token_ns: int | None = None
    last_data_ns: int | None = None
    chunks: int = 0
    content_parts: list[str] = field(default_factory=list)
    reasoning_parts: list[str] = field(default_factory=list)
    usage: Usage | None = None
    finish_reason: str | None = None
    error: StreamError | None = None
    provider: str | None = None

    def add(self, t_ns: int, chunk: Chunk) -> None:
        self.last_data_ns = t_ns
        if chunk.has_token:
            self.chunks += 1
            if self.first_token_ns is None:
                self.first_token_ns = t_ns
            self.last_token_ns = t_ns
            if chunk.content:
                self.content_parts.append(chunk.content)
                if self.first_answer_ns is None:
                    self.first_answer_ns = t_ns
            if chunk.reasoning:
                self.reasoning_parts.append(chunk.reasoning)
        if chunk.usage is not None:
            # Some providers repeat usage on every chunk with running totals: keep the last.
            self.usage = chunk.usage
        if chunk.finish_reason is not None:
            self.finish_reason = chunk.finish_reason
        if chunk.error is not None and self.error is None:
            self.error = chunk.error
        if chunk.provider:
            self.provider = chunk.provider

    @property
    def text(self) -> str:
        return "".join(self.reasoning_parts) + "".join(self.content_parts)


@dataclass(frozen=True, slots=True)
class Measurements:
    """The numbers of DESIGN.md section 2 for one stream."""

    ttft_ms: float | None
    ttfa_ms: float | None
    latency_ms: float | None
    output_tokens: int
    input_tokens: int | None
    token_source: TokenSource
    decode_tps: float | None
    e2e_tps: float | None
    chunks: int
    buffered: bool
    cost_usd: float | None


def _ms(start_ns: int, end_ns: int | None) -> float | None:
    return None if end_ns is None else (end_ns - start_ns) / NS_PER_MS


def output_token_count(meter: StreamMeter, counter: TokenCounter) -> tuple[int, TokenSource]:
    """`usage.completion_tokens` when reported, else counted from the text received."""
    usage = meter.usage
    counted = counter.count(meter.text)
    reported = usage.completion_tokens if usage is not None else None
    if reported is not None and (reported > 0 or counted == 0):
        return reported, TokenSource.USAGE
    # Each content-bearing chunk holds at least one token.
    return max(counted, meter.chunks), counter.source


def decode_tps(output_tokens: int, first_ns: int | None, last_ns: int | None) -> float | None:
    """Tokens per second after the first token; None below 2 tokens or when all came at once."""
    if output_tokens < 2 or first_ns is None or last_ns is None or last_ns <= first_ns:
        return None
    return (output_tokens - 1) * NS_PER_S / (last_ns - first_ns)


def is_buffered(output_tokens: int, ttft_ms: float | None, latency_ms: float | None) -> bool:
    """The stream was not really streamed: ≥ 10 tokens and TTFT ≥ 90 % of the latency."""
    if output_tokens < BUFFERED_MIN_TOKENS or ttft_ms is None or not latency_ms:
        return False
    return ttft_ms >= BUFFERED_TTFT_SHARE * latency_ms


def measure(
    meter: StreamMeter,
    end_ns: int | None,
    *,
    counter: TokenCounter,
    prompt_tokens_estimate: int | None,
    prices: Prices | None,
) -> Measurements:
    """Turn a finished (or cut) stream into metrics; `end_ns` is None when it never ended."""
    output_tokens, source = output_token_count(meter, counter)
    input_tokens = prompt_tokens_estimate
    if meter.usage is not None and meter.usage.prompt_tokens is not None:
        input_tokens = meter.usage.prompt_tokens
    ttft_ms = _ms(meter.t0_ns, meter.first_token_ns)
    latency_ms = _ms(meter.t0_ns, end_ns)
    e2e = None
    if latency_ms and output_tokens:
        e2e = output_tokens * 1000.0 / latency_ms
    cost: float | None = None
    if meter.usage is not None and meter.usage.cost_usd is not None:
        cost = meter.usage.cost_usd
    elif prices is not None:
        cost = prices.cost_usd(input_tokens, output_tokens)
    buffered = is_buffered(output_tokens, ttft_ms, latency_ms)
    decode = decode_tps(output_tokens, meter.first_token_ns, meter.last_token_ns)
    return Measurements(
        ttft_ms=ttft_ms,
        ttfa_ms=_ms(meter.t0_ns, meter.first_answer_ns),
        latency_ms=latency_ms,
        output_tokens=output_tokens,
        input_tokens=input_tokens,
        token_source=source,
        # Tokens that arrived all at once (even split over two reads) have no decode speed.
        decode_tps=None if buffered else decode,
        e2e_tps=e2e,
        chunks=meter.chunks,
        buffered=buffered,
        cost_usd=cost,
    )
