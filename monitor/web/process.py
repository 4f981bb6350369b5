"""The web server in a process of its own, for `provmon run` and `provmon demo`.

A page built from 30 days of rollups takes tens of milliseconds of CPU; in the daemon's event
loop that time would sit between a provider's bytes arriving and their being stamped. In its
own process (spawned: a fresh interpreter, no state shared) the pages only share the machine's
cores and the database with the probes, and at a lower CPU priority (nice +10): on a busy
machine the probe loop is scheduled first, and pages still come. `WebProcess` is a daemon
sidecar: `start` spawns the process and returns once it listens (or raises why it cannot),
`stop` ends it. The child ends itself when its parent goes away, even after a `kill -9`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
from multiprocessing.connection import Connection
from typing import Any

from monitor.config import Config
from monitor.errors import UsageError
from monitor.web.security import Listen

log = logging.getLogger("monitor.web")

NICE = 10
"""The web process's CPU priority below the daemon's."""
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 5.0


async def serve_until(cfg: Config, listen: Listen, stop: asyncio.Event, on_url: Any = None) -> None:
    """Serve the pages of `cfg`'s database on `listen` until `stop` is set (`provmon serve`,
    and the child process below). `on_url(url)` is called once it listens."""
    from monitor.reporting.job import accounting
    from monitor.storage.database import make_engine
    from monitor.storage.web import readiness
    from monitor.web.server import running
    from monitor.web.site import site_from_config

    token = cfg.web_token.reveal() if cfg.web_token is not None else None
    engine = make_engine(cfg.database_url.reveal())
    try:
        problem = await readiness(engine)
        if problem is not None:
            log.warning("web: serving, but the database is not ready: %s", problem)
        site = site_from_config(cfg, accounting(cfg), refresh_s=cfg.web.refresh_s)
        async with running(engine, site, listen, token=token) as url:
            if on_url is not None:
                on_url(url)
            await stop.wait()
    finally:
        await engine.dispose()


def _child(conn: Connection, cfg: Config, listen: Listen, level: int) -> None:
    """The web process: serve until SIGTERM, or until the parent is gone (its end of the pipe
    closed: epoll reports the error on ours, which wakes the reader)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    with contextlib.suppress(OSError):
        os.nice(NICE)
    from monitor.logs import setup_logging

    setup_logging(level, "text")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_reader(conn.fileno(), stop.set)
        try:
            await serve_until(cfg, listen, stop, on_url=lambda url: conn.send(("url", url)))
        except OSError as exc:
            reason = exc.strerror or str(exc)
            conn.send(("error", f"cannot serve on {listen.host}:{listen.port}: {reason}"))

    asyncio.run(main())


class WebProcess:
    """A daemon sidecar: the live pages served from a child process."""

    name = "web"

    def __init__(self, cfg: Config, listen: Listen) -> None:
        self.cfg = cfg
        self.listen = listen
        self.url: str | None = None
        self._proc: multiprocessing.process.BaseProcess | None = None
        self._conn: Connection | None = None

    async def start(self, daemon: object = None) -> None:
        ctx = multiprocessing.get_context("spawn")
        ours, theirs = ctx.Pipe(duplex=False)
        level = logging.getLogger("monitor").getEffectiveLevel()
        proc = ctx.Process(
            target=_child, args=(theirs, self.cfg, self.listen, level), name="provmon-web"
        )
        proc.daemon = True
        proc.start()
        theirs.close()
        self._proc, self._conn = proc, ours
        loop = asyncio.get_running_loop()
        ready = await loop.run_in_executor(None, ours.poll, START_TIMEOUT_S)
        message: tuple[str, str] | None = None
        if ready:
            with contextlib.suppress(EOFError):
                message = ours.recv()
        if message is None or message[0] != "url":
            await self.stop()
            why = message[1] if message else "the web process did not start (see its log)"
            raise UsageError(why)
        self.url = message[1]
        log.info("web: serving %s (process %d)", self.url, proc.pid)

    async def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.is_alive():
            proc.terminate()  # SIGTERM: the child stops serving and exits
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, proc.join, STOP_TIMEOUT_S)
            if proc.is_alive():
                proc.kill()
                await loop.run_in_executor(None, proc.join, STOP_TIMEOUT_S)
        if self._conn is not None:
            self._conn.close()
            self._conn = None
