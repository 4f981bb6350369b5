"""Processes for benchmarks: the simulator and clients each in a spawned, pinned process.

`simulator(farm)` serves a farm from its own process on 127.0.0.1 and yields its URL; `Control`
reads its `/_sim` endpoints; `child_process` runs any function in a fresh interpreter and always
kills it on the way out; `runq_wait_ns` tells how long a process waited for a CPU another process
held (load from outside the benchmark).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
import time
import urllib.request
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from monitor.simulator import Farm

HOST = "127.0.0.1"
NS_PER_MS = 1_000_000


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


def receive(conn: Connection, timeout_s: float, what: str) -> Any:
    """The child's answer, or RuntimeError when it is late or died."""
    if not conn.poll(timeout_s):
        raise RuntimeError(f"{what}: no answer within {timeout_s:g} s")
    try:
        return conn.recv()
    except EOFError:
        raise RuntimeError(f"{what}: the process died (see its traceback above)") from None


def _serve(conn: Connection, farm: Farm, cpu: int) -> None:
    """Child process: serve `farm` on an ephemeral loopback port, send its URL, run forever."""
    from monitor.simulator import Simulator, serve

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

    def first_token_lags_ms(self) -> list[float]:
        """How late the simulator wrote each first token against its plan (its own delay)."""
        return [
            (r["first_token_ns"] - r["arrival_ns"]) / NS_PER_MS - r["ttft_s"] * 1000
            for r in self._call("/_sim/truth")
            if r["first_token_ns"] is not None and r["ttft_s"] is not None
        ]


@contextlib.contextmanager
def simulator(farm: Farm, cpu: int) -> Iterator[tuple[str, int]]:
    """`farm` served from its own process on `cpu`; yields its base URL and pid once it accepts
    connections."""
    with child_process(_serve, farm, cpu) as (conn, pid):
        base_url = receive(conn, 30, "simulator start")
        if not base_url.startswith(f"http://{HOST}:"):
            raise RuntimeError(f"the simulator is not on {HOST}: {base_url}")
        Control(base_url).wait_accepting()
        yield base_url, pid
