"""The metrics process: `/metrics`, `/healthz` and `/readyz`, served from its own interpreter.

Rendering a scrape of 1,000 targets takes prometheus_client one to two seconds of CPU; in
the daemon's process that would hold the GIL the probe loop needs to stamp arriving bytes. Here
it holds nothing of the daemon's, and runs only when the CPU is otherwise idle (`yield_cpu`).
The daemon (`sidecar.MetricsSidecar`) starts it with `python -m monitor.exporter.server`,
writes one JSON line of settings, then one line per probe and a health snapshot every second to
its stdin; it answers on stdout with one line, `{"listening": [host, port]}` or
`{"error": "..."}`. End of stdin (the daemon closed it, or died) ends this process; SIGINT and
SIGTERM are left to the daemon, which drains first.

Threads: the main thread reads stdin into the metrics; the HTTP server answers each request in
a thread of its own; one thread runs an event loop that checks the database every `poll_s`
(readiness, and the alert states the target-state gauges show).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, BinaryIO

from monitor.exporter.model import HEARTBEAT_S, Health, ProbeSample
from monitor.exporter.registry import Metrics

if TYPE_CHECKING:
    from monitor.exporter.otel import OtelExport

log = logging.getLogger("monitor.metrics")

NICE = 19
"""Where SCHED_IDLE is not to be had, the lowest CPU priority instead."""


def yield_cpu() -> None:
    """Run only when no other process wants the CPU (SCHED_IDLE; else nice 19): on a machine
    with few cores, rendering a large scrape never delays the probe loop's wake-ups
    (bench/scrape.py measures it). A machine too busy to render is a machine too busy to
    probe well: the scrape times out and Prometheus says so (`up` = 0)."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        with contextlib.suppress(OSError):
            os.nice(NICE)


STALE_AFTER_S = 15 * HEARTBEAT_S
"""/healthz fails when the daemon has sent nothing for this long (its loop is stuck)."""


class Readiness:
    """The latest database check, and when the daemon last spoke."""

    def __init__(self) -> None:
        self.problem: str | None = "not checked yet"
        self.heard_at = time.monotonic()

    def heard(self) -> None:
        self.heard_at = time.monotonic()

    def alive(self) -> bool:
        return time.monotonic() - self.heard_at < STALE_AFTER_S


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], metrics: Metrics, ready: Readiness) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.metrics = metrics
        self.ready = ready
        super().__init__(address, Handler)


class Handler(BaseHTTPRequestHandler):
    server: Server
    protocol_version = "HTTP/1.1"
    server_version = "provmon-metrics"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # a scrape a second is not news

    def _send(self, status: int, body: bytes, content_type: str, head: bool) -> None:
        gz = "gzip" in (self.headers.get("Accept-Encoding") or "") and len(body) > 4096
        if gz:
            body = gzip.compress(body, compresslevel=1)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        if gz:
            self.send_header("Content-Encoding", "gzip")
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _answer(self, head: bool) -> None:
        path = self.path.split("?", 1)[0]
        text = "text/plain; charset=utf-8"
        if path == "/metrics":
            body, content_type = self.server.metrics.render(self.headers.get("Accept"))
            self._send(200, body, content_type, head)
        elif path == "/healthz":
            if self.server.ready.alive():
                self._send(200, b"ok\n", text, head)
            else:
                self._send(503, b"the daemon's loop has not answered for 15 s\n", text, head)
        elif path == "/readyz":
            problem = self.server.ready.problem
            if problem is None:
                self._send(200, b"ready\n", text, head)
            else:
                self._send(503, f"not ready: {problem}\n".encode(), text, head)
        elif path == "/":
            self._send(200, b"provmon: /metrics /healthz /readyz\n", text, head)
        else:
            self._send(404, b"not found\n", text, head)

    def do_GET(self) -> None:
        self._answer(head=False)

    def do_HEAD(self) -> None:
        self._answer(head=True)


def target_states(
    states: Mapping[tuple[str, str, str], Mapping[str, str]], vantage: str
) -> dict[tuple[str, str, str], str]:
    """The state alerting acts on: the cross-vantage one (`*`), else this vantage's own."""
    out = {}
    for key, by_vantage in states.items():
        state = by_vantage.get("*") or by_vantage.get(vantage)
        if state is not None:
            out[key] = state
    return out


async def watch_database(
    url: str, vantage: str, poll_s: float, metrics: Metrics, ready: Readiness
) -> None:
    """Every `poll_s`: is the database reachable and migrated, and what are the alert states."""
    from monitor.errors import StoreUnavailable
    from monitor.storage.database import make_engine, schema_problem
    from monitor.storage.reports import alert_states

    engine = make_engine(url, pool_size=1)
    try:
        while True:
            problem = await schema_problem(engine, timeout_s=max(1.0, poll_s), secrets=[url])
            ready.problem = problem
            metrics.database(problem is None)
            if problem is None:
                try:
                    async with asyncio.timeout(max(1.0, poll_s)):
                        metrics.alert_states(target_states(await alert_states(engine), vantage))
                except (StoreUnavailable, TimeoutError, OSError):
                    pass  # the states shown stay the last ones read
                except Exception as exc:  # the database's own error types stay in storage/
                    log.debug("alert states not read: %s", type(exc).__name__)
            await asyncio.sleep(poll_s)
    finally:
        await engine.dispose()


def read_updates(
    stream: BinaryIO, metrics: Metrics, ready: Readiness, otel: OtelExport | None = None
) -> None:
    """Apply each line the daemon sends until end of input."""
    for raw in stream:
        try:
            msg = json.loads(raw)
        except ValueError:
            continue
        ready.heard()
        if isinstance(msg, list) and msg and msg[0] == "p":
            sample = ProbeSample.from_line(msg)
            metrics.probe(sample)
            if otel is not None:
                otel.probe(sample)
        elif isinstance(msg, dict) and "health" in msg:
            metrics.health(Health.from_json(msg["health"]))


def say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    yield_cpu()
    stdin = sys.stdin.buffer
    first = stdin.readline()
    if not first:
        return 0
    init = json.loads(first)
    metrics = Metrics(
        init["version"],
        min_samples=int(init["min_samples"]),
        failure_outcomes=init["failure_outcomes"],
        process_pid=init.get("daemon_pid"),
    )
    metrics.expect(tuple(k) for k in init.get("jobs", []))
    ready = Readiness()
    otel = None
    if init.get("otel"):
        try:
            otel = start_otel(init)
        except ImportError:
            say({"error": "OpenTelemetry export needs its packages: pip install 'provmon[otel]'"})
            return 1
    server = None
    if init["listen"] is None:
        say({"listening": None})
    else:
        host, port = init["listen"]
        try:
            server = Server((host, int(port)), metrics, ready)
        except OSError as exc:
            say({"error": f"metrics: cannot listen on {host}:{port}: {exc.strerror or exc}"})
            return 1
        say({"listening": [host, int(server.server_address[1])]})
        threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    db = threading.Thread(
        target=asyncio.run,
        args=(
            watch_database(
                init["database_url"], init["vantage"], float(init["poll_s"]), metrics, ready
            ),
        ),
        name="database",
        daemon=True,
    )
    if server is not None:  # readiness and alert states are for the endpoint
        db.start()
    read_updates(stdin, metrics, ready, otel)
    if otel is not None:
        otel.shutdown()
    if server is not None:
        server.shutdown()
    return 0


def start_otel(init: dict[str, Any]) -> OtelExport:
    from monitor.exporter.otel import OtelExport

    o = init["otel"]
    return OtelExport(
        o["endpoint"],
        interval_s=float(o["interval_s"]),
        timeout_s=float(o["timeout_s"]),
        headers=o["headers"],
        version=init["version"],
        vantage=init["vantage"],
        servers={(m, p, r): (h, int(port)) for m, p, r, h, port in init.get("servers", [])},
    )


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # the database thread's connection threads need not be waited for
