"""OpenTelemetry export (OTLP over HTTP) of every probe, under the GenAI semantic conventions.
The only module that imports opentelemetry (the `provmon[otel]` extra); it runs in the metrics
process, so the SDK's collection and export threads never share the probe loop's interpreter.

Per probe: `gen_ai.client.operation.duration` (s, when the response's end was measured),
`gen_ai.client.operation.time_to_first_chunk` (s, ok probes), `gen_ai.client.token.usage`
({token}, input and output, when known), and `provmon.probes` (every probe, by outcome).
Attributes: `gen_ai.operation.name` = chat, `gen_ai.provider.name`, `gen_ai.request.model`,
`server.address`, `server.port`, `error.type` (the error kind) on failures, and
`provmon.route`, `provmon.vantage`, `provmon.workload`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from monitor.exporter.model import ProbeSample

DURATION_BUCKETS_S = tuple(0.01 * 2**i for i in range(15))  # 0.01 … 163.84 s: the conventions'

TOKEN_BUCKETS = tuple(4**i for i in range(14))  # 1, 4, 16, ... 67,108,864: the conventions'


def metrics_url(endpoint: str) -> str:
    """The OTLP/HTTP metrics URL of a collector's base URL (or the URL itself if it is one)."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/metrics") else f"{endpoint}/v1/metrics"


class OtelExport:
    def __init__(
        self,
        endpoint: str,
        *,
        interval_s: float,
        timeout_s: float,
        headers: Mapping[str, str],
        version: str,
        vantage: str,
        servers: Mapping[tuple[str, str, str], tuple[str, int]],
    ) -> None:
        session = requests.Session()
        session.trust_env = False  # no proxy from the environment, as for probes
        exporter = OTLPMetricExporter(
            endpoint=metrics_url(endpoint),
            headers=dict(headers),
            timeout=timeout_s,
            session=session,
        )
        reader = PeriodicExportingMetricReader(
            exporter,
            export_interval_millis=interval_s * 1000,
            export_timeout_millis=timeout_s * 1000,
        )
        resource = Resource.create(
            {"service.name": "provmon", "service.version": version, "provmon.vantage": vantage}
        )
        self._provider = MeterProvider(resource=resource, metric_readers=[reader])
        meter = self._provider.get_meter("provmon", version)
        self._servers = servers
        self._duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration: request written to the end of the stream.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS_S,
        )
        self._first_chunk = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk",
            unit="s",
            description="Request written to the first content chunk of the stream.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS_S,
        )
        self._tokens = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Input and output tokens of the probe.",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self._probes = meter.create_counter(
            "provmon.probes", unit="{probe}", description="Probes finished, by outcome."
        )

    def probe(self, s: ProbeSample) -> None:
        model, provider, route, vantage, workload = s.key
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": model,
            "provmon.route": route,
            "provmon.vantage": vantage,
            "provmon.workload": workload,
        }
        server = self._servers.get((model, provider, route))
        if server is not None:
            attrs["server.address"], attrs["server.port"] = server
        if s.outcome != "ok":
            attrs["error.type"] = s.error_kind or s.outcome
        self._probes.add(1, attrs | {"provmon.outcome": s.outcome})
        if s.latency_s is not None:
            self._duration.record(s.latency_s, attrs)
        if s.outcome == "ok" and s.ttft_s is not None:
            self._first_chunk.record(s.ttft_s, attrs)
        for kind, n in (("input", s.input_tokens), ("output", s.output_tokens)):
            if n is not None:
                self._tokens.record(n, attrs | {"gen_ai.token.type": kind})

    def shutdown(self) -> None:
        """Export what is left, then stop (at the daemon's exit)."""
        self._provider.shutdown()
