"""Ingest rate: batched probe inserts into SQLite and PostgreSQL, through the store and the writer.

Target (issue): ≥ 10,000 probe rows/s into each database. For each database it measures two paths:

- store: `Store.insert_probes` called with batches of `--batch` records (the writer's maximum
  batch is 5,000), one after another: probe rows plus their hourly rollups, one transaction each;
- writer: `ProbeWriter.submit` for every record, then `close()` (the daemon's path: queue, batching,
  store), timed from the first submit until `close()` returns. The producer keeps the writer's
  queue under its bound, so nothing spills.

Records are realistic: 200 targets (50 models × 4 providers, both routes), three workloads, a
mix of outcomes (~88 % ok, the rest rate limits, 5xx, timeouts, connection and stream errors),
log-normal timings, in time order across `--hours` hours, so every batch updates hundreds of
existing rollup rows. After each run the rows and the rollups' `n` are counted.

Each run gets a fresh database: a temp SQLite file, or `CREATE DATABASE provmon_bench_<hex>` on
the local PostgreSQL, dropped afterwards (also on error). Nothing but 127.0.0.1 is contacted.
When a target is missed, a slice of that database's store path is run again and measured (unless
`--no-profile`): time per batch by statement from SQLAlchemy's cursor events (driver + database),
the rest being Python in the event loop, then cProfile of the event loop's thread by area.
The writer path here has no `on_stored` hook; the daemon's writer also wakes the alert evaluator.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import math
import os
import pstats
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import asyncpg
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from monitor.results import Outcome, ProbeResult, TokenSource
from monitor.spill import SpillFile
from monitor.storage.database import make_engine, upgrade
from monitor.storage.schema import ProbeRow, RollupRow
from monitor.storage.store import Store
from monitor.writer import ProbeWriter

TARGET_ROWS_PER_S = 10_000
PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/test"
PG_URL_BASE = "postgresql+asyncpg://postgres@127.0.0.1:5432"
T0 = datetime(2026, 11, 16, 0, 0, tzinfo=UTC)
WORKLOADS = (("heartbeat", 10, 1), ("short", 100, 300), ("long", 1000, 1000))
# (outcome, error kinds, weight)
OUTCOME_MIX: tuple[tuple[Outcome, tuple[str | None, ...], float], ...] = (
    (Outcome.OK, (None,), 0.88),
    (Outcome.RATE_LIMITED, ("http.429",), 0.03),
    (Outcome.SERVER_ERROR, ("http.500", "http.502", "http.503"), 0.03),
    (Outcome.TIMEOUT, ("timeout.ttft", "timeout.idle", "timeout.total"), 0.02),
    (Outcome.CONNECTION_ERROR, ("conn.refused", "conn.reset"), 0.01),
    (Outcome.STREAM_ERROR, ("stream.cut", "stream.error", "stream.malformed_json"), 0.02),
    (Outcome.EMPTY_RESPONSE, ("empty",), 0.005),
    (Outcome.CLIENT_ERROR, ("http.402", "http.404"), 0.005),
)

Record = tuple[str, ProbeResult]


# --- realistic records ----------------------------------------------------------------------


def targets(n: int) -> list[tuple[str, str, str]]:
    """`n` (model, provider, route): 4 providers per model, alternating direct and openrouter."""
    return [
        (f"bench-author/model-{i // 4:03d}", f"Provider{i % 4}", ("direct", "openrouter")[i % 2])
        for i in range(n)
    ]


def make_records(n: int, n_targets: int, hours: float, seed: int) -> list[Record]:
    """`n` probes in time order: target after target, workload after workload, over `hours`."""
    rng = random.Random(seed)
    keys = targets(n_targets)
    step_s = hours * 3600 / n
    outcomes = [o for o, _, _ in OUTCOME_MIX]
    weights = [w for _, _, w in OUTCOME_MIX]
    kinds = {o: k for o, k, _ in OUTCOME_MIX}
    out: list[Record] = []
    for i in range(n):
        model, provider, route = keys[i % n_targets]
        workload, input_tokens, max_tokens = WORKLOADS[(i // n_targets) % len(WORKLOADS)]
        started_at = T0 + timedelta(seconds=i * step_s)
        outcome = rng.choices(outcomes, weights)[0]
        common = {
            "model": model,
            "provider": provider,
            "route": route,
            "vantage": "bench",
            "workload": workload,
            "started_at": started_at,
            "outcome": outcome,
            "input_tokens": input_tokens,
        }
        if outcome is Outcome.OK:
            tokens = max(1, min(max_tokens, int(rng.lognormvariate(5.0, 0.6))))
            ttft_ms = rng.lognormvariate(6.0, 0.5)
            decode_tps = rng.lognormvariate(4.3, 0.4)
            latency_ms = ttft_ms + (tokens - 1) / decode_tps * 1000
            result = ProbeResult(
                **common,
                http_status=200,
                ttft_ms=ttft_ms,
                ttfa_ms=ttft_ms * rng.uniform(1.0, 1.3),
                latency_ms=latency_ms,
                output_tokens=tokens,
                token_source=TokenSource.USAGE,
                decode_tps=decode_tps if tokens > 1 else None,
                e2e_tps=tokens / latency_ms * 1000,
                chunks=max(1, tokens // rng.choice((1, 2, 3))),
                cost_usd=(input_tokens + tokens) * 0.5e-6,
                finish_reason="stop" if tokens < max_tokens else "length",
                served_by=provider if route == "openrouter" else None,
            )
        else:
            kind = rng.choice(kinds[outcome])
            status = int(kind.split(".")[1]) if kind and kind.startswith("http.") else None
            result = ProbeResult(
                **common,
                error_kind=kind,
                error_message=f"{kind}: upstream said no ({rng.randrange(1000)})",
                http_status=status,
                retry_after_s=float(rng.randint(1, 30)) if status == 429 else None,
            )
        out.append((uuid.UUID(int=rng.getrandbits(128)).hex, result))
    return out


# --- fresh databases ------------------------------------------------------------------------


def load() -> str:
    """The 1, 5 and 15 minute load averages: other work on the machine skews the numbers."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def git_head() -> str:
    repo = Path(__file__).resolve().parents[1]
    git = ["git", "-C", str(repo)]
    head = subprocess.run(
        [*git, "log", "-1", "--format=%h %s"], check=False, capture_output=True, text=True
    ).stdout.strip()[:72]
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "--untracked-files=no", "monitor"],
        check=False,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return head + (" (+ uncommitted changes in monitor/)" if dirty else "")


def remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


@contextlib.asynccontextmanager
async def fresh_database(kind: str, workdir: Path) -> AsyncIterator[str]:
    """A migrated, empty database of its own; yields its URL and removes it afterwards."""
    if kind == "sqlite":
        path = workdir / f"ingest-{uuid.uuid4().hex[:8]}.db"
        try:
            yield f"sqlite+aiosqlite:///{path}"
        finally:
            remove_sqlite(path)
        return
    name = f"provmon_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=10)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
        try:
            yield f"{PG_URL_BASE}/{name}"
        finally:
            await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()


async def counts(engine: AsyncEngine) -> tuple[int, int, int]:
    """(probe rows, distinct probe ids, sum of rollups' n)."""
    async with engine.connect() as conn:
        rows = int(await conn.scalar(select(func.count()).select_from(ProbeRow)) or 0)
        ids = int(await conn.scalar(select(func.count(func.distinct(ProbeRow.id)))) or 0)
        n = int(await conn.scalar(select(func.coalesce(func.sum(RollupRow.n), 0))) or 0)
    return rows, ids, n


# --- the two paths --------------------------------------------------------------------------


@dataclass(slots=True)
class Run:
    db: str
    path: str
    rows: int
    elapsed_s: float
    batch_ms: list[float]
    stored: int
    distinct: int
    rollup_n: int
    note: str = ""

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def consistent(self) -> bool:
        return self.stored == self.rows == self.distinct == self.rollup_n


def percentile(values: Sequence[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round((len(ordered) - 1) * p / 100))]


async def store_path(
    store: Store, records: Sequence[Record], batch: int
) -> tuple[float, list[float]]:
    batch_ms = []
    start = time.perf_counter()
    for i in range(0, len(records), batch):
        t = time.perf_counter()
        await store.insert_probes(records[i : i + batch])
        batch_ms.append((time.perf_counter() - t) * 1000)
    return time.perf_counter() - start, batch_ms


async def writer_path(
    store: Store, records: Sequence[Record], batch: int, workdir: Path
) -> tuple[float, str]:
    spill = SpillFile(workdir / f"spill-{uuid.uuid4().hex[:8]}.jsonl")
    max_queue = 20_000
    writer = ProbeWriter(store, spill, max_queue=max_queue, batch_max=batch)
    writer.start()
    start = time.perf_counter()
    try:
        i = 0
        while i < len(records):
            room = max_queue - 1 - writer.backlog  # stay under the bound: measure, not spill
            for _, result in records[i : i + room]:
                writer.submit(result)
            i += max(room, 0)
            await asyncio.sleep(0.001)
    finally:
        await writer.close()
    elapsed = time.perf_counter() - start
    spill.path.unlink(missing_ok=True)
    s = writer.stats
    note = f"inserted {s.inserted}, spilled {s.spilled}, db failures {s.db_failures}"
    return elapsed, note


async def run_one(
    kind: str, path: str, records: Sequence[Record], batch: int, workdir: Path
) -> Run:
    async with fresh_database(kind, workdir) as url:
        engine = make_engine(url)
        try:
            await upgrade(engine)
            store = Store(engine)
            await store.target_ids({r.target_key for _, r in records})  # as the daemon starts
            batch_ms: list[float] = []
            note = ""
            if path == "store":
                elapsed, batch_ms = await store_path(store, records, batch)
            else:
                elapsed, note = await writer_path(store, records, batch, workdir)
            stored, distinct, rollup_n = await counts(engine)
        finally:
            await engine.dispose()
    return Run(kind, path, len(records), elapsed, batch_ms, stored, distinct, rollup_n, note)


# Where the event loop's thread spends its time, by the file a function lives in (first match).
AREAS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("waiting: database server / aiosqlite thread", ("select.epoll", "{method 'poll'")),
    ("SQLAlchemy: building INSERT .. VALUES (coercion)", ("orm/bulk_persistence", "coercions")),
    ("SQLAlchemy: compiling statements", ("sql/compiler", "sql/crud", "sql/visitors")),
    ("SQLAlchemy: other (execution, results, types)", ("sqlalchemy",)),
    ("driver (asyncpg / aiosqlite)", ("asyncpg", "aiosqlite", "sqlite3")),
    ("provmon rollups (fold, merge, histograms)", ("monitor/rollup", "monitor/sketch")),
    ("provmon store (rows, ids)", ("monitor/storage",)),
    ("json", ("json/",)),
    ("asyncio and the rest", ("",)),
)


def area_of(where: str) -> str:
    for name, needles in AREAS:
        if any(n in where for n in needles):
            return name
    return AREAS[-1][0]


def summarize_profile(stats: pstats.Stats) -> list[tuple[str, float]]:
    """Own time (tottime) per area, seconds, largest first."""
    totals: dict[str, float] = {}
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, object]]
    raw = stats.stats  # type: ignore[attr-defined]
    for (filename, _line, name), (_cc, _nc, tottime, _ct, _callers) in raw.items():
        area = area_of(f"{filename}:{name}")
        totals[area] = totals.get(area, 0.0) + tottime
    return sorted(totals.items(), key=lambda kv: -kv[1])


def statement_kind(sql: str) -> str:
    """'INSERT probes', 'UPDATE rollups_hourly', ...: the verb and the table of a statement."""
    words = sql.split()
    verb = words[0].upper() if words else "?"
    upper = [w.upper() for w in words]
    for marker in ("INTO", "FROM", "UPDATE"):
        if marker in upper[: 60 if marker == "FROM" else 4]:
            i = upper.index(marker)
            if i + 1 < len(words):
                table = words[i + 1].strip('"(').split(".")[-1]
                return f"{verb} {table}"
    return verb


class StatementTimer:
    """Wall time per kind of statement, from SQLAlchemy's cursor events: what the driver and
    the database take (the wait for the server or aiosqlite's thread), apart from Python."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        sync = engine.sync_engine
        event.listen(sync, "before_cursor_execute", self._before)
        event.listen(sync, "after_cursor_execute", self._after)

    def _before(self, conn: Any, _cursor: Any, _sql: str, *_args: Any) -> None:
        conn.info.setdefault("bench_t", []).append(time.perf_counter())

    def _after(self, conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        t = conn.info["bench_t"].pop()
        self._add(statement_kind(sql), time.perf_counter() - t)

    def _add(self, kind: str, seconds: float) -> None:
        self.seconds[kind] = self.seconds.get(kind, 0.0) + seconds
        self.calls[kind] = self.calls.get(kind, 0) + 1


async def profile_slice(
    kind: str, records: Sequence[Record], batch: int, workdir: Path, top: int
) -> str:
    """Where the store path's time goes: the first half of `records` is inserted unmeasured (so
    rollup rows exist), the second half twice measured: statement times from cursor events
    (driver + database), then cProfile of the event loop's thread, whose "waiting" is the
    database (PostgreSQL's server, or SQLite in aiosqlite's thread)."""
    async with fresh_database(kind, workdir) as url:
        engine = make_engine(url)
        try:
            await upgrade(engine)
            store = Store(engine)
            await store.target_ids({r.target_key for _, r in records})
            quarter = len(records) // 4
            await store_path(store, records[: 2 * quarter], batch)
            timer = StatementTimer(engine)
            timed_s, _ = await store_path(store, records[2 * quarter : 3 * quarter], batch)
            event.remove(engine.sync_engine, "before_cursor_execute", timer._before)
            event.remove(engine.sync_engine, "after_cursor_execute", timer._after)
            profiler = cProfile.Profile()
            profiler.enable()
            elapsed, _ = await store_path(store, records[3 * quarter :], batch)
            profiler.disable()
        finally:
            await engine.dispose()
    out = io.StringIO()
    rows = quarter
    batches = max(1, math.ceil(rows / batch))
    out.write(
        f"{kind}, store path, rows {2 * quarter:,}–{3 * quarter:,} ({rows:,} rows, "
        f"{rows / timed_s:,.0f} rows/s): time per batch of {batch:,} by statement "
        "(driver + database, from cursor events):\n"
    )
    in_db = 0.0
    for name, seconds in sorted(timer.seconds.items(), key=lambda kv: -kv[1]):
        in_db += seconds
        out.write(
            f"  {seconds / batches * 1000:7.1f} ms  {seconds / timed_s:5.1%}  {name} "
            f"({timer.calls[name] / batches:g} per batch)\n"
        )
    rest = timed_s - in_db
    out.write(
        f"  {rest / batches * 1000:7.1f} ms  {rest / timed_s:5.1%}  Python in the event loop "
        "(SQLAlchemy, rollup fold/merge, JSON) and commit\n"
    )
    stats = pstats.Stats(profiler, stream=out)
    out.write(
        f"cProfile, {kind}, store path, the last {len(records) - 3 * quarter:,} rows in "
        f"{elapsed:.2f} s under the profiler; own time by area:\n"
    )
    areas = summarize_profile(stats)
    total = sum(t for _, t in areas) or 1.0
    for name, seconds in areas:
        out.write(f"  {seconds:7.2f} s  {seconds / total:5.1%}  {name}\n")
    out.write(f"top {top} functions by own time:\n")
    stats.sort_stats("tottime").print_stats(top)
    return strip_profile(out.getvalue())


def strip_profile(text: str) -> str:
    """pstats output without its blank lines and long site-packages prefixes."""
    lines = [line for line in text.splitlines() if line.strip()]
    return "\n".join(line.replace(sys.prefix + "/lib/python3.11/", "") for line in lines)


# --- report ---------------------------------------------------------------------------------


def fmt_row(run: Run) -> str:
    verdict = "ok" if run.rows_per_s >= TARGET_ROWS_PER_S else "MISSED"
    p50, p99 = percentile(run.batch_ms, 50), percentile(run.batch_ms, 99)
    lat = f"{p50:7.1f} {p99:7.1f}" if p50 is not None and p99 is not None else f"{'-':>7} {'-':>7}"
    check = "ok" if run.consistent else f"BAD ({run.stored}/{run.distinct}/{run.rollup_n})"
    return (
        f"{run.db:<10} {run.path:<6} {run.rows:>8,} {run.elapsed_s:>8.2f} {run.rows_per_s:>9,.0f}"
        f" {TARGET_ROWS_PER_S:>9,}  {verdict:<6}  {lat}  {check}"
    )


HEADER = (
    f"{'database':<10} {'path':<6} {'rows':>8} {'time_s':>8} {'rows/s':>9} {'target':>9}"
    f"  {'result':<6}  {'b_p50ms':>7} {'b_p99ms':>7}  rows=ids=rollup_n"
)


async def pg_available() -> str | None:
    try:
        conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        return f"{type(exc).__name__}: {exc}"
    await conn.close()
    return None


async def main_async(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="provmon-ingest-"))
    try:
        t = time.perf_counter()
        records = make_records(args.rows, args.targets, args.hours, args.seed)
        ok = sum(1 for _, r in records if r.outcome is Outcome.OK)
        keys = {(r.target_key, r.workload) for _, r in records}
        print(
            f"ingest: {args.rows:,} probes ({ok / args.rows:.0%} ok) of {args.targets} targets × "
            f"{len(WORKLOADS)} workloads ({len(keys)} series) over {args.hours:g} h, "
            f"batches of {args.batch:,}; built in {time.perf_counter() - t:.1f} s; "
            f"load average {load()} ({os.cpu_count()} CPUs)"
        )
        print(f"HEAD {git_head()}")
        dbs = list(args.db)
        if "postgresql" in dbs and (problem := await pg_available()) is not None:
            print(f"PostgreSQL at {PG_ADMIN_DSN} not reachable ({problem}): skipped")
            dbs.remove("postgresql")
        print(HEADER, flush=True)
        runs: list[Run] = []
        for kind in dbs:
            for path in args.path:
                run = await run_one(kind, path, records, args.batch, workdir)
                runs.append(run)
                print(fmt_row(run) + (f"  ({run.note})" if run.note else ""), flush=True)
        print(f"load average at the end: {load()} ({os.cpu_count()} CPUs)")
        missed = [r for r in runs if r.rows_per_s < TARGET_ROWS_PER_S]
        bad = [r for r in runs if not r.consistent]
        print(
            f"target ≥ {TARGET_ROWS_PER_S:,} rows/s per database and path: "
            + ("met" if not missed else f"MISSED by {len(missed)} of {len(runs)}")
            + ("" if not bad else f"; row/rollup counts WRONG in {len(bad)} runs")
        )
        if missed and args.profile:
            for kind in dict.fromkeys(r.db for r in missed):
                n = min(len(records), args.profile_rows)
                print()
                print(await profile_slice(kind, records[:n], args.batch, workdir, args.top))
        return 0 if not missed and not bad else 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument(
        "--batch", type=int, default=5_000, help="records per batch (the writer's own maximum)"
    )
    p.add_argument("--targets", type=int, default=200)
    p.add_argument("--hours", type=float, default=24.0, help="time span the probes cover")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--db", nargs="+", choices=("sqlite", "postgresql"), default=["sqlite", "postgresql"]
    )
    p.add_argument("--path", nargs="+", choices=("store", "writer"), default=["store", "writer"])
    p.add_argument(
        "--no-profile", dest="profile", action="store_false", help="no cProfile when missed"
    )
    p.add_argument("--profile-rows", type=int, default=40_000)
    p.add_argument("--top", type=int, default=25, help="functions to show per profile table")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # clean up (databases, files) on SIGTERM too
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
