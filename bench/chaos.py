"""Chaos: `provmon run` against the hostile simulator for `--minutes` (default 30), with
PostgreSQL refused and black-holed behind a TCP proxy and the daemon kill -9'd and restarted.

Issue 10, item 8. The parts:
- the simulator in its own process: one provider per quirk or fault (`quirks_farm`), a flaky
  provider whose scheduled outages (HTTP 503, every `--flaky-every` s) open and resolve
  incidents, and `--steady` healthy targets for volume;
- the daemon, `python -m monitor --log-format json run` (a subprocess with PYTHONPATH set to this
  checkout) on a fresh PostgreSQL database that it reaches only through a TCP proxy in this
  process (tests/tcpproxy.py), which at random refuses (cut) or black-holes (hang) for 10–60 s;
- a kill -9 of the daemon at random every few minutes, and a restart 0.5–5 s later (a start that
  fails, e.g. during a database fault, is retried every 2 s);
- a webhook receiver in this process (tests/receivers.py) counting every notification.
The last `--settle` seconds have no faults and no kills, then the daemon gets SIGTERM.

Printed at the end:
- probes: the simulator's ground truth (/_sim/truth) against the stored rows, matched per target
  by time (at most one probe per target is in flight). A request is *measured* when the
  simulator finished it (served it to the end, or saw the client give up: a timeout), unless a
  kill -9 came before the daemon could have made it durable: a request that arrived before a
  kill and finished less than ack_s (2 s) before it is in flight, not measured. Lost = measured
  and not stored; duplicated = stored twice.
- notifications: outbox rows (expected) against deliveries (received), by Idempotency-Key; lost
  and duplicated (at-least-once allows duplicates after a kill -9: printed separately, by key).
- the daemon's RSS per minute; as it restarts after each kill, "flat" is judged per life: the
  spread of each life's RSS at 60–90 s of age (no ratchet across restarts, replays and
  outages), and the growth from 2 minutes of age to the end of lives that reach 4 minutes.
Targets: 0 lost / 0 duplicated probes, 0 lost notifications, RSS within 10 %.

Only 127.0.0.1 is contacted. Everything is undone on exit, also on error, Ctrl-C or SIGTERM:
processes killed, PostgreSQL started if it is down, the database dropped, temp files removed.
CI never runs this.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
from bench_procs import (
    HOST,
    PG_PORT,
    REPO,
    Control,
    DaemonLog,
    daemon_env,
    ensure_pg_running,
    git_head,
    load,
    out,
    pg_ready,
    read_rss_kb,
    simulator,
    temp_database,
)
from chaos_tally import Kill, Tally, notifications, probes

from monitor.simulator import DEMO_MODEL, Farm, ProviderProfile, ServedModel, quirks_farm
from tests.receivers import webhook_receiver
from tests.tcpproxy import TcpProxy

ACK_S = 2.0  # the writer's default ack_s: what a kill -9 may cost
STEADY_MODELS = 10  # models per steady provider


@dataclass(frozen=True, slots=True)
class Params:
    minutes: float
    seed: int
    steady: int
    interval_s: float
    kill_every_s: tuple[float, float]
    fault_gap_s: tuple[float, float]
    fault_s: tuple[float, float]
    flaky_every_s: float
    flaky_down_s: float
    settle_s: float
    repeat_s: float
    keep: Path | None

    @property
    def duration_s(self) -> float:
        return self.minutes * 60


# --- the farm and the config ------------------------------------------------------------------


def build_farm(p: Params) -> Farm:
    """Every quirk and fault, a flaky provider with recurring outages, and steady ones."""
    hostile = quirks_farm(p.seed).profiles
    windows = []
    start = 30.0
    while start < p.duration_s + 600:
        windows.append((start, start + p.flaky_down_s))
        start += p.flaky_every_s
    flaky = ProviderProfile(
        "flaky", "flaky", (ServedModel(DEMO_MODEL),), ttft_ms=80, ttft_sigma=0.3, tps=150,
        output_tokens=20, p_http_500=0.02, p_stream_error=0.01, p_cut=0.01,
        outages=tuple(windows), outage_mode="http_503",
    )  # fmt: skip
    steady = tuple(
        ProviderProfile(
            f"steady-{i:02d}",
            f"steady-{i:02d}",
            tuple(ServedModel(f"chaos/model-{m:02d}") for m in range(STEADY_MODELS)),
            ttft_ms=60,
            ttft_sigma=0.3,
            tps=200,
            tps_sigma=0.1,
            output_tokens=20,
        )
        for i in range(-(-p.steady // STEADY_MODELS))
    )
    targets = len(hostile) + 1 + p.steady
    expected = targets * (p.duration_s + 600) / p.interval_s * 1.5
    return Farm((*hostile, flaky, *steady), seed=p.seed, max_truth=int(expected) + 10_000)


def target_list(p: Params, farm: Farm) -> list[tuple[str, str]]:
    """(provider, model) of every target: the farm's providers as configured."""
    out_: list[tuple[str, str]] = []
    for prof in farm.profiles:
        if prof.name.startswith("steady-"):
            continue
        out_.append((prof.name, DEMO_MODEL))
    n = 0
    for prof in farm.profiles:
        for m in prof.models if prof.name.startswith("steady-") else ():
            if n < p.steady:
                out_.append((prof.name, m.id))
                n += 1
    return out_


def config_text(
    p: Params, farm: Farm, sim_url: str, db_url: str, hook_url: str, workdir: Path
) -> str:
    lines = [
        'vantage = "chaos"',
        "[timeouts]",
        "connect_s = 2",
        "first_token_s = 3",
        "idle_s = 2",
        "total_s = 10",
        "[workloads.tiny]",
        "input_tokens = 10",
        "max_tokens = 20",
        "[database]",
        f'url = "{db_url}"',
        f'spill_path = "{workdir / "spill.jsonl"}"',
        "[schedule]",
        f"interval_s = {p.interval_s}",
        f"jitter_s = {p.interval_s / 10}",
        "status_every_s = 10",
        "drain_s = 10",
        "[alerts]",
        f"repeat_interval_s = {p.repeat_s}",
        "retry_base_s = 1",
        "[[alerts.channels]]",
        'name = "hook"',
        'type = "webhook"',
        f'url = "{hook_url}"',
        "[reports]",
        f'out_dir = "{workdir / "reports"}"',
    ]
    for provider, model in target_list(p, farm):
        lines += [
            "[[targets]]",
            'route = "direct"',
            f'model = "{model}"',
            f'provider = "{provider}"',
            f'base_url = "{sim_url}/{provider}/v1"',
            'workloads = ["tiny"]',
        ]
    return "\n".join(lines) + "\n"


# --- the daemon's lives -----------------------------------------------------------------------


@dataclass
class Daemon:
    """`provmon run`, started again after every kill; one log file for all its lives."""

    cmd: list[str]
    workdir: Path
    log: DaemonLog
    proc: subprocess.Popen[bytes] | None = None
    started_s: float = 0.0  # monotonic
    lives: int = 0
    failed_starts: list[tuple[float, int | None, str]] = field(default_factory=list)
    _said_before: int = 0  # "provmon running" lines before this life

    def _said_running(self) -> int:
        return sum(1 for _, _, m in self.log.notable if m.startswith("provmon running"))

    def start(self) -> None:
        self._said_before = self._said_running()
        with self.log.path.open("ab") as log_file:
            self.proc = subprocess.Popen(
                ["setpriv", "--pdeathsig", "KILL", "--", *self.cmd],  # dies with this process
                cwd=self.workdir,
                env=daemon_env(PYTHONPATH=str(REPO)),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
            )
        self.started_s = time.monotonic()
        self.lives += 1

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def said_running(self) -> bool:
        """This life has logged "provmon running" (it may have exited since)."""
        return self.proc is not None and self._said_running() > self._said_before

    def running(self) -> bool:
        return self.pid is not None and self.said_running()

    def kill9(self) -> int:
        assert self.proc is not None
        at_ns = time.monotonic_ns()
        self.proc.kill()
        self.proc.wait(10)
        self.proc = None
        return at_ns

    def terminate(self, grace_s: float) -> int | None:
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            return None
        finally:
            self.proc = None


@dataclass
class Run:
    t0: float = 0.0
    kills: list[Kill] = field(default_factory=list)
    faults: list[tuple[float, float, str]] = field(default_factory=list)  # start, end, kind
    rss: list[tuple[float, int, int]] = field(default_factory=list)  # (s, pid, kB)
    unexpected_exits: list[tuple[float, int | None]] = field(default_factory=list)
    exit_code: int | None = None
    stop_s: float = 0.0

    def now(self) -> float:
        return time.monotonic() - self.t0


async def drive(p: Params, daemon: Daemon, proxy: TcpProxy, run: Run) -> None:
    """The chaos itself: faults and kills at random until the settle period, then SIGTERM."""
    rng = random.Random(p.seed)
    run.t0 = time.monotonic()
    calm_at = p.duration_s - p.settle_s  # no new fault or kill from here
    next_kill = rng.uniform(*p.kill_every_s)
    next_fault = rng.uniform(*p.fault_gap_s)
    fault: tuple[float, float, str] | None = None
    restart_at: float | None = 0.0
    next_sample = next_progress = 0.0
    while (t := run.now()) < p.duration_s:
        daemon.log.read(t)
        if restart_at is not None and t >= restart_at:
            daemon.start()
            restart_at = None
        elif daemon.proc is not None and daemon.proc.poll() is not None:
            code = daemon.proc.returncode
            if daemon.said_running():
                run.unexpected_exits.append((t, code))
                out(f"  {t:6.0f}s  THE DAEMON EXITED BY ITSELF (exit {code}); restarting")
            else:
                tail = " | ".join(m for _, _, m in daemon.log.notable[-2:])[-200:]
                daemon.failed_starts.append((t, code, tail))
                out(f"  {t:6.0f}s  start failed (exit {code}): {tail[:120]}")
            daemon.proc = None
            restart_at = t + 2.0
        if daemon.running() and t >= next_kill and t < calm_at:
            life_s = time.monotonic() - daemon.started_s
            run.kills.append(Kill(t, daemon.kill9(), fault[2] if fault else None))
            out(f"  {t:6.0f}s  kill -9 after {life_s:.0f} s" + (f" ({fault[2]})" if fault else ""))
            restart_at = t + rng.uniform(0.5, 5.0)
            next_kill = t + rng.uniform(*p.kill_every_s)
        if fault is not None and t >= fault[1]:
            await (proxy.restore() if fault[2] == "cut" else _unhang(proxy))
            run.faults.append((fault[0], t, fault[2]))
            out(f"  {t:6.0f}s  database back after {t - fault[0]:.0f} s of {fault[2]}")
            fault = None
            next_fault = t + rng.uniform(*p.fault_gap_s)
        if fault is None and t >= next_fault and t < calm_at:
            kind = rng.choice(("cut", "hang"))
            fault = (t, min(t + rng.uniform(*p.fault_s), calm_at), kind)
            if kind == "cut":
                await proxy.cut()
            else:
                proxy.hang()
            out(f"  {t:6.0f}s  database {kind} for {fault[1] - t:.0f} s")
        if t >= next_sample:
            pid = daemon.pid if daemon.running() else None  # not setpriv before its exec
            sample = read_rss_kb(pid) if pid is not None else None
            if pid is not None and sample is not None:
                run.rss.append((t, pid, sample[0]))
            next_sample += 2.0
        if t >= next_progress:
            out(progress(t, daemon.log.last, run.rss[-1][2] if run.rss else None))
            next_progress += 60.0
        await asyncio.sleep(0.25)
    if fault is not None:  # the settle period came first
        await (proxy.restore() if fault[2] == "cut" else _unhang(proxy))
        run.faults.append((fault[0], run.now(), fault[2]))
    while not daemon.running():  # a restart still under way
        if daemon.proc is not None and daemon.proc.poll() is not None:
            daemon.proc = None
        if daemon.proc is None:
            daemon.start()
        await asyncio.sleep(0.5)
        daemon.log.read(run.now())
        if run.now() > p.duration_s + 120:
            raise RuntimeError("the daemon does not start again")
    stopping = time.monotonic()
    run.exit_code = await asyncio.to_thread(daemon.terminate, 70.0)
    run.stop_s = time.monotonic() - stopping
    daemon.log.read(run.now())
    out(f"  {run.now():6.0f}s  SIGTERM: exit {run.exit_code} after {run.stop_s:.1f} s")


async def _unhang(proxy: TcpProxy) -> None:
    proxy.unhang()


def progress(t: float, status: dict[str, Any] | None, rss_kb: int | None) -> str:
    rss = f"{rss_kb / 1024:5.1f} MB" if rss_kb else "    - MB"
    if status is None:
        return f"  {t:6.0f}s  rss {rss}  (no status line yet)"
    return (
        f"  {t:6.0f}s  rss {rss}  started {status['probes_started']:>6,}  stored "
        f"{status['stored']:>6,}  spilled {status['spilled']:>5,}  replayed "
        f"{status['replayed']:>5,}  queued {status['queued']:>4,}"
        + ("  DB DOWN" if status["db_down"] else "")
    )


# --- reading the outcome ----------------------------------------------------------------------


async def read_database(db_name: str) -> tuple[list[asyncpg.Record], list[asyncpg.Record], int]:
    conn = await asyncpg.connect(f"postgresql://postgres@{HOST}:{PG_PORT}/{db_name}", timeout=10)
    try:
        rows = await conn.fetch(
            "SELECT p.id, t.provider, t.model, p.started_at, p.outcome"
            " FROM probes p JOIN targets t ON t.id = p.target_id"
        )
        outbox = await conn.fetch(
            "SELECT o.id, o.transition, o.channel, o.status, o.attempts, i.provider_key,"
            " o.payload->'provmon'->>'idempotency_key' AS key"
            " FROM outbox o LEFT JOIN (SELECT i.id, t.provider AS provider_key FROM incidents i"
            " LEFT JOIN targets t ON t.id = i.target_id) i ON i.id = o.incident_id"
        )
        incidents = int(await conn.fetchval("SELECT count(*) FROM incidents"))
    finally:
        await conn.close()
    return rows, outbox, incidents


async def chaos(p: Params, db_name: str, sim_url: str, workdir: Path) -> Tally:
    run = Run()
    clock_offset_ns = time.time_ns() - time.monotonic_ns()
    proxy = TcpProxy(HOST, PG_PORT)
    await proxy.start()
    async with webhook_receiver() as rx:
        farm = build_farm(p)
        db_url = f"postgresql+asyncpg://postgres@{HOST}:{proxy.port}/{db_name}"
        cfg = workdir / "provmon.toml"
        cfg.write_text(config_text(p, farm, sim_url, db_url, rx.url, workdir))
        base = [sys.executable, "-m", "monitor"]
        up = await asyncio.to_thread(
            subprocess.run,
            [*base, "db", "upgrade", "-c", str(cfg)],
            cwd=workdir,
            env=daemon_env(PYTHONPATH=str(REPO)),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if up.returncode != 0:
            raise RuntimeError(f"provmon db upgrade failed: {up.stderr.strip()}")
        daemon = Daemon(
            [*base, "--log-format", "json", "run", "-c", str(cfg)],
            workdir,
            DaemonLog(workdir / "daemon.log"),
        )
        (workdir / "daemon.log").touch()
        n_targets = len(target_list(p, farm))
        out(f"{n_targets} targets every {p.interval_s:g} s; database via proxy :{proxy.port}")
        try:
            await drive(p, daemon, proxy, run)
        finally:
            if daemon.proc is not None:
                daemon.proc.kill()
                daemon.proc.wait(10)
            await proxy.cut()
            if p.keep is not None:
                with contextlib.suppress(OSError):
                    shutil.copyfile(workdir / "daemon.log", p.keep / "daemon.log")
        truth = await asyncio.to_thread(Control(sim_url).truth)
        keys = [d.key for d in rx.deliveries]
    rows, outbox, incidents = await read_database(db_name)
    spill = workdir / "spill.jsonl"
    return Tally(
        probes=probes(truth, rows, run.kills, clock_offset_ns, ACK_S),
        notices=notifications(outbox, keys, incidents),
        samples=run.rss,
        kills=run.kills,
        faults=run.faults,
        failed_starts=daemon.failed_starts,
        unexpected_exits=run.unexpected_exits,
        exit_code=run.exit_code,
        stop_s=run.stop_s,
        spill_left=spill.stat().st_size if spill.exists() else 0,
        rejected=(workdir / "spill.jsonl.rejected").exists(),
        targets=n_targets,
        run_t0_ns=int(run.t0 * 1e9) + clock_offset_ns,
        log_levels=daemon.log.levels,
        log_lines=daemon.log.summary(),
        final_status=daemon.log.last,
    )


def parse_args(argv: list[str] | None) -> Params:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0, help="length of the run (default 30)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--steady", type=int, default=100, help="healthy targets for volume")
    ap.add_argument("--interval", type=float, default=5.0, help="probe interval, s")
    ap.add_argument("--settle", type=float, default=60.0, help="calm seconds at the end")
    ap.add_argument("--flaky-every", type=float, default=150.0)
    ap.add_argument("--keep", type=Path, help="copy the daemon's log into this folder")
    a = ap.parse_args(argv)
    if a.minutes * 60 <= a.settle + 60 or a.interval < 1 or a.steady < 0:
        ap.error("need --minutes longer than --settle + 1 min, --interval ≥ 1, --steady ≥ 0")
    return Params(
        minutes=a.minutes,
        seed=a.seed,
        steady=a.steady,
        interval_s=a.interval,
        kill_every_s=(60.0, 180.0),
        fault_gap_s=(15.0, 60.0),
        fault_s=(10.0, 60.0),
        flaky_every_s=a.flaky_every,
        flaky_down_s=30.0,
        settle_s=a.settle,
        repeat_s=120.0,
        keep=a.keep,
    )


def _raise_interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    p = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)  # so `finally` cleans up on SIGTERM too
    out(
        f"chaos: {p.minutes:g} min, seed {p.seed}; kill -9 every {p.kill_every_s[0]:g}–"
        f"{p.kill_every_s[1]:g} s; database cut or black-holed {p.fault_s[0]:g}–{p.fault_s[1]:g} s"
        f" every {p.fault_gap_s[0]:g}–{p.fault_gap_s[1]:g} s; calm for the last {p.settle_s:g} s"
    )
    out(f"load average {load()} ({os.cpu_count()} CPUs); HEAD {git_head()}")
    if not pg_ready():
        out(f"PostgreSQL on {HOST}:{PG_PORT} is not running: start it first")
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="provmon-chaos-"))
    try:
        with temp_database("provmon_chaos") as db_name, simulator(build_farm(p), None) as sim:
            out(f"simulator on {sim[0]} (pid {sim[1]}); database {db_name}; workdir {workdir}")
            tally = asyncio.run(chaos(p, db_name, sim[0], workdir))
        return tally.report(ACK_S)
    finally:
        ensure_pg_running()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
