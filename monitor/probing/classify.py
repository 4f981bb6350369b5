"""Maps what happened to a probe onto one outcome and a finer `error_kind` (DESIGN.md section 3)."""

from __future__ import annotations

import enum
import math
from datetime import datetime
from email.utils import parsedate_to_datetime

from monitor.probing.metrics import StreamMeter
from monitor.probing.openrouter_errors import stream_error_kind
from monitor.results import Outcome


class Ending(enum.Enum):
    """How the byte stream of a 200 response stopped."""

    DONE = "done"  # `data: [DONE]`
    EOF = "eof"  # the server closed the body cleanly
    CUT = "cut"  # the connection broke before the body ended
    MALFORMED = "malformed"  # an event that is not JSON, or an over-long line
    NOT_SSE = "not_sse"  # a 200 whose body is not an event stream
    TOO_LARGE = "too_large"  # more bytes than `[probe] max_stream_bytes`
    ENCODING = "encoding"  # a content-coding that is unknown or does not decode


def classify_status(status: int) -> tuple[Outcome, str]:
    """Outcome and error_kind of a non-200 HTTP response."""
    kind = f"http.{status}"
    if status == 429:
        return Outcome.RATE_LIMITED, kind
    if status == 408 or status >= 500:
        return Outcome.SERVER_ERROR, kind
    if 300 <= status < 500:
        # 4xx, and redirects, which probes never follow: the configured URL is not the API's.
        return Outcome.CLIENT_ERROR, kind
    return Outcome.SERVER_ERROR, kind  # 1xx or other oddities where a stream was expected


def classify_stream(
    meter: StreamMeter, ending: Ending, output_tokens: int
) -> tuple[Outcome, str | None]:
    """Outcome and error_kind of a 200 response whose stream has ended (or broken)."""
    if meter.error is not None:
        if str(meter.error.code) == "429":
            # OpenRouter passes an upstream 429 in-stream once the 200 went out: still a rate limit.
            return Outcome.RATE_LIMITED, "stream.rate_limited"
        e = meter.error
        finer = stream_error_kind(e.code, e.message, e.metadata)  # OpenRouter's metadata
        return Outcome.STREAM_ERROR, finer or "stream.error"
    if meter.finish_reason == "error":
        return Outcome.STREAM_ERROR, "stream.finish_error"
    if ending is Ending.CUT:
        return Outcome.STREAM_ERROR, "stream.cut"
    if ending is Ending.MALFORMED:
        return Outcome.STREAM_ERROR, "stream.malformed_json"
    if ending is Ending.NOT_SSE:
        return Outcome.STREAM_ERROR, "stream.not_sse"
    if ending is Ending.TOO_LARGE:
        return Outcome.STREAM_ERROR, "stream.too_large"
    if ending is Ending.ENCODING:
        return Outcome.STREAM_ERROR, "stream.encoding"
    if ending is Ending.EOF and meter.finish_reason is None:
        # Closed without [DONE] and without a finish_reason: cut short, not a clean end.
        return Outcome.STREAM_ERROR, "stream.truncated"
    if output_tokens == 0:
        return Outcome.EMPTY_RESPONSE, "empty"
    return Outcome.OK, None


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """`Retry-After` in seconds: delta-seconds or an HTTP date (relative to `now`, tz-aware)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        return max(0.0, (when - now).total_seconds())
    return seconds if math.isfinite(seconds) and seconds >= 0 else None
