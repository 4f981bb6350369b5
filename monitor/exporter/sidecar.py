"""The daemon's side of the metrics endpoint: starts the metrics process and feeds it. A
`Sidecar` of the daemon build (`runtime.build_daemon(cfg, sidecars=[...])`).

`observe(result)` costs the probe loop one short JSON line written to a pipe (a few
microseconds); everything a scrape costs happens in the other process (`server`). A health
snapshot goes every second; it is also the heartbeat behind `/healthz`. If the metrics process
stops reading, lines beyond `MAX_BUFFER_BYTES` are dropped (and said once) rather than kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import orjson

from monitor import __version__
from monitor.clock import utc_now
from monitor.config import Config
from monitor.config.load import parse_headers
from monitor.errors import MetricsError
from monitor.exporter.health import daemon_health
from monitor.exporter.model import HEARTBEAT_S, Health, SeriesKey, probe_line
from monitor.results import ProbeResult
from monitor.spill import SpillFile

if TYPE_CHECKING:
    from monitor.runtime import Daemon

log = logging.getLogger("monitor.metrics")

MAX_BUFFER_BYTES = 8 * 1024 * 1024
START_TIMEOUT_S = 30.0


def server_of(base_url: str) -> tuple[str, int]:
    """(host, port) of a base URL, for `server.address` and `server.port`."""
    parts = urlsplit(base_url)
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


def jobs_of(cfg: Config) -> list[SeriesKey]:
    return [
        (t.model, t.provider, t.route, cfg.vantage, w) for t in cfg.targets for w in t.workloads
    ]


class MetricsSidecar:
    name = "metrics"

    def __init__(
        self,
        cfg: Config,
        listen: tuple[str, int] | None,
        health: Callable[[], Health] = Health,
        *,
        poll_s: float = 5.0,
        jobs: Iterable[SeriesKey] | None = None,
    ) -> None:
        self._cfg = cfg
        self._listen = listen
        self._health = health
        self._poll_s = poll_s
        self._jobs = list(jobs) if jobs is not None else jobs_of(cfg)
        self._proc: asyncio.subprocess.Process | None = None
        self._stdin: asyncio.StreamWriter | None = None
        self._beat: asyncio.Task[None] | None = None
        self._dropped = 0
        self._pending: list[bytes] | None = []  # lines observed before the process is up
        self.address: tuple[str, int] | None = None

    @property
    def url(self) -> str:
        assert self.address is not None
        host, port = self.address
        return f"http://{f'[{host}]' if ':' in host else host}:{port}"

    async def start(self, daemon: Daemon | None = None) -> None:
        """Start the metrics process, counting `daemon`'s probes and showing its health;
        `address` is where it listens (None without `listen`: OpenTelemetry export only).
        Raises MetricsError when it cannot listen there or cannot export."""
        if daemon is not None:
            # Tapped before the first await: no probe finishes uncounted.
            daemon.writer.tap(self.observe)
            spill = SpillFile(Path(self._cfg.database.spill_path))

            def health() -> Health:
                return daemon_health(
                    daemon.writer,
                    spill,
                    daemon.scheduler,
                    daemon.monitor.budget,
                    daemon.notifications,
                    utc_now(),
                )

            self._health = health
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "monitor.exporter.server",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert proc.stdin is not None and proc.stdout is not None
        self._proc, self._stdin = proc, proc.stdin
        cfg = self._cfg
        init: dict[str, Any] = {
            "version": __version__,
            "listen": list(self._listen) if self._listen is not None else None,
            "vantage": cfg.vantage,
            "database_url": cfg.database_url.reveal(),
            "min_samples": cfg.uptime.min_samples,
            "failure_outcomes": [o.value for o in cfg.uptime.failure_outcomes],
            "poll_s": self._poll_s,
            "daemon_pid": os.getpid(),
            "jobs": self._jobs,
            "servers": [
                [t.model, t.provider, t.route, *server_of(t.base_url)] for t in cfg.targets
            ],
        }
        if cfg.otel is not None:
            headers = cfg.otel_headers.reveal() if cfg.otel_headers is not None else ""
            init["otel"] = {
                "endpoint": cfg.otel.endpoint,
                "interval_s": cfg.otel.interval_s,
                "timeout_s": cfg.otel.timeout_s,
                "headers": parse_headers(headers),
            }
        proc.stdin.write(json.dumps(init).encode() + b"\n")
        pending, self._pending = self._pending or [], None
        proc.stdin.write(b"".join(pending))
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                answer = await proc.stdout.readline()
        except TimeoutError:
            answer = b""
        reply: dict[str, Any] = {}
        with contextlib.suppress(ValueError):
            reply = json.loads(answer) if answer else {}
        if "listening" not in reply:
            await self._end(kill=True)
            why = reply.get("error") or "the metrics process did not start"
            raise MetricsError(f"metrics: {why}")
        if reply["listening"] is not None:
            host, port = reply["listening"]
            self.address = (str(host), int(port))
            log.info("metrics on %s/metrics (also /healthz, /readyz)", self.url)
        if cfg.otel is not None:
            log.info(
                "OpenTelemetry export to %s every %g s", cfg.otel.endpoint, cfg.otel.interval_s
            )
        self._send_health()
        self._beat = asyncio.create_task(self._heartbeat(), name="metrics-heartbeat")

    def _write(self, data: bytes) -> None:
        if self._pending is not None:
            self._pending.append(data)
            return
        stdin = self._stdin
        if stdin is None or stdin.is_closing():
            return
        if stdin.transport.get_write_buffer_size() > MAX_BUFFER_BYTES:
            if not self._dropped:
                log.warning("the metrics process is not reading: dropping metric updates")
            self._dropped += 1
            return
        stdin.write(data)

    def observe(self, result: ProbeResult) -> None:
        """Count a finished probe (on the probe loop: one pipe write, never a wait)."""
        self._write(orjson.dumps(probe_line(result)) + b"\n")

    def observe_all(self, results: Iterable[ProbeResult]) -> None:
        for r in results:
            self.observe(r)

    def _send_health(self) -> None:
        try:
            health = self._health()
        except Exception:  # a bug in a gauge must not stop the heartbeat
            log.exception("metrics: health snapshot failed")
            health = Health()
        self._write(orjson.dumps({"health": health.to_json()}) + b"\n")

    async def _heartbeat(self) -> None:
        proc = self._proc
        assert proc is not None
        while proc.returncode is None:
            self._send_health()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(HEARTBEAT_S):
                    await proc.wait()
        log.error("the metrics process exited (status %s): /metrics is gone", proc.returncode)

    async def stop(self) -> None:
        """Close the metrics process's input: it sends its last OpenTelemetry export and exits
        (within `otel.timeout_s` and a few seconds)."""
        if self._beat is not None:
            self._beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beat
            self._beat = None
        if self._proc is not None:
            self._send_health()
            otel = self._cfg.otel
            await self._end(kill=False, wait_s=5.0 + (otel.timeout_s if otel else 0.0))

    async def _end(self, *, kill: bool, wait_s: float = 5.0) -> None:
        proc, stdin = self._proc, self._stdin
        self._proc = self._stdin = None
        if proc is None:
            return
        if stdin is not None and not stdin.is_closing():
            stdin.close()
            with contextlib.suppress(ConnectionError, OSError):
                await stdin.wait_closed()
        if kill and proc.returncode is None:
            proc.kill()
        try:
            async with asyncio.timeout(wait_s):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()
