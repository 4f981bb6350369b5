"""`provmon demo`: the whole product in two minutes on the embedded defaults.

The simulator (four providers of one model), the daemon probing them into SQLite with a
progress display, then a report under reports/ — all on loopback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from monitor.app import run_daemon, status
from monitor.clock import utc_now
from monitor.config import Config, parse_config
from monitor.reporting.job import make_reports
from monitor.reporting.periods import span_period
from monitor.simulator import DEMO_MODEL, demo_farm, run_simulator
from monitor.status import TargetStatus
from monitor.storage.database import connected, upgrade
from monitor.tables import report_table

DEMO_WORKLOAD = {"input_tokens": 60, "max_tokens": 60}


def demo_config(
    openrouter_base_url: str,
    direct: dict[str, tuple[str, float, float, int]],
    *,
    db_path: Path,
    interval_s: float,
    reports_dir: Path,
) -> Config:
    """Config for the demo: each simulated provider probed directly
    and through the OpenRouter-like front, stored in SQLite at `db_path`.

    `direct` maps provider name → (base URL, input and output USD per million tokens, context
    length).
    """
    targets: list[dict[str, Any]] = [
        {
            "route": "direct",
            "model": DEMO_MODEL,
            "provider": name,
            "base_url": url,
            "input_price_per_mtok": price_in,
            "output_price_per_mtok": price_out,
            "context_length": context,
            "workloads": ["demo"],
        }
        for name, (url, price_in, price_out, context) in direct.items()
    ]
    targets.append(
        {
            "route": "openrouter",
            "model": DEMO_MODEL,
            "providers": list(direct),
            "workloads": ["demo"],
            "info": {name: {"context_length": v[3]} for name, v in direct.items()},
        }
    )
    doc: dict[str, Any] = {
        "vantage": "demo",
        "timeouts": {"connect_s": 2, "first_token_s": 5, "idle_s": 3, "total_s": 15},
        "workloads": {"demo": DEMO_WORKLOAD},
        "openrouter": {"base_url": openrouter_base_url, "api_key_env": None},
        "database": {
            "url": f"sqlite+aiosqlite:///{db_path}",
            "spill_path": str(db_path.with_suffix(".spill.jsonl")),
        },
        "schedule": {"interval_s": interval_s, "jitter_s": interval_s / 10, "drain_s": 5},
        "uptime": {"min_samples": 5},
        "reports": {"out_dir": str(reports_dir)},
        "targets": targets,
    }
    return parse_config(doc, {}, "<demo>")


def _remove_stale(db_path: Path) -> None:
    """Each demo starts from an empty database."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    db_path.with_suffix(".spill.jsonl").unlink(missing_ok=True)


def _demo_progress(elapsed_s: float, total_s: float, statuses: Sequence[TargetStatus]) -> str:
    """One line: per provider, uptime direct/openrouter, p50 TTFT and the 429 share so far."""
    parts = []
    for provider in dict.fromkeys(st.provider for st in statuses):
        mine = [st.windows["5m"] for st in statuses if st.provider == provider]
        mine = [w for w in mine if w.probes]
        if not mine:
            continue
        ups = "/".join("-" if w.uptime_pct is None else f"{w.uptime_pct:.0f}" for w in mine)
        ttfts = [w.ttft_p50_ms for w in mine if w.ttft_p50_ms is not None]
        ttft = f" {min(ttfts):.0f}ms" if ttfts else ""
        limited = sum(w.rate_limited for w in mine)
        probes = sum(w.probes for w in mine)
        note = f" {100 * limited / probes:.0f}%429" if limited else ""
        parts.append(f"{provider} {ups}%{ttft}{note}")
    bar = "#" * int(20 * elapsed_s / total_s)
    return f"  [{bar:<20}] {elapsed_s:3.0f}s  " + " | ".join(parts) + "\n"


async def demo(
    duration_s: float,
    interval_s: float,
    out: TextIO,
    *,
    workdir: Path,
    progress_every_s: float = 5.0,
) -> list[tuple[Any, dict[str, Path]]]:
    """The whole product on the embedded defaults: the simulator (four providers of one model),
    the daemon probing them into SQLite, a progress display, then a report under reports/."""
    farm = demo_farm(outage_start_s=duration_s / 3, outage_duration_s=duration_s / 4)
    db_path = workdir / "provmon-demo.db"
    _remove_stale(db_path)
    async with run_simulator(farm) as sim:
        cfg = demo_config(
            sim.openrouter_base_url,
            {
                p.name: (
                    sim.direct_base_url(p.slug),
                    p.input_usd_per_mtok,
                    p.output_usd_per_mtok,
                    p.context_length,
                )
                for p in farm.profiles
            },
            db_path=db_path,
            interval_s=interval_s,
            reports_dir=workdir / "reports",
        )
        out.write(
            f"provmon demo: simulator on {sim.base_url} serving {DEMO_MODEL} from "
            f"{len(farm.profiles)} providers (fast, cheap-but-slow, flaky with an outage, "
            f"rate-limited);\n  probing each directly and through the OpenRouter-like front "
            f"({len(cfg.targets)} targets) every {interval_s:g}s for {duration_s:g}s "
            f"into {db_path}\n  progress: provider uptime% direct/openrouter, best p50 TTFT, "
            "share of 429s\n"
        )
        out.flush()
        async with connected(cfg.database_url.reveal(), migrated=False) as engine:
            await upgrade(engine)
        stop = asyncio.Event()
        started = utc_now()
        daemon = asyncio.create_task(run_daemon(cfg, stop))
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        try:
            while (elapsed := loop.time() - t0) < duration_s:
                await asyncio.sleep(min(progress_every_s, duration_s - elapsed))
                if daemon.done():
                    break
                statuses, _ = await status(cfg)
                out.write(_demo_progress(loop.time() - t0, duration_s, statuses))
                out.flush()
        finally:
            stop.set()
            await daemon
    period = span_period(started, utc_now())
    async with connected(cfg.database_url.reveal()) as engine:
        written = await make_reports(engine, cfg, period, utc_now())
    for rep, files in written:
        out.write(f"\n{rep.model}, {len(rep.rows)} provider rows:\n\n")
        out.write(report_table(rep) + "\n")
        out.write("\nreport written:\n")
        for fmt, path in files.items():
            out.write(f"  {fmt:<4} {path}\n")
    out.write(
        "\nuptime% = ok / (ok + failures); rate-limited probes are excluded and shown apart.\n"
        f"Open the HTML report in a browser. The probes stay in {db_path}.\n"
    )
    out.flush()
    return written
