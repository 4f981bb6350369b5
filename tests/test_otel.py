"""OpenTelemetry export: a real `provmon run` sends its probes over OTLP/HTTP to a receiver in
this process, under the GenAI semantic conventions, and the last export's totals equal the
probes in the database."""

from __future__ import annotations

import gzip
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk", reason="the provmon[otel] extra is not installed")
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)

from monitor.config import ConfigError, parse_config
from monitor.exporter.otel import metrics_url
from monitor.simulator import DEMO_MODEL, Simulator
from tests.metrics_helpers import running, sim_config
from tests.test_metrics import db_counts


class Receiver(ThreadingHTTPServer):
    """An OTLP/HTTP metrics receiver: keeps every export request it gets."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[ExportMetricsServiceRequest] = []
        self.headers_seen: list[dict[str, str]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        ok = self.path == "/v1/metrics"
        if ok:
            req = ExportMetricsServiceRequest()
            req.ParseFromString(body)
            self.server.requests.append(req)
            self.server.headers_seen.append(dict(self.headers))
        self.send_response(200 if ok else 404)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    thread.join(5)
    server.server_close()


def attrs(point: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in point.attributes:
        v = kv.value
        out[kv.key] = v.string_value if v.HasField("string_value") else v.int_value
    return out


def latest(receiver: Receiver) -> dict[str, list[tuple[dict[str, Any], Any]]]:
    """Each metric's data points in the last export that had it (cumulative totals)."""
    out: dict[str, list[tuple[dict[str, Any], Any]]] = {}
    for req in receiver.requests:
        for rm in req.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    data = m.histogram if m.HasField("histogram") else m.sum
                    out[m.name] = [(attrs(p), p) for p in data.data_points]
    return out


def test_otel_section_is_validated() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"otel": {"endpoint": "collector:4318"}}, {})
    assert any(p.startswith("otel.endpoint") for p in err.value.problems)
    with pytest.raises(ConfigError) as err:
        parse_config({"otel": {"endpoint": "http://c:4318", "headers_env": "H"}}, {"H": "oops"})
    assert err.value.problems == ["otel.headers_env: entry 1 is not key=value"]
    cfg = parse_config({"otel": {"endpoint": "http://c:4318/"}}, {})
    assert cfg.otel is not None and metrics_url(cfg.otel.endpoint) == "http://c:4318/v1/metrics"


@pytest.mark.slow
@pytest.mark.subprocess
def test_a_running_daemon_exports_its_probes(
    threaded_sim: Simulator, tmp_path: Path, receiver: Receiver
) -> None:
    db = tmp_path / "p.db"
    extra = f'[otel]\nendpoint = "{receiver.url}"\ninterval_s = 1\nheaders_env = "OTEL_H"\n'
    cfg = sim_config(
        threaded_sim,
        f"sqlite+aiosqlite:///{db}",
        tmp_path,
        ("plain", "http-503"),
        metrics=False,
        extra=extra,
    )
    with running(cfg, extra_env={"OTEL_H": "x-api-key=s3cret"}) as daemon:
        deadline = time.monotonic() + 30
        while "gen_ai.client.operation.time_to_first_chunk" not in latest(receiver):
            assert daemon.proc.poll() is None, daemon.log.read_text()
            assert time.monotonic() < deadline, "no export arrived"
            time.sleep(0.2)
        time.sleep(1.5)
        assert daemon.stop() == 0  # its last export goes out as it stops
    stored, stored_ok = db_counts(db)
    metrics = latest(receiver)
    assert receiver.headers_seen[-1].get("x-api-key") == "s3cret"
    resource = {
        kv.key: kv.value.string_value
        for kv in receiver.requests[-1].resource_metrics[0].resource.attributes
    }
    assert resource["service.name"] == "provmon"
    assert resource["provmon.vantage"] == "test-vantage"
    probes: Counter[tuple[str, str]] = Counter()
    for a, p in metrics["provmon.probes"]:
        probes[(a["gen_ai.provider.name"], a["provmon.outcome"])] += int(p.as_int)
    assert probes == stored
    first_chunk: Counter[str] = Counter()
    for a, p in metrics["gen_ai.client.operation.time_to_first_chunk"]:
        assert a["gen_ai.operation.name"] == "chat"
        assert a["gen_ai.request.model"] == DEMO_MODEL
        assert a["server.address"] == "127.0.0.1" and isinstance(a["server.port"], int)
        assert "error.type" not in a
        first_chunk[a["gen_ai.provider.name"]] += p.count
        assert 0 < p.sum / p.count < 2  # seconds
    assert first_chunk == stored_ok
    tokens = {
        (a["gen_ai.provider.name"], a["gen_ai.token.type"])
        for a, _ in metrics["gen_ai.client.token.usage"]
    }
    assert {("plain", "input"), ("plain", "output")} <= tokens
    assert "gen_ai.client.operation.duration" in metrics
    errors = [a for a, _ in metrics["provmon.probes"] if a["gen_ai.provider.name"] == "http-503"]
    assert errors and all(a["error.type"] == "http.503" for a in errors)
