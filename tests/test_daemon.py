"""The daemon: burst rounds into SQLite and PostgreSQL, no pile-up, the budget, pruning,
two vantages sharing one PostgreSQL, and `provmon run` stopped by SIGTERM."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from monitor.budget import DailyBudget
from monitor.config import Config
from monitor.daemon import Monitor
from monitor.results import Outcome
from monitor.simulator import Simulator
from monitor.spill import SpillFile
from monitor.storage.database import upgrade
from monitor.storage.store import Store
from monitor.writer import ProbeWriter
from tests.conftest import Db, make_config, prober_for
from tests.factories import result


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def make_monitor(
    cfg: Config,
    session: aiohttp.ClientSession,
    engine: AsyncEngine,
    tmp_path: Path,
    **kwargs: object,
) -> tuple[Monitor, ProbeWriter, Store]:
    store = Store(engine)
    writer = ProbeWriter(
        store, SpillFile(tmp_path / f"spill-{cfg.vantage}.jsonl"), flush_interval_s=0.05
    )
    writer.start()
    now = kwargs.get("now")
    prober = prober_for(session, cfg, now)  # type: ignore[arg-type]
    monitor = Monitor(cfg, prober, writer, store, **kwargs)  # type: ignore[arg-type]
    return monitor, writer, store


async def test_burst_round_stores_every_probe(
    sim: Simulator,
    session: aiohttp.ClientSession,
    migrated: AsyncEngine,
    tmp_path: Path,
) -> None:
    cfg = make_config(
        sim, "plain", "comments", "http-500", "cut", target={"workloads": ["small", "heartbeat"]}
    )
    monitor, writer, store = await make_monitor(cfg, session, migrated, tmp_path)
    results = await monitor.run_round()
    await writer.close()
    assert len(results) == 8
    assert await store.count_probes() == 8
    outcomes = {(r.provider, r.workload): r.outcome for r in results}
    assert outcomes[("plain", "small")] is Outcome.OK
    assert outcomes[("http-500", "heartbeat")] is Outcome.SERVER_ERROR
    rollups = await store.rollups()
    assert sum(r.n for r in rollups.values()) == 8


async def test_one_probe_in_flight_per_target(
    sim: Simulator, session: aiohttp.ClientSession, migrated: AsyncEngine, tmp_path: Path
) -> None:
    cfg = make_config(sim, "hang")  # answers nothing until first_token_s (1 s)
    monitor, writer, _ = await make_monitor(cfg, session, migrated, tmp_path)
    target, workload = monitor.jobs[0]
    first = asyncio.create_task(monitor.probe_job(target, workload))
    await asyncio.sleep(0.1)
    assert await monitor.probe_job(target, workload) is None  # skipped, not queued
    r = await first
    assert r is not None
    assert r.outcome is Outcome.TIMEOUT
    assert monitor.skipped_busy == 1
    await writer.close()


async def test_budget_stops_paid_probing_and_resumes_next_day(
    sim: Simulator, session: aiohttp.ClientSession, migrated: AsyncEngine, tmp_path: Path
) -> None:
    cfg = make_config(
        sim,
        "plain",
        target={"input_price_per_mtok": 1000.0, "output_price_per_mtok": 1000.0},
        schedule={"budget_usd_per_day": 0.05},
    )
    clock = Clock(datetime(2026, 11, 20, 23, 0, tzinfo=UTC))
    monitor, writer, store = await make_monitor(cfg, session, migrated, tmp_path, now=clock)
    await monitor.load_budget()
    target, workload = monitor.jobs[0]
    first = await monitor.probe_job(target, workload)
    assert first is not None
    assert first.outcome is Outcome.OK
    assert first.cost_usd is not None
    assert first.cost_usd > 0.05
    second = await monitor.probe_job(target, workload)
    assert second is not None
    assert (second.outcome, second.error_kind) == (
        Outcome.MONITOR_ERROR,
        "monitor.budget_exhausted",
    )
    clock.now += timedelta(hours=2)  # a new UTC day
    third = await monitor.probe_job(target, workload)
    assert third is not None
    assert third.outcome is Outcome.OK
    await writer.close()
    assert await store.count_probes() == 3
    # A restart the same day counts what was already spent.
    again = DailyBudget(0.05)
    monitor2 = Monitor(cfg, prober_for(session, cfg), writer, store, budget=again, now=clock)
    await monitor2.load_budget()
    assert again.spent_usd == pytest.approx(third.cost_usd)
    assert not again.allows(clock.now)


async def test_prune_keeps_rollups(
    sim: Simulator, session: aiohttp.ClientSession, migrated: AsyncEngine, tmp_path: Path
) -> None:
    cfg = make_config(sim, "plain", schedule={"retention_days": 30})
    now = datetime(2026, 11, 26, 12, tzinfo=UTC)
    monitor, writer, store = await make_monitor(cfg, session, migrated, tmp_path, now=Clock(now))
    await store.insert_probes(
        [
            ("o" * 32, result(started_at=now - timedelta(days=31))),
            ("n" * 32, result(started_at=now - timedelta(days=29))),
        ]
    )
    await monitor.prune()
    assert await store.probe_ids() == {"n" * 32}
    assert len(await store.rollups()) == 2
    await monitor.prune()  # already ran today: a no-op
    await writer.close()


@pytest.fixture
async def pg_engines(pg_db: Db) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    a, b = pg_db.engine(), pg_db.engine()
    await upgrade(a)
    yield a, b
    await a.dispose()
    await b.dispose()


async def test_two_vantages_share_one_postgresql(
    sim: Simulator,
    session: aiohttp.ClientSession,
    pg_engines: tuple[AsyncEngine, AsyncEngine],
    tmp_path: Path,
) -> None:
    eu = make_config(sim, "plain", "comments", vantage="eu-west")
    us = make_config(sim, "plain", "comments", vantage="us-east")
    m_eu, w_eu, store = await make_monitor(eu, session, pg_engines[0], tmp_path)
    m_us, w_us, _ = await make_monitor(us, session, pg_engines[1], tmp_path)
    await asyncio.gather(m_eu.run_round(), m_us.run_round())
    await m_eu.run_round()
    await w_eu.close()
    await w_us.close()
    assert await store.count_probes("eu-west") == 4
    assert await store.count_probes("us-east") == 2
    ids = await store.target_ids([("microsoft/wizardlm-2-8x22b", "plain", "direct")])
    assert len(ids) == 1  # one target row, shared by both vantages
    runs: list[str] = []

    async def job(name: str) -> None:
        runs.append(name)
        await asyncio.sleep(0.2)

    done = await asyncio.gather(
        m_eu.singleton("weekly", "2026-W47", lambda: job("eu")),
        m_us.singleton("weekly", "2026-W47", lambda: job("us")),
    )
    assert sorted(done) == [False, True]
    assert len(runs) == 1
    # The next period runs again, once.
    assert await m_us.singleton("weekly", "2026-W48", lambda: job("us")) is True
    assert len(runs) == 2
