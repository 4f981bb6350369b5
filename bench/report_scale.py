"""Report scale: 2,000,000 probes (200 targets × 1/min × 7 days) through the storage layer, then
the weekly report and `provmon status`, timed, on SQLite and PostgreSQL.

Targets (issue 4): weekly report ≤ 10 s on PostgreSQL and ≤ 20 s on SQLite, peak RSS ≤ 1 GB;
status ≤ 0.5 s. `--targets` and `--days` shrink the run for a quick look.

Usage: python bench/report_scale.py [--targets 200] [--days 7] [--db sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from monitor.app import status
from monitor.config import Config, parse_config
from monitor.reporting.job import make_reports
from monitor.reporting.periods import span_period
from monitor.results import Outcome, ProbeResult, TokenSource
from monitor.storage.database import make_engine, upgrade
from monitor.storage.store import Store

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
MODELS = 10
BATCH = 5_000
OUTCOMES = [
    (Outcome.OK, None, 0.95),
    (Outcome.RATE_LIMITED, "http.429", 0.02),
    (Outcome.SERVER_ERROR, "http.503", 0.015),
    (Outcome.TIMEOUT, "timeout.ttft", 0.01),
    (Outcome.STREAM_ERROR, "stream.cut", 0.005),
]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def probe(rng: random.Random, model: str, provider: str, at: datetime) -> ProbeResult:
    x = rng.random()
    for outcome, kind, share in OUTCOMES:  # noqa: B007 - the loop picks them
        if x < share:
            break
        x -= share
    if outcome is not Outcome.OK:
        return ProbeResult(
            model, provider, "openrouter", "bench", "short", at, outcome, error_kind=kind
        )
    ttft = rng.lognormvariate(6.0, 0.5)
    tokens = rng.randint(100, 300)
    decode = rng.gauss(80, 15)
    latency = ttft + 1000 * tokens / max(decode, 5)
    return ProbeResult(
        model,
        provider,
        "openrouter",
        "bench",
        "short",
        at,
        Outcome.OK,
        http_status=200,
        ttft_ms=ttft,
        ttfa_ms=ttft,
        latency_ms=latency,
        output_tokens=tokens,
        input_tokens=100,
        token_source=TokenSource.USAGE,
        decode_tps=max(decode, 5),
        e2e_tps=tokens * 1000 / latency,
        chunks=tokens,
        cost_usd=tokens * 1e-7,
    )


async def generate(store: Store, targets: int, days: int, end: datetime) -> int:
    rng = random.Random(2026)
    start = end - timedelta(days=days)
    names = [(f"vendor/model-{t % MODELS}", f"Provider{t // MODELS:02d}") for t in range(targets)]
    batch: list[tuple[str, ProbeResult]] = []
    total = 0
    next_note = 250_000
    t0 = time.perf_counter()
    minute = start
    while minute < end:
        for model, provider in names:
            at = minute + timedelta(seconds=rng.uniform(0, 59))
            batch.append((uuid.uuid4().hex, probe(rng, model, provider, at)))
        if len(batch) >= BATCH:
            total += await store.insert_probes(batch)
            batch = []
        minute += timedelta(minutes=1)
        if total >= next_note:
            next_note += 250_000
            rate = total / (time.perf_counter() - t0)
            print(f"    {total:>9,} probes stored ({rate:,.0f}/s)", flush=True)
    if batch:
        total += await store.insert_probes(batch)
    return total


def config(url: str, out: Path, targets: int) -> Config:
    names = sorted({f"Provider{t // MODELS:02d}" for t in range(targets)})
    doc = {
        "vantage": "bench",
        "database": {"url": url},
        "reports": {"out_dir": str(out)},
        "openrouter": {"api_key_env": None},
        "targets": [
            {"route": "openrouter", "model": f"vendor/model-{m}", "providers": names}
            for m in range(MODELS)
        ],
    }
    return parse_config(doc, {})


async def run_one(kind: str, url: str, targets: int, days: int, out: Path) -> dict[str, float]:
    engine = make_engine(url)
    await upgrade(engine)
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    t0 = time.perf_counter()
    n = await generate(Store(engine), targets, days, end)
    insert_s = time.perf_counter() - t0
    cfg = config(url, out / kind, targets)
    period = span_period(end - timedelta(days=days), end)
    rss_before = peak_rss_mb()
    t0 = time.perf_counter()
    written = await make_reports(engine, cfg, period, end, formats=["html", "md", "csv", "json"])
    report_s = time.perf_counter() - t0
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        statuses, _summary = await status(cfg)
        times.append(time.perf_counter() - t0)
    await engine.dispose()
    assert len(written) == MODELS, f"expected {MODELS} model reports, got {len(written)}"
    assert len(statuses) == targets
    return {
        "probes": n,
        "insert_s": insert_s,
        "report_s": report_s,
        "status_s": sorted(times)[len(times) // 2],
        "rss_mb": peak_rss_mb(),
        "rss_before_report_mb": rss_before,
    }


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--targets", type=int, default=200)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--db", default="sqlite,postgresql")
    args = ap.parse_args()
    report_target = {"sqlite": 20.0, "postgresql": 10.0}
    print(
        f"report_scale: {args.targets} targets × 1/min × {args.days} days = "
        f"{args.targets * args.days * 1440:,} probes per database"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.db.split(","):
            if kind == "sqlite":
                url = f"sqlite+aiosqlite:///{tmp}/scale.db"
                drop = None
            else:
                name = f"provmon_scale_{uuid.uuid4().hex[:8]}"
                admin = await asyncpg.connect(PG_ADMIN)
                await admin.execute(f"CREATE DATABASE {name}")
                url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
                drop = (admin, name)
            try:
                print(f"\n{kind}:")
                r = await run_one(kind, url, args.targets, args.days, Path(tmp))
            finally:
                if drop is not None:
                    await drop[0].execute(f"DROP DATABASE IF EXISTS {drop[1]} WITH (FORCE)")
                    await drop[0].close()

            def verdict(ok: bool) -> str:
                return "ok" if ok else "MISSED"

            print(
                f"  stored {r['probes']:,.0f} probes in {r['insert_s']:.0f} s "
                f"({r['probes'] / r['insert_s']:,.0f} probes/s, with rollups)"
            )
            rt = report_target[kind]
            print(
                f"  weekly report ({MODELS} models, 4 formats, charts): {r['report_s']:.2f} s"
                f"   target ≤ {rt:g} s   {verdict(r['report_s'] <= rt)}"
            )
            print(
                f"  status ({args.targets} targets, 5m/30m/1d): {r['status_s']:.3f} s (median of 5)"
                f"   target ≤ 0.5 s   {verdict(r['status_s'] <= 0.5)}"
            )
            print(
                f"  peak RSS of this process: {r['rss_mb']:.0f} MB"
                f"   target ≤ 1024 MB   {verdict(r['rss_mb'] <= 1024)}"
            )


if __name__ == "__main__":
    asyncio.run(main())
