"""`provmon demo`: the whole product in two minutes on the embedded defaults.

The simulator (four providers of one model, one of them with two OpenRouter endpoints), the
daemon (the one `provmon run` uses) probing them into SQLite with a progress display, then a
report under reports/ — all on loopback, all under the directory given (`--dir`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from pathlib import Path
from typing import Any, TextIO

from monitor.app import status
from monitor.clock import utc_now
from monitor.config import Config, parse_config
from monitor.config.checks import endpoint_label
from monitor.errors import UsageError
from monitor.reporting.job import make_reports
from monitor.reporting.periods import span_period
from monitor.runtime import build_daemon
from monitor.simulator import DEMO_MODEL, Farm, Simulator, demo_farm, run_simulator
from monitor.storage.database import connected, upgrade
from monitor.terminal import Written, demo_intro, demo_progress, demo_results
from monitor.web.process import WebProcess
from monitor.web.security import Listen

DEMO_WORKLOAD = {"input_tokens": 60, "max_tokens": 60}


DEMO_KEY = "sk-provmon-demo"
"""Any key will do for the simulator; with one, its front publishes latency and throughput."""


def demo_config(
    sim: Simulator,
    farm: Farm,
    *,
    db_path: Path,
    interval_s: float,
    reports_dir: Path,
) -> Config:
    """Config for the demo: each simulated endpoint probed directly and through the
    OpenRouter-like front (pinned by its tag when its provider has several, else by the
    provider's slug), stored in SQLite at `db_path`; the catalogue read every minute."""
    endpoints_of = Counter(p.provider_label for p in farm.profiles)
    targets: list[dict[str, Any]] = []
    endpoints: list[dict[str, Any]] = []
    for p in farm.profiles:
        pin = p.endpoint_tag if endpoints_of[p.provider_label] > 1 else p.provider_slug
        info = {"context_length": p.context_length}
        prices = {"input_price_per_mtok": p.input_usd_per_mtok}
        prices["output_price_per_mtok"] = p.output_usd_per_mtok
        targets.append(
            {
                "route": "direct",
                "model": DEMO_MODEL,
                "provider": endpoint_label(p.provider_label, pin),
                "base_url": sim.direct_base_url(p.slug),
                "workloads": ["demo"],
            }
            | info
            | prices
        )
        endpoints.append({"provider": p.provider_label, "endpoint": pin} | info)
    targets.append(
        {"route": "openrouter", "model": DEMO_MODEL, "workloads": ["demo"], "endpoints": endpoints}
    )
    doc: dict[str, Any] = {
        "vantage": "demo",
        "timeouts": {"connect_s": 2, "first_token_s": 5, "idle_s": 3, "total_s": 15},
        "workloads": {"demo": DEMO_WORKLOAD},
        "openrouter": {"base_url": sim.openrouter_base_url, "api_key_env": "PROVMON_DEMO_KEY"},
        "database": {
            "url": f"sqlite+aiosqlite:///{db_path}",
            "spill_path": str(db_path.with_suffix(".spill.jsonl")),
        },
        "schedule": {"interval_s": interval_s, "jitter_s": interval_s / 10, "drain_s": 5},
        "uptime": {"min_samples": 5},
        "reports": {"out_dir": str(reports_dir)},
        "catalogue": {"every_s": 60},
        "targets": targets,
    }
    return parse_config(doc, {"PROVMON_DEMO_KEY": DEMO_KEY}, "<demo>")


def _fresh_database(workdir: Path) -> Path:
    """Each demo starts from an empty database in `workdir` (created if missing)."""
    workdir.mkdir(parents=True, exist_ok=True)
    db_path = workdir / "provmon-demo.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    db_path.with_suffix(".spill.jsonl").unlink(missing_ok=True)
    return db_path


async def _live_page(cfg: Config, listen: Listen, out: TextIO) -> WebProcess:
    """The live page from its own process, as `provmon run` serves it; on another free port
    when `listen`'s is taken."""
    web = WebProcess(cfg, listen)
    try:
        await web.start()
    except UsageError as exc:
        out.write(f"  ({exc}; serving on another port)\n")
        web = WebProcess(cfg, Listen(listen.host, 0))
        await web.start()
    out.write(f"  live page: {web.url}/models/{DEMO_MODEL}\n")
    out.flush()
    return web


async def demo(
    duration_s: float,
    interval_s: float,
    out: TextIO,
    *,
    workdir: Path,
    progress_every_s: float = 5.0,
    listen: Listen | None = None,
    keep_serving: bool = False,
) -> Written:
    """The whole product on the embedded defaults: the simulator (four providers of one model),
    the daemon probing them into SQLite, a progress display, the live page on `listen` while
    it runs (and after, with `keep_serving`, until cancelled), then a report under reports/.
    Everything it writes goes under `workdir` (created if missing)."""
    farm = demo_farm(
        outage_start_s=duration_s / 3,
        outage_duration_s=duration_s / 4,
        price_change_s=duration_s / 2,
    )
    db_path = _fresh_database(workdir)
    async with contextlib.AsyncExitStack() as stack:
        sim = await stack.enter_async_context(run_simulator(farm))
        cfg = demo_config(
            sim, farm, db_path=db_path, interval_s=interval_s, reports_dir=workdir / "reports"
        )
        out.write(
            demo_intro(
                sim.base_url,
                DEMO_MODEL,
                len({p.provider_label for p in farm.profiles}),
                len(cfg.targets),
                interval_s,
                duration_s,
                db_path,
            )
        )
        out.flush()
        async with connected(cfg.database_url.reveal(), migrated=False) as engine:
            await upgrade(engine)
        web = await _live_page(cfg, listen, out) if listen is not None else None
        if web is not None:
            stack.push_async_callback(web.stop)
        started = utc_now()
        async with build_daemon(cfg) as daemon:
            await daemon.start()
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            while (elapsed := loop.time() - t0) < duration_s:
                await asyncio.sleep(min(progress_every_s, duration_s - elapsed))
                statuses, _ = await status(cfg)
                out.write(demo_progress(loop.time() - t0, duration_s, statuses))
                out.flush()
        period = span_period(started, utc_now())
        async with connected(cfg.database_url.reveal()) as engine:
            written = await make_reports(engine, cfg, period, utc_now())
        out.write(demo_results(written, db_path))
        if web is not None and keep_serving:
            out.write(f"The live page stays up: {web.url}/models/{DEMO_MODEL} (Ctrl-C stops)\n")
            out.flush()
            await asyncio.Event().wait()
        out.flush()
    return written
