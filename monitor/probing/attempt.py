"""What one HTTP attempt of a probe gathered, and the `ProbeResult` made from it.

Every provider-supplied string that reaches the result (`served_by`, `finish_reason`, messages)
passes `short_message`: secrets redacted, control characters removed, length bounded.
"""

from __future__ import annotations

import dataclasses
import errno
from dataclasses import dataclass, field
from datetime import datetime

import aiohttp

from monitor.config import Target, Workload
from monitor.probing.metrics import Measurements, StreamMeter
from monitor.probing.phases import Phases
from monitor.probing.quality import classify
from monitor.redact import short_message
from monitor.results import Outcome, ProbeResult

SERVED_BY_CHARS = 200
FINISH_REASON_CHARS = 32


@dataclass(slots=True)
class ProbeTrace:
    """Raw timings of one probe, for benchmarks: when the request was written and each token
    event's arrival.

    `tokens` holds (arrival perf_counter_ns, the sender's `x_sent_ns` stamp if it sent one).
    """

    t0_ns: int = 0
    tokens: list[tuple[int, int | None]] = field(default_factory=list)


@dataclass(slots=True)
class Attempt:
    """One HTTP attempt as it goes: filled in by the client, turned into a result at the end."""

    target: Target
    workload: Workload
    vantage: str
    started_at: datetime
    outcome: Outcome | None = None
    error_kind: str | None = None
    message: str | None = None
    status: int | None = None
    retry_after_s: float | None = None
    secrets: list[str] = field(default_factory=list)
    prompt_tokens: int | None = None
    phases: Phases | None = None
    measurements: Measurements | None = None
    meter: StreamMeter | None = None


def connection_error_kind(exc: BaseException) -> str:
    """error_kind for a failure to connect or to get response headers."""
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "conn.dns"
    if isinstance(exc, aiohttp.ClientSSLError):
        return "conn.tls"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "conn.reset"
    if isinstance(exc, OSError):
        code = exc.errno
        if code is None and isinstance(exc, aiohttp.ClientConnectorError):
            code = exc.os_error.errno
        if code == errno.ECONNREFUSED:
            return "conn.refused"
        if code in (errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED):
            return "conn.reset"
        if code in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return "conn.unreachable"
    if isinstance(exc, aiohttp.ClientResponseError):
        return "conn.protocol"
    return "conn.error"


def _text(value: str | None, secrets: list[str], limit: int) -> str | None:
    if value is None:
        return None
    return short_message(value, secrets, limit) or None


def build_result(a: Attempt) -> ProbeResult:
    assert a.outcome is not None
    p = a.phases
    result = ProbeResult(
        model=a.target.model,
        provider=a.target.provider,
        route=a.target.route,
        vantage=a.vantage,
        workload=a.workload.name,
        started_at=a.started_at,
        outcome=a.outcome,
        error_kind=a.error_kind,
        error_message=a.message,
        http_status=a.status,
        retry_after_s=a.retry_after_s,
        dns_ms=p.dns_ms if p else None,
        connect_ms=p.connect_ms if p else None,
        tls_ms=p.tls_ms if p else None,
        ttfb_ms=p.ttfb_ms if p else None,
    )
    m, meter = a.measurements, a.meter
    if m is None or meter is None:
        return result
    return dataclasses.replace(
        result,
        ttft_ms=m.ttft_ms,
        ttfa_ms=m.ttfa_ms,
        latency_ms=m.latency_ms,
        output_tokens=m.output_tokens,
        input_tokens=m.input_tokens,
        token_source=m.token_source,
        decode_tps=m.decode_tps,
        e2e_tps=m.e2e_tps,
        chunks=m.chunks,
        buffered=m.buffered,
        cost_usd=m.cost_usd,
        itl_p50_ms=m.itl_p50_ms,
        itl_p99_ms=m.itl_p99_ms,
        max_gap_ms=m.max_gap_ms,
        flags=",".join(m.flags) or None,
        finish_reason=_text(meter.finish_reason, a.secrets, FINISH_REASON_CHARS),
        served_by=_text(meter.provider, a.secrets, SERVED_BY_CHARS),
        quality=quality_of(a),
    )


def quality_of(a: Attempt) -> str | None:
    """The quality verdict of an ok probe of a quality workload (None otherwise)."""
    capture = a.meter.capture if a.meter is not None else None
    if capture is None or a.outcome is not Outcome.OK:
        return None
    return classify(a.workload.kind, capture).value
