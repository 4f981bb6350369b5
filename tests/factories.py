"""Probe results built by hand, for storage, rollup and aggregation tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from monitor.results import Outcome, ProbeResult, TokenSource

T0 = datetime(2026, 11, 16, 0, 0, tzinfo=UTC)  # Monday of ISO week 2026-W47


def result(**overrides: Any) -> ProbeResult:
    values: dict[str, Any] = {
        "model": "acme/model-1",
        "provider": "Alpha",
        "route": "direct",
        "vantage": "here",
        "workload": "short",
        "started_at": T0,
        "outcome": Outcome.OK,
        "http_status": 200,
        "ttft_ms": 200.0,
        "ttfa_ms": 200.0,
        "latency_ms": 1200.0,
        "output_tokens": 100,
        "input_tokens": 100,
        "token_source": TokenSource.USAGE,
        "decode_tps": 99.0,
        "e2e_tps": 83.3,
        "chunks": 100,
        "cost_usd": 0.0001,
        "finish_reason": "stop",
    }
    values.update(overrides)
    if values["outcome"] is not Outcome.OK and "ttft_ms" not in overrides:
        for name in ("ttft_ms", "ttfa_ms", "latency_ms", "decode_tps", "e2e_tps", "cost_usd"):
            values[name] = None
        values["output_tokens"] = 0
        values["chunks"] = 0
        values["finish_reason"] = None
    return ProbeResult(**values)
