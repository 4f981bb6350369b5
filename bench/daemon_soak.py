"""Daemon soak: `provmon run` against the simulator, both as separate processes, for minutes.

Issue: 1,000 targets at a 10 s interval for 10 minutes, and
- ≥ 99 % of scheduled probes start within 1 s of their slot plus jitter, as the daemon's scheduler
  counts it: (runs − late_over_1s) / (runs + missed) from the last status line;
- peak RSS (VmHWM) ≤ 200 MB, and RSS not growing more than 10 % from minute 2 to minute 10
  (mean VmRSS over the 30 s before each mark, sampled from /proc every 2 s);
- PostgreSQL stopped for 60 s in the middle and started again: zero probe rows lost or
  duplicated. After SIGTERM the daemon must exit 0; then rows in `probes` must equal its final
  `probes_started`, ids must be distinct, the rollups' `n` must add up to the row count, the
  spill file must be empty, and the simulator's count of fully served requests must match.

The simulator runs in a spawned process: `--providers` fast providers (TTFT 50–200 ms, 100–200
tokens/s, 5 output tokens, no faults), each serving enough models that every target is one
(model, provider) pair on the direct route. The daemon is `python -m monitor --log-format json
run` with a generated config and a fresh PostgreSQL database (`provmon_soak_<hex>`); its JSON
status lines (every `status_every_s`) are read from its stderr log. The script also reports the
per-target gaps between consecutive probe starts, taken from the database, as a cross-check of
punctuality that does not rely on the scheduler's own accounting.

Only 127.0.0.1 is contacted. Everything is undone on exit, also on error or Ctrl-C: both child
processes stopped (and killed with this process should it die), PostgreSQL started again if it
is down, the database dropped, temp files removed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import multiprocessing
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from types import FrameType
from typing import Any

import asyncpg
from bench_procs import (
    HOST,
    PG_PORT,
    DaemonLog,
    daemon_env,
    die_with_parent,
    ensure_pg_running,
    git_head,
    load,
    out,
    pg_ctl,
    pg_ready,
    pg_version,
    pg_wait_ready,
    read_rss_kb,
    stop_process,
    temp_database,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.simulator import Farm, ProviderProfile, ServedModel, run_simulator
from tests.factories import config_doc, direct_target, toml_text

PG_URL_BASE = f"postgresql+asyncpg://postgres@{HOST}:{PG_PORT}"

# Targets from the issue.
ON_TIME_MIN = 0.99
PEAK_RSS_MAX_MB = 200.0
RSS_GROWTH_MAX = 0.10
LATE_S = 1.0


@dataclass(frozen=True, slots=True)
class Params:
    targets: int
    duration_s: float
    interval_s: float
    jitter_s: float
    outage_s: float
    outage_at_s: float
    providers: int
    status_every_s: float
    progress_every_s: float
    sample_every_s: float
    drain_s: float
    seed: int
    log_copy: Path | None = None
    extra_env: tuple[tuple[str, str], ...] = ()  # extra environment for `provmon run`

    @property
    def models_per_provider(self) -> int:
        return math.ceil(self.targets / self.providers)

    @property
    def marks(self) -> tuple[float, float]:
        """When RSS is compared: minute 2 and the end (scaled down for short runs)."""
        return min(120.0, self.duration_s * 0.2), self.duration_s


# --- small helpers ----------------------------------------------------------------------------


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round((len(ordered) - 1) * p / 100))]


# --- the simulator process --------------------------------------------------------------------


def model_id(i: int) -> str:
    return f"soak/model-{i:03d}"


def provider_name(i: int) -> str:
    return f"Prov{i:02d}"


def build_farm(params: Params) -> Farm:
    rng = random.Random(params.seed)
    models = tuple(ServedModel(model_id(m)) for m in range(params.models_per_provider))
    profiles = tuple(
        ProviderProfile(
            provider_name(i),
            provider_name(i).lower(),
            models,
            ttft_ms=rng.uniform(50, 200),
            ttft_sigma=0.2,
            tps=rng.uniform(100, 200),
            tps_sigma=0.1,
            output_tokens=5,
        )
        for i in range(params.providers)
    )
    # Keep every record: the count is the cross-check (a few hundred bytes each).
    expected = params.targets * params.duration_s / params.interval_s
    return Farm(profiles, seed=params.seed, max_truth=int(expected * 2) + 10_000)


def simulator_main(params: Params, conn: Connection) -> None:
    """Child: serve the farm until SIGTERM, then send counts of what it served."""
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    farm = build_farm(params)

    async def main() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        async with run_simulator(farm, HOST, 0) as sim:
            conn.send(sim.base_url)
            await stop.wait()

    asyncio.run(main())
    closed: dict[str, int] = {}
    outcomes: dict[str, int] = {}
    for record in farm.truth:
        key = record.closed_by or "open"
        closed[key] = closed.get(key, 0) + 1
        outcomes[record.outcome.value] = outcomes.get(record.outcome.value, 0) + 1
    conn.send({"requests": len(farm.truth), "closed_by": closed, "outcomes": outcomes})
    conn.close()


@dataclass
class SimulatorProcess:
    proc: multiprocessing.process.BaseProcess
    conn: Connection
    base_url: str
    summary: dict[str, Any] | None = None

    def stop(self) -> None:
        if self.proc.is_alive():
            os.kill(self.proc.pid or 0, signal.SIGTERM)
            if self.conn.poll(30):
                with contextlib.suppress(EOFError, OSError):
                    self.summary = self.conn.recv()
            self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)
        self.conn.close()


@contextlib.contextmanager
def simulator_process(params: Params) -> Iterator[SimulatorProcess]:
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=simulator_main, args=(params, child), daemon=True)
    proc.start()
    child.close()
    sim: SimulatorProcess | None = None
    try:
        if not parent.poll(60):
            raise RuntimeError("the simulator did not start within 60 s")
        base_url = parent.recv()
        if not base_url.startswith(f"http://{HOST}:"):
            raise RuntimeError(f"the simulator is not on {HOST}: {base_url}")
        sim = SimulatorProcess(proc, parent, base_url)
        yield sim
    finally:
        if sim is not None:
            sim.stop()
        else:
            proc.kill()
            proc.join(5)
            parent.close()


# --- PostgreSQL -------------------------------------------------------------------------------


@dataclass
class DbCounts:
    rows: int
    distinct_ids: int
    rollup_n: int
    outcomes: dict[str, int]
    gaps: int
    gap_p50_s: float | None
    gap_p99_s: float | None
    gap_max_s: float | None
    gaps_over: int


async def count_database(name: str, gap_limit_s: float) -> DbCounts:
    conn = await asyncpg.connect(f"postgresql://postgres@{HOST}:{PG_PORT}/{name}", timeout=10)
    try:
        rows, distinct = await conn.fetchrow("SELECT count(*), count(DISTINCT id) FROM probes")
        rollup_n = await conn.fetchval("SELECT coalesce(sum(n), 0) FROM rollups_hourly")
        outcomes = {
            r["outcome"]: r["n"]
            for r in await conn.fetch(
                "SELECT outcome, count(*) AS n FROM probes GROUP BY outcome ORDER BY n DESC"
            )
        }
        gap = await conn.fetchrow(
            """
            SELECT count(*) AS n,
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY g) AS p50,
                   percentile_cont(0.99) WITHIN GROUP (ORDER BY g) AS p99,
                   max(g) AS mx,
                   count(*) FILTER (WHERE g > $1) AS over
            FROM (SELECT extract(epoch FROM started_at - lag(started_at)
                         OVER (PARTITION BY target_id, workload ORDER BY started_at))::float8 AS g
                  FROM probes) AS gaps
            WHERE g IS NOT NULL
            """,
            gap_limit_s,
        )
    finally:
        await conn.close()
    return DbCounts(
        int(rows),
        int(distinct),
        int(rollup_n),
        outcomes,
        int(gap["n"]),
        gap["p50"],
        gap["p99"],
        gap["mx"],
        int(gap["over"]),
    )


# --- the daemon process -----------------------------------------------------------------------


def config_text(params: Params, base_url: str, db_name: str, workdir: Path) -> str:
    pairs = [
        (model_id(m), provider_name(p))
        for m in range(params.models_per_provider)
        for p in range(params.providers)
    ][: params.targets]
    doc = config_doc(
        [
            direct_target(f"{base_url}/{provider.lower()}/v1", provider, model=model)
            | {"workloads": ["tiny"]}
            for model, provider in pairs
        ],
        database=f"{PG_URL_BASE}/{db_name}",
        spill=workdir / "spill.jsonl",
        vantage="soak",
        timeouts={"connect_s": 5, "first_token_s": 10, "idle_s": 5, "total_s": 30},
        workloads={"tiny": {"input_tokens": 10, "max_tokens": 5}},
        schedule={
            "interval_s": params.interval_s,
            "jitter_s": params.jitter_s,
            "status_every_s": params.status_every_s,
            "drain_s": params.drain_s,
        },
        # the weekly catch-up job writes here, never into the checkout
        reports={"out_dir": str(workdir / "reports")},
    )
    return toml_text(doc)


# --- the run ----------------------------------------------------------------------------------


@dataclass
class Observed:
    t0: float = 0.0
    rss: list[tuple[float, int]] = field(default_factory=list)  # (s since t0, VmRSS kB)
    hwm_kb: int = 0
    outage: tuple[float, float] | None = None  # (stopped at, started at), s since t0
    events: list[tuple[float, str]] = field(default_factory=list)
    exit_code: int | None = None
    stop_s: float = 0.0  # SIGTERM to exit


def mean_rss_mb(obs: Observed, mark_s: float, window_s: float) -> float | None:
    values = [kb for t, kb in obs.rss if mark_s - window_s <= t <= mark_s]
    return sum(values) / len(values) / 1024 if values else None


def progress_line(t: float, status: dict[str, Any] | None, rss_kb: int | None) -> str:
    rss = f"{rss_kb / 1024:6.1f} MB" if rss_kb else "     - MB"
    if status is None:
        return f"  {t:6.0f}s  rss {rss}  (no status line yet)"
    return (
        f"  {t:6.0f}s  rss {rss}  started {status['probes_started']:>7,}"
        f"  stored {status['stored']:>7,}  spilled {status['spilled']:>6,}"
        f"  replayed {status['replayed']:>6,}  queued {status['queued']:>5,}"
        f"  late>1s {status['late_over_1s']:>4}  missed {status['missed']:>3}"
        f"  p99 {status['lateness_p99_ms']:>6.0f} ms{'  DB DOWN' if status['db_down'] else ''}"
    )


def run_soak(params: Params, workdir: Path, obs: Observed, log_copy: Path | None) -> int:
    spill = workdir / "spill.jsonl"
    cfg_path = workdir / "provmon.toml"
    log_path = workdir / "daemon.log"
    with temp_database("provmon_soak") as db_name, simulator_process(params) as sim:
        cfg_path.write_text(config_text(params, sim.base_url, db_name, workdir))
        out(f"simulator on {sim.base_url}; database {db_name}; workdir {workdir}")
        run = [sys.executable, "-m", "monitor"]
        up = subprocess.run(
            [*run, "db", "upgrade", "-c", str(cfg_path)],
            cwd=workdir,
            env=daemon_env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if up.returncode != 0:
            raise RuntimeError(f"provmon db upgrade failed: {up.stderr.strip()}")
        log = DaemonLog(log_path)
        with log_path.open("wb") as log_file:
            daemon = subprocess.Popen(
                [*run, "--log-format", "json", "run", "-c", str(cfg_path)],
                cwd=workdir,
                env=daemon_env(**dict(params.extra_env)),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
                preexec_fn=die_with_parent,  # this process has no threads
            )
        try:
            result = drive(params, daemon, log, obs)
        except BaseException:
            out("the run failed; the daemon's last log lines:")
            for t, level, message in log.notable[-10:]:
                out(f"  {t:6.0f}s  {level:<8} {message[:200]}")
            for line in log.other[-10:]:
                out(f"  {line[:200]}")
            raise
        finally:
            code = stop_process(daemon, params.drain_s + 60)
            if obs.exit_code is None:
                obs.exit_code = code
            with contextlib.suppress(OSError):
                log.read(time.monotonic() - obs.t0)
            if log_copy is not None:
                with contextlib.suppress(OSError):
                    shutil.copyfile(log_path, log_copy)
        db = count_after(params, db_name)
        sim.stop()
        return report(params, obs, log, db, sim.summary, spill, result)


def count_after(params: Params, db_name: str) -> DbCounts:
    ensure_pg_running()
    gap_limit = params.interval_s + params.jitter_s + LATE_S
    return asyncio.run(count_database(db_name, gap_limit))


def drive(
    params: Params, daemon: subprocess.Popen[bytes], log: DaemonLog, obs: Observed
) -> dict[str, Any] | None:
    """Wait for the daemon to run, sample it, cut PostgreSQL, SIGTERM at the end."""
    started = time.monotonic()
    obs.t0 = started
    while not any(m.startswith("provmon running") for _, _, m in log.notable):
        if daemon.poll() is not None or time.monotonic() - started > 120:
            log.read(0.0)
            raise RuntimeError(
                f"the daemon did not start (exit {daemon.poll()}): "
                + " | ".join(m for _, _, m in log.notable[-5:])
                + " | ".join(log.other[-5:])
            )
        time.sleep(0.2)
        log.read(0.0)
    obs.t0 = time.monotonic()
    out(f"daemon pid {daemon.pid} running after {obs.t0 - started:.1f} s; t = 0 from here")
    next_sample = next_progress = 0.0
    outage_end = params.outage_at_s + params.outage_s
    stopped_at: float | None = None
    last_rss: int | None = None
    while True:
        t = time.monotonic() - obs.t0
        if daemon.poll() is not None:
            log.read(t)
            raise RuntimeError(f"the daemon exited early with {daemon.returncode}")
        if t >= next_sample:
            sample = read_rss_kb(daemon.pid)
            if sample is not None:
                last_rss = sample[0]
                obs.rss.append((t, sample[0]))
                obs.hwm_kb = max(obs.hwm_kb, sample[1])
            next_sample += params.sample_every_s
        log.read(t)
        if t >= next_progress:
            out(progress_line(t, log.last, last_rss))
            next_progress += params.progress_every_s
        if params.outage_s > 0 and stopped_at is None and t >= params.outage_at_s:
            pg_ctl("stop")
            stopped_at = time.monotonic() - obs.t0
            obs.events.append((stopped_at, "PostgreSQL stopped"))
            out(f"  {stopped_at:6.0f}s  PostgreSQL stopped (for {params.outage_s:g} s)")
        if stopped_at is not None and obs.outage is None and t >= outage_end:
            pg_ctl("start")
            ready = pg_wait_ready()
            back = time.monotonic() - obs.t0
            obs.outage = (stopped_at, back)
            obs.events.append((back, "PostgreSQL started" + ("" if ready else ", NOT READY")))
            out(f"  {back:6.0f}s  PostgreSQL started again (down {back - stopped_at:.0f} s)")
        if t >= params.duration_s:
            break
        time.sleep(0.25)
    final_sample = read_rss_kb(daemon.pid)
    if final_sample is not None:
        obs.hwm_kb = max(obs.hwm_kb, final_sample[1])
    before_stop = log.last
    sigterm = time.monotonic()
    obs.exit_code = stop_process(daemon, params.drain_s + 60)
    obs.stop_s = time.monotonic() - sigterm
    log.read(time.monotonic() - obs.t0)
    out(f"  SIGTERM at {sigterm - obs.t0:.0f}s: exit {obs.exit_code} after {obs.stop_s:.1f} s")
    return before_stop


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def report(
    params: Params,
    obs: Observed,
    log: DaemonLog,
    db: DbCounts,
    sim_summary: dict[str, Any] | None,
    spill: Path,
    before_stop: dict[str, Any] | None,
) -> int:
    final = log.last or {}
    started = int(final.get("probes_started", 0))
    runs = int(final.get("runs", 0))
    late = int(final.get("late_over_1s", 0))
    missed = int(final.get("missed", 0))
    on_time = (runs - late) / (runs + missed) if runs + missed else 0.0
    peak_mb = obs.hwm_kb / 1024
    mark_a, mark_b = params.marks
    window = min(30.0, mark_a / 2)
    rss_a, rss_b = mean_rss_mb(obs, mark_a, window), mean_rss_mb(obs, mark_b, window)
    growth = (rss_b - rss_a) / rss_a if rss_a and rss_b else None
    lost = max(0, started - db.distinct_ids)
    duplicated = (db.rows - db.distinct_ids) + max(0, db.distinct_ids - started)
    spill_left = spill.stat().st_size if spill.exists() else 0
    served = (sim_summary or {}).get("closed_by", {}).get("server")
    rows: list[tuple[str, str, str, bool]] = [
        (
            f"probes started ≤ {LATE_S:g} s after slot+jitter",
            f"{on_time:.3%}",
            f"≥ {ON_TIME_MIN:.0%}",
            on_time >= ON_TIME_MIN,
        ),
        ("peak RSS (VmHWM)", f"{peak_mb:.1f} MB", f"≤ {PEAK_RSS_MAX_MB:.0f} MB", peak_mb <= 200),
        (
            f"RSS growth {mark_a / 60:g} min → {mark_b / 60:g} min",
            "-" if growth is None else f"{growth:+.1%}",
            f"≤ {RSS_GROWTH_MAX:.0%}",
            growth is not None and growth <= RSS_GROWTH_MAX,
        ),
        ("probe rows lost", f"{lost:,}", "0", lost == 0 and db.rows > 0),
        ("probe rows duplicated", f"{duplicated:,}", "0", duplicated == 0),
        ("exit code after SIGTERM", str(obs.exit_code), "0", obs.exit_code == 0),
        ("rollups_hourly n sum − rows", f"{db.rollup_n - db.rows:,}", "0", db.rollup_n == db.rows),
        ("left in the spill file", f"{spill_left:,} B", "0", spill_left == 0),
    ]
    if served is not None:
        rows.append(("rows − requests served", f"{db.rows - served:,}", "0", db.rows == served))
    out()
    out(f"{'figure':<44} {'value':>12}  {'target':<9} result")
    for name, value, target, ok in rows:
        out(f"{name:<44} {value:>12}  {target:<9} {verdict(ok)}")
    all_ok = all(ok for *_, ok in rows)

    out()
    out("details:")
    expected_slots = params.targets * params.duration_s / params.interval_s
    out(
        f"  scheduler: {runs:,} runs, {late:,} late > 1 s, {missed:,} missed, "
        f"skipped busy {final.get('skipped_busy', 0):,}; lateness p50 "
        f"{final.get('lateness_p50_ms', 0):.1f} ms, p99 {final.get('lateness_p99_ms', 0):.1f} ms"
    )
    out(
        f"  probes started {started:,} in {params.duration_s:g} s = "
        f"{started / params.duration_s:.1f}/s; {params.targets:,} targets every "
        f"{params.interval_s:g} s would be {expected_slots:,.0f} "
        f"({params.targets / params.interval_s:.1f}/s): {started / expected_slots:.1%}"
    )
    if before_stop is not None:
        out(
            f"  before SIGTERM: {before_stop['probes_started']:,} started, "
            f"{before_stop['stored']:,} stored, {before_stop['queued']:,} queued"
        )
    out(
        f"  writer (final): stored {final.get('stored', 0):,}, spilled "
        f"{final.get('spilled', 0):,}, replayed {final.get('replayed', 0):,}, "
        f"db_down {final.get('db_down')}"
    )
    out(
        f"  database: {db.rows:,} rows, {db.distinct_ids:,} distinct ids, rollups n "
        f"{db.rollup_n:,}; outcomes " + ", ".join(f"{k} {v:,}" for k, v in db.outcomes.items())
    )
    if db.gap_p50_s is not None and db.gap_p99_s is not None and db.gap_max_s is not None:
        limit = params.interval_s + params.jitter_s + LATE_S
        out(
            f"  per-target gap between probe starts (from the database): p50 "
            f"{db.gap_p50_s:.2f} s, p99 {db.gap_p99_s:.2f} s, max {db.gap_max_s:.2f} s; "
            f"{db.gaps_over:,} of {db.gaps:,} over {limit:g} s (interval + jitter + 1 s)"
        )
    if sim_summary is not None:
        out(
            f"  simulator: {sim_summary['requests']:,} requests; closed by "
            + ", ".join(f"{k} {v:,}" for k, v in sim_summary["closed_by"].items())
            + "; outcomes "
            + ", ".join(f"{k} {v:,}" for k, v in sim_summary["outcomes"].items())
        )
    if obs.outage is not None:
        out(
            f"  PostgreSQL down from {obs.outage[0]:.0f} s to {obs.outage[1]:.0f} s "
            f"({obs.outage[1] - obs.outage[0]:.0f} s)"
        )
    if rss_a is not None and rss_b is not None:
        out(
            f"  RSS mean over {window:g} s before {mark_a:g} s: {rss_a:.1f} MB, before "
            f"{mark_b:g} s: {rss_b:.1f} MB; sampled max "
            f"{max(kb for _, kb in obs.rss) / 1024:.1f} MB"
        )
    if obs.rss:
        step = max(1, len(obs.rss) // 10)
        out(
            "  RSS over time: "
            + ", ".join(f"{t:.0f}s {kb / 1024:.0f}" for t, kb in obs.rss[::step])
            + " MB"
        )
    out(f"  daemon log lines by level: {dict(sorted(log.levels.items()))}")
    for line in log.summary():
        out(f"    {line}")
    out(f"  load average at the end: {load()}")
    out()
    out("all targets met" if all_ok else "SOME TARGETS MISSED")
    return 0 if all_ok else 1


def parse_args(argv: list[str] | None) -> Params:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke run: 200 targets, 90 s, 15 s cut")
    p.add_argument("--targets", type=int)
    p.add_argument("--duration", type=float, help="seconds of probing (default 600)")
    p.add_argument("--outage", type=float, help="seconds PostgreSQL is down (0: none)")
    p.add_argument("--outage-at", type=float, help="when it stops (default: centred)")
    p.add_argument("--interval", type=float, default=10.0)
    p.add_argument("--jitter", type=float, default=1.0)
    p.add_argument("--providers", type=int, default=50)
    p.add_argument("--status-every", type=float)
    p.add_argument("--progress-every", type=float)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--log-copy", type=Path, help="copy the daemon's log here at the end")
    p.add_argument(
        "--daemon-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the daemon, e.g. MALLOC_ARENA_MAX=2 (repeatable)",
    )
    args = p.parse_args(argv)
    quick = args.quick
    targets = args.targets or (200 if quick else 1000)
    duration = args.duration or (90.0 if quick else 600.0)
    outage = args.outage if args.outage is not None else (15.0 if quick else 60.0)
    outage_at = args.outage_at if args.outage_at is not None else (duration - outage) / 2
    if targets < 1 or duration <= 0 or outage < 0 or outage_at + outage >= duration:
        p.error("need targets ≥ 1, duration > 0 and the outage inside the run")
    params = Params(
        targets=targets,
        duration_s=duration,
        interval_s=args.interval,
        jitter_s=args.jitter,
        outage_s=outage,
        outage_at_s=outage_at,
        providers=min(args.providers, targets),
        status_every_s=args.status_every or (5.0 if quick else 10.0),
        progress_every_s=args.progress_every or (15.0 if quick else 60.0),
        sample_every_s=2.0,
        drain_s=30.0,
        seed=args.seed,
        log_copy=args.log_copy,
        extra_env=tuple(tuple(kv.split("=", 1)) for kv in args.daemon_env if "=" in kv),
    )
    return params


def _raise_interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    params = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)  # so `finally` cleans up on SIGTERM too
    out(
        f"daemon soak: {params.targets:,} targets ({params.providers} providers × "
        f"{params.models_per_provider} models, direct) every {params.interval_s:g} s "
        f"(jitter {params.jitter_s:g} s) for {params.duration_s:g} s; PostgreSQL "
        f"{pg_version()} stopped at {params.outage_at_s:g} s for {params.outage_s:g} s"
    )
    out(f"load average {load()} ({os.cpu_count()} CPUs); HEAD {git_head()}")
    if not pg_ready():
        out(f"PostgreSQL on {HOST}:{PG_PORT} is not running: start it first")
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="provmon-soak-"))
    obs = Observed()
    try:
        return run_soak(params, workdir, obs, params.log_copy)
    finally:
        ensure_pg_running()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
