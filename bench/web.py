"""Live pages: request times of `provmon serve`, and the probe TTFT error while it is loaded.

Two SQLite databases are filled through the real store (probes with their rollups):
- one model with 20 targets (OpenRouter route), 1 probe per target per minute for 30 days
  (864,000 probes, 14,400 hourly rollups), alert states from one evaluator pass;
- 200 models × 3 targets, 1 probe per target per minute for the last day (864,000 probes).

The web server runs as `provmon run` runs it, in its own process (on CPU 1 with two cores);
this process is the client (CPU 0) and times sequential requests (after a warm-up) of:
the model page HTML, its endpoints JSON, its 30-day series (one chart's request) and 24-hour
series, and `/` with 200 models — with the reuse of answers off, so every request is computed
(the server's history cache on, as deployed; the first request shows it cold). Targets
(issue 12): model page and endpoints p99 ≤ 200 ms, `/` p99 ≤ 300 ms, the 30-day series
≤ 300 ms.

Then bench/probe_accuracy.py's measure — TTFT error = measured ttft_ms − the simulator's stamped
send time — at 1 stream (sequential) and 100 concurrent streams, three ways: unloaded; while
another process loads the model page 20 times a second (at most 20 requests in flight) from
the web server as `provmon run` starts it (its WebProcess sidecar: its own process at nice +10,
answers reused for a second); and, for
comparison, with that web server in the prober's own event loop (what the separate process
avoids). Only 127.0.0.1 is contacted; every child is killed on exit.

Usage: flock /tmp/provmon-bench.lock python bench/web.py [--requests 200] [--keep DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench_procs import child_process, pin, receive, simulator
from probe_accuracy import (
    CLIENT_CPU,
    SERVER_CPU,
    LevelRun,
    Params,
    bench_farm,
    make_ours,
    run_client,
    run_waves,
)
from report_scale import BATCH, probe

from monitor.stats import percentile
from monitor.web.server import MEMO_S

BIG_MODEL = "bench/model-20"
BIG_PROVIDERS = [f"Provider{i:02d}" for i in range(20)]
SMALL_MODELS = [f"bench/m{i:03d}" for i in range(200)]
SMALL_PROVIDERS = ["Alpha", "Beta", "Gamma"]
ENV = {"OPENROUTER_API_KEY": "sk-bench-unused-0000"}
LOAD_RPS = 20.0
LOAD_IN_FLIGHT = 20
LOAD_WARMUP_S = 3.0

PAGE_P99_MS, INDEX_P99_MS, SERIES_MS = 200.0, 300.0, 300.0


def config_doc(db_url: str, targets: list[tuple[str, list[str]]]) -> dict[str, Any]:
    return {
        "vantage": "bench",
        "database": {"url": db_url},
        "targets": [
            {
                "route": "openrouter",
                "model": model,
                "providers": providers,
                "context_length": 65536,
                "input_price_per_mtok": 0.5,
                "output_price_per_mtok": 0.7,
            }
            for model, providers in targets
        ],
    }


BIG = [(BIG_MODEL, BIG_PROVIDERS)]
SMALL = [(m, SMALL_PROVIDERS) for m in SMALL_MODELS]


async def fill(db_url: str, targets: list[tuple[str, list[str]]], days: int) -> int:
    """Probes at one per target per minute for `days` days up to now, through Store, then one
    evaluator pass (alert states)."""
    from monitor.alerts.evaluator import Evaluator
    from monitor.config import parse_config
    from monitor.storage.alerts import AlertStore
    from monitor.storage.database import make_engine, upgrade
    from monitor.storage.store import Store

    engine = make_engine(db_url)
    await upgrade(engine)
    store = Store(engine)
    rng = random.Random(12)
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    minute = end - timedelta(days=days)
    names = [(m, p) for m, providers in targets for p in providers]
    batch: list[tuple[str, Any]] = []
    total, t0 = 0, time.perf_counter()
    while minute < end:
        for model, provider in names:
            at = minute + timedelta(seconds=rng.uniform(0, 59))
            batch.append((uuid.uuid4().hex, probe(rng, model, provider, at)))
        if len(batch) >= BATCH:
            total += await store.insert_probes(batch)
            batch = []
        minute += timedelta(minutes=1)
    total += await store.insert_probes(batch)
    cfg = parse_config(config_doc(db_url, targets), ENV, "<bench>")
    await Evaluator(cfg, AlertStore(engine)).evaluate()
    await engine.dispose()
    print(f"  {total:,} probes stored in {time.perf_counter() - t0:.0f} s", flush=True)
    return total


# --- the web server in its own process -------------------------------------------------------


def _serve(
    conn: Connection, db_url: str, targets: list[tuple[str, list[str]]], cpu: int, memo_s: float
) -> None:
    """Child process: `provmon serve` over `db_url` on an ephemeral loopback port (`memo_s`:
    how long an answer is reused; 0 computes every request)."""
    from monitor.config import parse_config
    from monitor.reporting.job import accounting
    from monitor.storage.database import make_engine
    from monitor.web.security import Listen
    from monitor.web.server import running
    from monitor.web.site import site_from_config

    if cpu >= 0:
        pin(cpu)
    cfg = parse_config(config_doc(db_url, targets), ENV, "<bench>")

    async def main() -> None:
        engine = make_engine(db_url)
        site = site_from_config(cfg, accounting(cfg))
        async with running(engine, site, Listen("127.0.0.1", 0), memo_s=memo_s) as url:
            conn.send(url)
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


@contextlib.contextmanager
def web_sidecar(db_url: str, targets: list[tuple[str, list[str]]]) -> Iterator[str]:
    """The pages as `provmon run` serves them: its WebProcess sidecar (a spawned child at nice
    +10, answers reused for a second)."""
    from monitor.config import parse_config
    from monitor.web.process import WebProcess
    from monitor.web.security import Listen

    web = WebProcess(
        parse_config(config_doc(db_url, targets), ENV, "<bench>"), Listen("127.0.0.1", 0)
    )
    asyncio.run(web.start())
    try:
        assert web.url is not None
        yield web.url
    finally:
        asyncio.run(web.stop())


@contextlib.contextmanager
def web_server(
    db_url: str, targets: list[tuple[str, list[str]]], cpu: int, memo_s: float = MEMO_S
) -> Iterator[str]:
    with child_process(_serve, db_url, targets, cpu, memo_s) as (conn, _pid):
        yield receive(conn, 60, "web server start")


@contextlib.contextmanager
def pinned(cpu: int) -> Iterator[None]:
    """This process on `cpu` for the block (children started later must not inherit it)."""
    before = os.sched_getaffinity(0)
    pin(cpu)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


async def timed_gets(url: str, n: int, warmup: int = 3) -> tuple[float, list[float]]:
    """`n` sequential GETs of `url` after `warmup`: the first one's time (the server's history
    cache cold) and each timed one's, in ms, sorted."""
    import aiohttp

    times = []
    first = 0.0
    async with aiohttp.ClientSession() as session:
        for i in range(warmup + n):
            t0 = time.perf_counter()
            async with session.get(url) as resp:
                await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"{url}: HTTP {resp.status}")
            elapsed_ms = (time.perf_counter() - t0) * 1000
            if i == 0:
                first = elapsed_ms
            if i >= warmup:
                times.append(elapsed_ms)
    return first, sorted(times)


def show(label: str, timed: tuple[float, list[float]], limit: float, at: float = 99) -> None:
    first, times = timed
    p50, tail = percentile(times, 50), percentile(times, at)
    verdict = "ok" if tail <= limit else "MISSED"
    print(
        f"  {label:<40} cold {first:6.0f}  p50 {p50:6.1f}  p{at:g} {tail:6.1f}  "
        f"max {times[-1]:6.1f} ms   target p{at:g} ≤ {limit:g} ms  {verdict}",
        flush=True,
    )


# --- load and probe accuracy -----------------------------------------------------------------


def _load(conn: Connection, url: str, rps: float, seconds: float) -> None:
    """Child process: GET `url` `rps` times a second (paced; at most LOAD_IN_FLIGHT at once,
    as that many browsers would) for `seconds`; sends back (requests done, their times in
    ms, errors)."""

    async def main() -> tuple[int, list[float], int]:
        import aiohttp

        times: list[float] = []
        errors = 0

        gate = asyncio.Semaphore(LOAD_IN_FLIGHT)

        async def one(session: aiohttp.ClientSession) -> None:
            nonlocal errors
            async with gate:
                t0 = time.perf_counter()
                try:
                    async with session.get(url) as resp:
                        await resp.read()
                        errors += resp.status != 200
                except aiohttp.ClientError:
                    errors += 1
                times.append((time.perf_counter() - t0) * 1000)

        async with aiohttp.ClientSession() as session, asyncio.TaskGroup() as tg:
            start = time.perf_counter()
            i = 0
            while (elapsed := time.perf_counter() - start) < seconds:
                tg.create_task(one(session))
                i += 1
                await asyncio.sleep(max(0.0, i / rps - elapsed))
        return len(times), sorted(times), errors

    conn.send(asyncio.run(main()))


@contextlib.contextmanager
def page_load(url: str, seconds: float) -> Iterator[Connection]:
    with child_process(_load, url, LOAD_RPS, seconds) as (conn, _pid):
        time.sleep(LOAD_WARMUP_S)
        yield conn


def _prober_with_web(
    conn: Connection,
    base_url: str,
    params: Params,
    level: int,
    waves: int,
    db_url: str,
    targets: list[tuple[str, list[str]]],
) -> None:
    """Child process: the web server in the prober's own event loop, loaded from outside."""
    from monitor.config import parse_config
    from monitor.probing.session import probe_session
    from monitor.reporting.job import accounting
    from monitor.storage.database import make_engine
    from monitor.web.security import Listen
    from monitor.web.server import running
    from monitor.web.site import site_from_config

    pin(CLIENT_CPU)
    cfg = parse_config(config_doc(db_url, targets), ENV, "<bench>")

    async def main() -> None:
        engine = make_engine(db_url)
        site = site_from_config(cfg, accounting(cfg))
        async with running(engine, site, Listen("127.0.0.1", 0)) as url:
            conn.send(url)
            await asyncio.sleep(LOAD_WARMUP_S + 2)  # the load process starts and warms up
            async with probe_session() as session:
                run = await run_waves(make_ours(base_url, session, params, None), level, waves)
            conn.send(run)
            await asyncio.Event().wait()  # serve on until the parent ends this process

    asyncio.run(main())


def ours(sim_url: str, params: Params, level: int, waves: int) -> Any:
    """probe_accuracy's measure of provmon's prober, in a fresh process (plain streams)."""
    return run_client("ours", "plain", sim_url, "", params, level, waves)


def load_seconds(params: Params, level: int, waves: int) -> float:
    """Long enough for the warm-up and the probes (sequential at level 1), with a margin."""
    probes_s = params.stream_s * (waves if level == 1 else waves * 1.5) + 5
    return LOAD_WARMUP_S + probes_s * 1.3


def accuracy_row(
    label: str, run: LevelRun, load: tuple[int, list[float], int] | None, seconds: float = 1.0
) -> str:
    out = (
        f"  {label:<28} {run.level:>4}  {len(run.completed):>4}/{len(run.run.samples):<4} "
        f"{run.ttft_ms(50):8.3f} {run.ttft_ms(99):8.3f}"
    )
    if load is not None:
        n, times, errors = load
        p50, p99 = percentile(times, 50), percentile(times, 99)
        out += f"   {n:>5} pages ({n / seconds:4.1f}/s), p50 {p50:6.1f} ms p99 {p99:7.1f} ms"
        out += f", {errors} errors" if errors else ""
    return out


def accuracy(big_url: str, params: Params, levels: dict[int, int]) -> None:
    print(
        f"\nprobe TTFT error (probe_accuracy's measure; stream: TTFT {params.ttft_ms:g} ms, "
        f"{params.tps:g} tokens/s, {params.output_tokens} tokens), model page at "
        f"{LOAD_RPS:g}/s from another process:"
    )
    print(
        f"  {'':<28} {'level':>4}  {'done':>9} {'err p50':>8} {'err p99':>8}   page load "
        "during the probes"
    )
    with simulator(bench_farm(params), SERVER_CPU) as (sim_url, _):
        with web_sidecar(big_url, BIG) as web_url:
            page = f"{web_url}/models/{BIG_MODEL}"
            for level, waves in levels.items():
                run = LevelRun(
                    level, "ours", run_client("ours", "plain", sim_url, "", params, level, waves)
                )
                print(accuracy_row("unloaded", run, None), flush=True)
                seconds = load_seconds(params, level, waves)
                with page_load(page, seconds) as load:
                    run = LevelRun(
                        level,
                        "ours",
                        run_client("ours", "plain", sim_url, "", params, level, waves),
                    )
                    got = receive(load, seconds + 60, "page load")
                print(accuracy_row("loaded, web in own process", run, got, seconds), flush=True)
        for level, waves in levels.items():
            with child_process(_prober_with_web, sim_url, params, level, waves, big_url, BIG) as (
                conn,
                _,
            ):
                url = receive(conn, 60, "prober with web")
                seconds = load_seconds(params, level, waves) + 2
                with page_load(f"{url}/models/{BIG_MODEL}", seconds) as load:
                    result = receive(conn, 300, "prober with web")
                    got = receive(load, seconds + 60, "page load")
                run = LevelRun(level, "ours", result)
                print(accuracy_row("loaded, web in prober's loop", run, got, seconds), flush=True)


async def timings(big_url: str, small_url: str, n: int) -> None:
    print(
        f"\nrequest times, ms, every answer computed (no reuse of answers; {n} sequential "
        "requests each after 3 warm-up; cold: the first, before the server's history cache "
        "has the settled hours):"
    )
    with web_server(big_url, BIG, SERVER_CPU, memo_s=0) as url, pinned(CLIENT_CPU):
        api = f"{url}/api/v1/models/{BIG_MODEL}"
        show(
            "model page HTML (20 targets, 30 days)",
            await timed_gets(f"{url}/models/{BIG_MODEL}", n),
            PAGE_P99_MS,
        )
        show("endpoints JSON (20 targets)", await timed_gets(f"{api}/endpoints", n), PAGE_P99_MS)
        show(
            "series ttft_ms, 30 days (20 targets)",
            await timed_gets(f"{api}/series?metric=ttft_ms&window=30d", n),
            SERIES_MS,
            100,
        )
        show(
            "series e2e_tps, 24 hours (raw probes)",
            await timed_gets(f"{api}/series?metric=e2e_tps&window=24h", n),
            SERIES_MS,
            100,
        )
        show("uptime JSON, 30 days", await timed_gets(f"{api}/uptime?days=30", n), PAGE_P99_MS)
    with web_server(small_url, SMALL, SERVER_CPU, memo_s=0) as url, pinned(CLIENT_CPU):
        show("/ (200 models × 3 targets)", await timed_gets(f"{url}/", n), INDEX_P99_MS)
        show(
            "/api/v1/models (200 models)", await timed_gets(f"{url}/api/v1/models", n), INDEX_P99_MS
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--requests", type=int, default=200, help="timed requests per URL")
    ap.add_argument("--keep", help="a folder for the two databases, reused when present")
    ap.add_argument("--skip-accuracy", action="store_true")
    ap.add_argument("--sequential", type=int, default=50, help="probes at level 1")
    ap.add_argument("--waves-100", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        urls = []
        for name, targets, days in (("big", BIG, 30), ("small", SMALL, 1)):
            path = folder / f"web-{name}.db"
            url = f"sqlite+aiosqlite:///{path}"
            if not path.exists():
                n = sum(len(p) for _, p in targets)
                print(f"filling {path.name}: {n} targets × 1/min × {days} days", flush=True)
                asyncio.run(fill(url, targets, days))
            urls.append(url)
        asyncio.run(timings(urls[0], urls[1], args.requests))
        if not args.skip_accuracy:
            params = Params(200.0, 0.05, 20.0, 24, 100, {})
            accuracy(urls[0], params, {1: args.sequential, 100: args.waves_100})


if __name__ == "__main__":
    main()
