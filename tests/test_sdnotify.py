"""systemd's notify protocol: a real `provmon run` tells a listening NOTIFY_SOCKET READY=1 when
it probes, WATCHDOG=1 while it runs and STOPPING=1 when it drains."""

from __future__ import annotations

import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.sdnotify import SystemdNotifier
from monitor.simulator import Simulator
from tests.metrics_helpers import running, sim_config


@pytest.fixture
def listener() -> Iterator[tuple[socket.socket, str]]:
    """A unix datagram socket in the abstract namespace, as systemd may give one."""
    name = f"@provmon-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name[1:].encode())
    sock.settimeout(0.2)
    yield sock, name
    sock.close()


def receive(sock: socket.socket, until: str, timeout_s: float) -> list[str]:
    """Datagrams until one has the field `until`."""
    got: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            got.append(sock.recv(4096).decode())
        except TimeoutError:
            continue
        if until in got[-1].split("\n"):
            return got
    raise AssertionError(f"no {until} within {timeout_s} s; got {got}")


def test_a_path_socket_gets_the_fields() -> None:
    with tempfile.TemporaryDirectory(dir="/tmp") as d:
        path = str(Path(d) / "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.settimeout(2)
        with sock:
            n = SystemdNotifier.from_values(path, "2000000", None)
            assert n.watchdog_s == 2.0
            n.ready("probing 3 jobs")
            assert sock.recv(4096).decode() == "READY=1\nSTATUS=probing 3 jobs"
            n.stopping()
            assert sock.recv(4096).decode() == "STOPPING=1\nSTATUS=draining"


def test_no_socket_does_nothing_and_a_gone_one_is_not_fatal() -> None:
    assert SystemdNotifier.from_values(None, None, None).notify("READY=1") is False
    gone = SystemdNotifier("/tmp/provmon-no-such-socket-" + uuid.uuid4().hex)
    assert gone.notify("READY=1") is False
    assert gone.notify("WATCHDOG=1") is False  # said once in the log, never raised
    # A watchdog meant for another process is not ours.
    assert SystemdNotifier.from_values("@x", "1000000", "1").watchdog_s is None


@pytest.mark.slow
@pytest.mark.subprocess
def test_provmon_run_speaks_the_notify_protocol(
    threaded_sim: Simulator, tmp_path: Path, listener: tuple[socket.socket, str]
) -> None:
    sock, name = listener
    db = tmp_path / "p.db"
    cfg = sim_config(threaded_sim, f"sqlite+aiosqlite:///{db}", tmp_path, ("plain",), metrics=False)
    extra = {"NOTIFY_SOCKET": name, "WATCHDOG_USEC": "400000"}
    with running(cfg, extra_env=extra) as daemon:
        started = receive(sock, "READY=1", 30)
        assert "probing 1 jobs" in started[-1]
        t0 = time.monotonic()
        pings = receive(sock, "WATCHDOG=1", 5)
        pings += receive(sock, "WATCHDOG=1", 5)
        pings += receive(sock, "WATCHDOG=1", 5)
        # Three pings at half the 0.4 s watchdog interval.
        assert time.monotonic() - t0 < 2.0
        assert sum(p == "WATCHDOG=1" for p in pings) >= 3
        daemon.proc.send_signal(15)
        stopping = receive(sock, "STOPPING=1", 30)
        assert daemon.proc.wait(30) == 0
    assert all("READY=1" not in m for m in stopping)
    # Nothing after STOPPING: the watchdog stopped with the drain.
    with pytest.raises(TimeoutError):
        sock.recv(4096)
