"""Probe metric math: a meter fed timed chunks, and the DESIGN.md section 2 numbers it yields.

Pure: times are `perf_counter_ns` stamps taken by the transport when the bytes arrived; nothing
here reads a clock. The meter keeps counts, not text (a `TokenTally` counts the text as it
comes), so a stream's memory does not grow with its length beyond one number per event gap.
Provider-reported values are bounded here: usage far beyond what was asked for is replaced by
the count, and a cost that cannot be right is dropped; both are flagged.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass, field

import numpy as np

from monitor.config import Prices
from monitor.probing.chunks import Chunk, StreamError, Usage
from monitor.probing.quality import Capture
from monitor.probing.tokens import ESTIMATE, TokenTally
from monitor.results import TokenSource
from monitor.stats import percentile

NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000
BUFFERED_MIN_TOKENS = 10
BUFFERED_TTFT_SHARE = 0.9
USAGE_FACTOR = 10
USAGE_MARGIN = 1000
"""Reported tokens above USAGE_FACTOR × what is plausible + USAGE_MARGIN are not believed."""
COST_FACTOR = 100.0
COST_FLOOR_USD = 0.01
COST_UNPRICED_MAX_USD = 10.0
"""A reported cost above COST_FACTOR × the priced cost (at least COST_FLOOR_USD), or above
COST_UNPRICED_MAX_USD when no price is configured, is not believed."""

NUMPY_FROM = 2048
"""Gap percentiles of longer streams are computed with numpy (a plain sort is faster below)."""

USAGE_IMPLAUSIBLE = "usage_implausible"
COST_IMPLAUSIBLE = "cost_implausible"


@dataclass(slots=True)
class StreamMeter:
    """Accumulates what one stream delivered; `add` takes each chunk with its arrival stamp."""

    t0_ns: int
    tally: TokenTally = field(default_factory=lambda: TokenTally(ESTIMATE))
    first_token_ns: int | None = None
    first_answer_ns: int | None = None
    last_token_ns: int | None = None
    last_data_ns: int | None = None
    chunks: int = 0
    gaps_ns: array[int] = field(default_factory=lambda: array("q"))
    usage: Usage | None = None
    finish_reason: str | None = None
    error: StreamError | None = None
    provider: str | None = None
    capture: Capture | None = None  # a quality workload's answer, kept for `quality.classify`

    def add(self, t_ns: int, chunk: Chunk) -> None:
        self.last_data_ns = t_ns
        if self.capture is not None:
            self.capture.add(chunk)
        if chunk.has_token:
            self.chunks += 1
            if self.first_token_ns is None:
                self.first_token_ns = t_ns
            elif self.last_token_ns is not None:
                self.gaps_ns.append(t_ns - self.last_token_ns)
            self.last_token_ns = t_ns
            if chunk.reasoning:
                self.tally.feed(chunk.reasoning)
            for call in chunk.tool_calls:  # generated tokens too
                if call.arguments:
                    self.tally.feed(call.arguments)
            if chunk.content:
                self.tally.feed(chunk.content)
                if self.first_answer_ns is None:
                    self.first_answer_ns = t_ns
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
    def chars(self) -> int:
        return self.tally.chars


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
    itl_p50_ms: float | None = None
    itl_p99_ms: float | None = None
    max_gap_ms: float | None = None
    flags: tuple[str, ...] = ()


def _ms(start_ns: int, end_ns: int | None) -> float | None:
    return None if end_ns is None else (end_ns - start_ns) / NS_PER_MS


def plausible_tokens(reported: int | None, expected: int | None) -> bool:
    """False when a reported count is far beyond what could be (`expected`: the most there
    could be, e.g. max_tokens, or what provmon counted itself)."""
    if reported is None or expected is None:
        return True
    return reported <= USAGE_FACTOR * expected + USAGE_MARGIN


def usage_believed(meter: StreamMeter, max_tokens: int | None, prompt_tokens: int | None) -> bool:
    """False when a reported usage is far beyond what could be: completion tokens above
    `max_tokens` and the characters received, prompt tokens above provmon's own count."""
    usage = meter.usage
    if usage is None:
        return True
    ceiling = max(max_tokens, meter.chars) if max_tokens is not None else None
    return plausible_tokens(usage.completion_tokens, ceiling) and plausible_tokens(
        usage.prompt_tokens, prompt_tokens
    )


def needs_count(meter: StreamMeter, max_tokens: int | None, prompt_tokens: int | None) -> bool:
    """True when the output tokens must be counted from the text (no believable usage)."""
    usage = meter.usage
    if usage is None or not usage.completion_tokens:
        return True
    return not usage_believed(meter, max_tokens, prompt_tokens)


def output_token_count(
    meter: StreamMeter, max_tokens: int | None = None, prompt_tokens: int | None = None
) -> tuple[int, TokenSource, bool]:
    """`usage.completion_tokens` when reported and believable, else counted from the text
    received; the third value is True when a reported usage was not believed."""
    usage = meter.usage
    believed = usage_believed(meter, max_tokens, prompt_tokens)
    reported = usage.completion_tokens if usage is not None and believed else None
    if reported is not None and (reported > 0 or meter.chars == 0):
        return reported, TokenSource.USAGE, False
    counted = meter.tally.total()
    # Each content-bearing chunk holds at least one token.
    return max(counted, meter.chunks), meter.tally.source, not believed


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


def gap_stats(gaps_ns: array[int]) -> tuple[float | None, float | None, float | None]:
    """p50, p99 and max of the gaps between content-bearing events, in ms."""
    if not gaps_ns:
        return None, None, None
    if len(gaps_ns) < NUMPY_FROM:
        ordered = sorted(gaps_ns)
        p50_ns, p99_ns = percentile(ordered, 50), percentile(ordered, 99)
        return p50_ns / NS_PER_MS, p99_ns / NS_PER_MS, ordered[-1] / NS_PER_MS
    ms = np.frombuffer(gaps_ns, dtype=np.int64).astype(np.float64) / NS_PER_MS
    p50, p99 = np.percentile(ms, [50, 99])  # the same interpolation as stats.percentile
    return float(p50), float(p99), float(ms.max())


def bounded_cost(reported: float | None, priced: float | None) -> tuple[float | None, bool]:
    """The reported cost when believable, else the priced one; True when it was not believed.

    Negative or non-finite costs are dropped silently (a provider bug, not a claim).
    """
    if reported is None or not math.isfinite(reported) or reported < 0:
        return priced, False
    limit = COST_UNPRICED_MAX_USD if priced is None else max(COST_FACTOR * priced, COST_FLOOR_USD)
    if reported > limit:
        return None, True
    return reported, False


def measure(
    meter: StreamMeter,
    end_ns: int | None,
    *,
    prompt_tokens: int | None,
    prices: Prices | None,
    max_tokens: int | None = None,
) -> Measurements:
    """Turn a finished (or cut) stream into metrics; `end_ns` is None when it never ended.

    `prompt_tokens` is provmon's own count of the prompt; `max_tokens` what was asked for.
    """
    flags: set[str] = set()
    output_tokens, source, implausible = output_token_count(meter, max_tokens, prompt_tokens)
    input_tokens = prompt_tokens
    usage = meter.usage
    if usage is not None and usage.prompt_tokens is not None and not implausible:
        input_tokens = usage.prompt_tokens
    if implausible:
        flags.add(USAGE_IMPLAUSIBLE)
    ttft_ms = _ms(meter.t0_ns, meter.first_token_ns)
    latency_ms = _ms(meter.t0_ns, end_ns)
    e2e = None
    if latency_ms and output_tokens:
        e2e = output_tokens * 1000.0 / latency_ms
    priced = prices.cost_usd(input_tokens, output_tokens) if prices is not None else None
    reported = usage.cost_usd if usage is not None and not implausible else None
    cost, cost_flag = bounded_cost(reported, priced)
    if cost_flag:
        flags.add(COST_IMPLAUSIBLE)
    buffered = is_buffered(output_tokens, ttft_ms, latency_ms)
    decode = decode_tps(output_tokens, meter.first_token_ns, meter.last_token_ns)
    itl_p50, itl_p99, max_gap = gap_stats(meter.gaps_ns)
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
        itl_p50_ms=itl_p50,
        itl_p99_ms=itl_p99,
        max_gap_ms=max_gap,
        flags=tuple(sorted(flags)),
    )
