"""Processes for benchmarks: the simulator, clients and the daemon, and the local PostgreSQL.

`simulator(farm)` serves a farm from its own process on 127.0.0.1 and yields its URL; `Control`
reads its `/_sim` endpoints; `child_process` runs any function in a fresh interpreter and always
kills it on the way out; `runq_wait_ns` tells how long a process waited for a CPU another process
held (load from outside the benchmark).

For daemon benchmarks: `daemon_env`, `die_with_parent` (no orphans, even after a kill -9 of the
bench), `DaemonLog` (its JSON log read as it is written), `read_rss_kb`, `stop_process`; for
PostgreSQL: `pg_ctl`, `ensure_pg_running` (whatever happened, it is left running) and
`temp_database` (created, and dropped on the way out).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import multiprocessing
import os
import signal
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg

if TYPE_CHECKING:
    from monitor.simulator import Farm

HOST = "127.0.0.1"
NS_PER_MS = 1_000_000
PG_PORT = 5432
PG_ADMIN_DSN = f"postgresql://postgres@{HOST}:{PG_PORT}/test"
REPO = Path(__file__).resolve().parents[1]


def out(line: str = "") -> None:
    print(line, flush=True)


def load() -> str:
    """The 1, 5 and 15 minute load averages: other work on the machine skews the numbers."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def git_head() -> str:
    """The checkout's last commit, and whether monitor/ has uncommitted changes."""
    done = subprocess.run(
        ["git", "-C", str(REPO), "log", "-1", "--format=%h %s"],
        check=False,
        capture_output=True,
        text=True,
        timeout=10,
    )
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no", "monitor"],
        check=False,
        capture_output=True,
        text=True,
        timeout=10,
    )
    note = " (+ uncommitted changes in monitor/)" if dirty.stdout.strip() else ""
    return done.stdout.strip()[:72] + note


def die_with_parent() -> None:
    """Linux: get SIGKILL when the process that started us dies (no orphans, even on kill -9)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def pin(cpu: int) -> None:
    """Run this process on `cpu` alone, when the machine has more than one."""
    if (os.cpu_count() or 1) >= 2:
        with contextlib.suppress(OSError, AttributeError):
            os.sched_setaffinity(0, {cpu})


def runq_wait_ns(pid: int | str = "self") -> int | None:
    """Time the process has spent runnable but waiting for a CPU (Linux schedstat)."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[1])
    except (OSError, IndexError, ValueError):
        return None


def waited_ms(before: int | None, after: int | None) -> float | None:
    return None if before is None or after is None else (after - before) / NS_PER_MS


@contextlib.contextmanager
def child_process(target: Callable[..., None], *args: Any) -> Iterator[tuple[Connection, int]]:
    """Start `target(conn, *args)` in a spawned process; yield our end of its pipe and its pid;
    kill it on the way out, also on error."""
    ctx = multiprocessing.get_context("spawn")
    ours, theirs = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=target, args=(theirs, *args), daemon=True)
    proc.start()
    theirs.close()
    try:
        assert proc.pid is not None
        yield ours, proc.pid
    finally:
        ours.close()
        proc.terminate()
        proc.join(5)
        if proc.is_alive():
            proc.kill()
            proc.join(5)


def _spin(conn: Connection, cpu: int | None) -> None:
    die_with_parent()
    if cpu is not None:
        pin(cpu)
    conn.close()
    while True:
        pass


@contextlib.contextmanager
def cpu_hog(cpu: int | None) -> Iterator[int]:
    """A process that spins on `cpu` (any, unless given) until the block ends: another
    program wanting the same core all the time. Yields its pid."""
    with child_process(_spin, cpu) as (_conn, pid):
        yield pid


def receive(conn: Connection, timeout_s: float, what: str) -> Any:
    """The child's answer, or RuntimeError when it is late or died."""
    if not conn.poll(timeout_s):
        raise RuntimeError(f"{what}: no answer within {timeout_s:g} s")
    try:
        return conn.recv()
    except EOFError:
        raise RuntimeError(f"{what}: the process died (see its traceback above)") from None


def _serve(conn: Connection, farm: Farm, cpu: int | None) -> None:
    """Child process: serve `farm` on an ephemeral loopback port, send its URL, run forever."""
    from monitor.simulator import Simulator, serve

    die_with_parent()
    if cpu is not None:
        pin(cpu)

    def ready(sim: Simulator) -> None:
        conn.send(sim.base_url)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(farm, HOST, 0, ready=ready))


class Control:
    """The simulator's `/_sim` endpoints, over urllib with no proxy (loopback only)."""

    def __init__(self, base_url: str) -> None:
        self._base_url = base_url
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def _call(self, path: str, method: str = "GET") -> Any:
        data = b"" if method == "POST" else None
        req = urllib.request.Request(self._base_url + path, data=data, method=method)
        with self._opener.open(req, timeout=30) as resp:
            return json.load(resp)

    def wait_accepting(self) -> None:
        for _ in range(100):
            with contextlib.suppress(OSError):
                self._call("/_sim/truth")
                return
            time.sleep(0.1)
        raise RuntimeError("the simulator does not accept connections")

    def reset(self) -> None:
        self._call("/_sim/reset", "POST")

    def truth(self, since_ns: int = 0) -> list[dict[str, Any]]:
        """The simulator's record of every request (TruthRecord.to_json), oldest first."""
        records: list[dict[str, Any]] = self._call(f"/_sim/truth?since_ns={since_ns}")
        return records

    def first_token_lags_ms(self) -> list[float]:
        """How late the simulator wrote each first token against its plan (its own delay)."""
        return [
            (r["first_token_ns"] - r["arrival_ns"]) / NS_PER_MS - r["ttft_s"] * 1000
            for r in self._call("/_sim/truth")
            if r["first_token_ns"] is not None and r["ttft_s"] is not None
        ]


@contextlib.contextmanager
def simulator(farm: Farm, cpu: int | None) -> Iterator[tuple[str, int]]:
    """`farm` served from its own process (on `cpu` alone, unless None); yields its base URL and
    pid once it accepts connections."""
    with child_process(_serve, farm, cpu) as (conn, pid):
        base_url = receive(conn, 30, "simulator start")
        if not base_url.startswith(f"http://{HOST}:"):
            raise RuntimeError(f"the simulator is not on {HOST}: {base_url}")
        Control(base_url).wait_accepting()
        yield base_url, pid


# --- the daemon as a process ------------------------------------------------------------------


def daemon_env(**extra: str) -> dict[str, str]:
    """A small environment for `python -m monitor`: PATH, PYTHONPATH and the like, plus `extra`."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "PYTHONPATH", "VIRTUAL_ENV", "PYENV_VERSION")
    return {k: v for k, v in os.environ.items() if k in keep} | extra


def read_rss_kb(pid: int) -> tuple[int, int] | None:
    """(VmRSS, VmHWM) in kB, None when the process is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    values = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    if len(values) != 2:
        return None
    return values["VmRSS"], values["VmHWM"]


def stop_process(proc: subprocess.Popen[bytes], grace_s: float) -> int | None:
    """SIGTERM, then SIGKILL after `grace_s`; the exit code, None when it had to be killed."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
            return None
    return proc.returncode


NOTABLE = ("provmon running", "stopping", "stopped", "cancelled", "waiting")


@dataclass
class DaemonLog:
    """Reads the daemon's JSON log lines (`--log-format json`) as they are written."""

    path: Path
    offset: int = 0
    partial: str = ""
    statuses: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    notable: list[tuple[float, str, str]] = field(default_factory=list)
    levels: dict[str, int] = field(default_factory=dict)
    other: list[str] = field(default_factory=list)

    def read(self, now_s: float) -> None:
        with self.path.open("rb") as f:
            f.seek(self.offset)
            data = f.read()
        self.offset += len(data)
        text = self.partial + data.decode(errors="replace")
        *lines, self.partial = text.split("\n")
        for line in lines:
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                self.other.append(line)
                continue
            level = str(entry.get("level", "?"))
            self.levels[level] = self.levels.get(level, 0) + 1
            message = str(entry.get("message", ""))
            if message.startswith("status:"):
                self.statuses.append((now_s, entry))
            elif level in ("warning", "error", "critical") or message.startswith(NOTABLE):
                self.notable.append((now_s, level, message))

    @property
    def last(self) -> dict[str, Any] | None:
        return self.statuses[-1][1] if self.statuses else None

    def summary(self, limit: int = 40) -> list[str]:
        """Each distinct notable message (first 100 characters) once, with its count and the
        time it first appeared, in order of appearance; then lines that were not JSON."""
        seen: dict[str, int] = {}
        first_at: dict[str, float] = {}
        for t, _, message in self.notable:
            key = message[:100]
            seen[key] = seen.get(key, 0) + 1
            first_at.setdefault(key, t)
        lines = [
            f"{first_at[m]:6.0f}s  ×{n:<4} {m}"
            for m, n in sorted(seen.items(), key=lambda kv: first_at[kv[0]])
        ][:limit]
        return lines + [f"(not JSON) {line[:120]}" for line in self.other[:5]]


# --- PostgreSQL -------------------------------------------------------------------------------


def pg_version() -> str:
    versions = sorted(p.name for p in Path("/etc/postgresql").iterdir() if p.is_dir())
    if not versions:
        raise RuntimeError("no cluster under /etc/postgresql")
    return versions[-1]


def pg_ready() -> bool:
    cmd = ["pg_isready", "-q", "-h", HOST, "-p", str(PG_PORT)]
    return subprocess.run(cmd, check=False, timeout=30).returncode == 0


def pg_ctl(action: str) -> None:
    cmd = ["pg_ctlcluster", "--skip-systemctl-redirect", pg_version(), "main", action]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {done.returncode}: {done.stderr.strip()}")


def pg_wait_ready(timeout_s: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pg_ready():
            return True
        time.sleep(0.5)
    return False


def ensure_pg_running() -> None:
    """Whatever happened, leave PostgreSQL running: other people's tests use it."""
    if pg_ready():
        return
    out("cleanup: PostgreSQL is down, starting it")
    try:
        pg_ctl("start")
    except RuntimeError as exc:
        out(f"cleanup: {exc}")
    if not pg_wait_ready():
        out("cleanup: PostgreSQL DID NOT COME BACK: start it by hand (pg_ctlcluster ... start)")


async def pg_admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.contextmanager
def temp_database(prefix: str) -> Iterator[str]:
    """A fresh PostgreSQL database `<prefix>_<hex>`; PostgreSQL started again if it is down,
    and the database dropped, on the way out."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    asyncio.run(pg_admin(f"CREATE DATABASE {name}"))
    try:
        yield name
    finally:
        ensure_pg_running()
        try:
            asyncio.run(pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        except (OSError, asyncpg.PostgresError) as exc:
            out(f"cleanup: could not drop database {name}: {exc}")
