"""The probe result: one frozen value per probe, with the fields and outcomes of DESIGN.md 2–3."""

from __future__ import annotations

import dataclasses
import enum
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

TargetKey = tuple[str, str, str]
"""(model, provider, route): what is probed, alerted on and reported."""


class Outcome(enum.StrEnum):
    """Exactly one per probe. See DESIGN.md section 3."""

    OK = "ok"
    RATE_LIMITED = "rate_limited"
    CLIENT_ERROR = "client_error"
    SERVER_ERROR = "server_error"
    TIMEOUT = "timeout"
    CONNECTION_ERROR = "connection_error"
    STREAM_ERROR = "stream_error"
    EMPTY_RESPONSE = "empty_response"
    MONITOR_ERROR = "monitor_error"

    @property
    def counts_against_uptime(self) -> bool:
        """True for failures: they lower uptime."""
        return self in _FAILURES

    @property
    def excluded_from_uptime(self) -> bool:
        """True for outcomes that count neither as success nor as failure."""
        return self in _EXCLUDED


_FAILURES = frozenset(
    {
        Outcome.SERVER_ERROR,
        Outcome.TIMEOUT,
        Outcome.CONNECTION_ERROR,
        Outcome.STREAM_ERROR,
        Outcome.EMPTY_RESPONSE,
    }
)
_EXCLUDED = frozenset({Outcome.RATE_LIMITED, Outcome.CLIENT_ERROR, Outcome.MONITOR_ERROR})


class TokenSource(enum.StrEnum):
    """Where `output_tokens` came from."""

    USAGE = "usage"
    TOKENIZER = "tokenizer"
    ESTIMATE = "estimate"


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One probe: what was probed, how it ended, and what it measured.

    Durations are milliseconds measured with `perf_counter_ns`; `started_at` is tz-aware UTC.
    `ttft_ms`, `ttfa_ms` and `latency_ms` start when the request has been written on the
    established connection; `dns_ms`, `connect_ms`, `tls_ms` and `ttfb_ms` are the phases before
    and up to the response headers. Metric fields are None when the probe did not get far enough
    to measure them (or, for phases, when there was no such phase).
    """

    model: str
    provider: str
    route: str
    vantage: str
    workload: str
    started_at: datetime
    outcome: Outcome
    error_kind: str | None = None
    error_message: str | None = None
    http_status: int | None = None
    retry_after_s: float | None = None
    ttft_ms: float | None = None
    ttfa_ms: float | None = None
    latency_ms: float | None = None
    output_tokens: int | None = None
    input_tokens: int | None = None
    token_source: TokenSource | None = None
    decode_tps: float | None = None
    e2e_tps: float | None = None
    chunks: int = 0
    buffered: bool = False
    cost_usd: float | None = None
    finish_reason: str | None = None
    served_by: str | None = None
    dns_ms: float | None = None
    connect_ms: float | None = None
    tls_ms: float | None = None
    ttfb_ms: float | None = None
    itl_p50_ms: float | None = None
    itl_p99_ms: float | None = None
    max_gap_ms: float | None = None
    flags: str | None = None
    """Comma-separated, sorted: provider values provmon did not believe (`usage_implausible`,
    `cost_implausible`); None when there were none."""
    quality: str | None = None
    """A quality workload's verdict on an ok probe's answer (`monitor.probing.quality.Quality`:
    ok, invalid_json, unknown_tool, schema_mismatch, no_tool_call, no_structured_output); None
    for plain workloads and for probes that did not end ok."""

    @property
    def target_key(self) -> tuple[str, str, str]:
        return (self.model, self.provider, self.route)

    @property
    def network_ms(self) -> float | None:
        """connect + TLS: what the fresh connection's handshakes took (reports' "network")."""
        if self.connect_ms is None:
            return None
        return self.connect_ms + (self.tls_ms or 0.0)

    def to_json(self) -> dict[str, Any]:
        """The JSON form of DESIGN.md section 2: plain types, ISO-8601 UTC timestamp."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, enum.Enum):
                value = value.value
            elif isinstance(value, float) and not math.isfinite(value):
                value = None  # strict JSON: no NaN or Infinity
            out[f.name] = value
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProbeResult:
        """The inverse of `to_json` (unknown keys are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        values["started_at"] = datetime.fromisoformat(values["started_at"])
        values["outcome"] = Outcome(values["outcome"])
        if values.get("token_source") is not None:
            values["token_source"] = TokenSource(values["token_source"])
        return cls(**values)


def monitor_fault(result: ProbeResult, kind: str) -> ProbeResult:
    """The probe failed because of the monitor itself: `monitor_error` with error kind `kind`,
    the provider's error kind (or outcome) kept at the front of the message."""
    message = f"{result.error_kind or result.outcome.value}: {result.error_message or ''}"
    return dataclasses.replace(
        result, outcome=Outcome.MONITOR_ERROR, error_kind=kind, error_message=message.strip()
    )
