"""systemd's notify protocol (sd_notify(3)) in plain socket code: READY=1, WATCHDOG=1, STOPPING=1.

The socket path and the watchdog interval come from `NOTIFY_SOCKET` and `WATCHDOG_USEC`, which
the CLI reads once and passes here (`from_values`). A path starting with '@' is an abstract
socket. Without a socket every call does nothing. A send that fails is logged once, never
raised: the daemon must not stop because its supervisor went away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from monitor.runtime import Daemon

log = logging.getLogger(__name__)


class SystemdNotifier:
    def __init__(self, socket_path: str | None, watchdog_s: float | None = None) -> None:
        self.socket_path = socket_path or None
        self.watchdog_s = watchdog_s
        self._warned = False
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_values(
        cls, notify_socket: str | None, watchdog_usec: str | None, watchdog_pid: str | None = None
    ) -> SystemdNotifier:
        """From the values of NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID (None when unset).
        A watchdog meant for another process (WATCHDOG_PID) is not ours."""
        watchdog_s = None
        if watchdog_usec and watchdog_usec.isdigit() and int(watchdog_usec) > 0:
            watchdog_s = int(watchdog_usec) / 1e6
        if watchdog_pid and watchdog_pid.isdigit() and int(watchdog_pid) != os.getpid():
            watchdog_s = None
        return cls(notify_socket, watchdog_s)

    @property
    def enabled(self) -> bool:
        return self.socket_path is not None

    def _address(self) -> str | bytes:
        assert self.socket_path is not None
        if self.socket_path.startswith("@"):
            return b"\0" + self.socket_path[1:].encode()
        return self.socket_path

    def notify(self, *fields: str) -> bool:
        """Send `KEY=value` fields as one datagram; True when it was sent."""
        if self.socket_path is None:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(self._address())
                sock.sendall("\n".join(fields).encode())
        except OSError as exc:
            if not self._warned:
                self._warned = True
                log.warning("cannot notify systemd at %s: %s", self.socket_path, exc)
            return False
        return True

    def ready(self, status: str = "") -> None:
        self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def stopping(self) -> None:
        self.stop_watchdog()
        self.notify("STOPPING=1", "STATUS=draining")

    def status(self, text: str) -> None:
        self.notify(f"STATUS={text}")

    def start_watchdog(self, healthy: Callable[[], bool]) -> None:
        """While the event loop runs and `healthy()` says so, WATCHDOG=1 at half the interval
        systemd expects; a stuck loop or an unhealthy daemon stops the pings and systemd
        restarts the service."""
        if self.socket_path is None or self.watchdog_s is None or self._task is not None:
            return
        period_s = self.watchdog_s / 2

        async def ping() -> None:
            while True:
                if healthy():
                    self.notify("WATCHDOG=1")
                else:
                    log.warning("unhealthy: not telling systemd's watchdog that all is well")
                await asyncio.sleep(period_s)

        self._task = asyncio.create_task(ping(), name="systemd-watchdog")

    def stop_watchdog(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class SystemdSidecar:
    """The notify protocol as a sidecar of the daemon build: READY=1 once the daemon probes,
    the watchdog while its scheduler and writer run, STOPPING=1 as soon as `stop` is set (the
    drain begins)."""

    name = "systemd"

    def __init__(self, notifier: SystemdNotifier, stop: asyncio.Event) -> None:
        self._notifier = notifier
        self._stop = stop
        self._task: asyncio.Task[None] | None = None

    async def start(self, daemon: Daemon) -> None:
        n = self._notifier
        n.ready(f"probing {len(daemon.monitor.jobs)} jobs")
        n.start_watchdog(lambda: daemon.scheduler.running and daemon.writer.running)

        async def on_stop() -> None:
            await self._stop.wait()
            n.stopping()

        self._task = asyncio.create_task(on_stop(), name="systemd-stopping")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._notifier.close()
