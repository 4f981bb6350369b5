"""The daemon: burst rounds into SQLite and PostgreSQL, no pile-up, the budget, pruning,
two vantages sharing one PostgreSQL, and `provmon run` stopped by SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from monitor.config import Config
from monitor.results import Outcome
from monitor.runtime import Daemon, Pacing, build_daemon
from monitor.simulator import Simulator
from monitor.storage.database import upgrade
from tests.conftest import Db, make_config
from tests.factories import result
from tests.receivers import webhook_receiver

FAST = Pacing(writer_flush_s=0.05)


class Clock:
    def __init__(self, now: datetime | None) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now or datetime.now(UTC)

    @classmethod
    def utc(cls) -> Clock:
        """The real clock."""
        return cls(None)


def spill_in(tmp_path: Path, vantage: str = "test") -> dict[str, object]:
    """The `[database]` section putting the daemon's spill file under `tmp_path`."""
    return {"spill_path": str(tmp_path / f"spill-{vantage}.jsonl")}


@contextlib.asynccontextmanager
async def burst(
    cfg: Config,
    session: aiohttp.ClientSession,
    engine: AsyncEngine,
    now: Clock | None = None,
) -> AsyncIterator[Daemon]:
    """The daemon `provmon run` builds, started in burst mode: the test runs the rounds."""
    async with build_daemon(
        cfg, engine=engine, session=session, now=now or Clock.utc(), pacing=FAST
    ) as daemon:
        await daemon.start(burst=True)
        yield daemon


async def test_burst_round_stores_every_probe(
    sim: Simulator,
    session: aiohttp.ClientSession,
    migrated: AsyncEngine,
    tmp_path: Path,
) -> None:
    cfg = make_config(
        sim,
        "plain",
        "comments",
        "http-500",
        "cut",
        target={"workloads": ["small", "heartbeat"]},
        database=spill_in(tmp_path),
    )
    async with burst(cfg, session, migrated) as daemon:
        results = await daemon.run_round()
        await daemon.stop()
        store = daemon.store
        assert len(results) == 8
        assert await store.count_probes() == 8
        outcomes = {(r.provider, r.workload): r.outcome for r in results}
        assert outcomes[("plain", "small")] is Outcome.OK
        assert outcomes[("http-500", "heartbeat")] is Outcome.SERVER_ERROR
        rollups = await store.rollups()
        assert sum(r.n for r in rollups.values()) == 8


async def test_a_running_daemon_keeps_its_start_up_out_of_full_collections(
    sim: Simulator, session: aiohttp.ClientSession, migrated: AsyncEngine, tmp_path: Path
) -> None:
    cfg = make_config(sim, "plain", database=spill_in(tmp_path))
    before = gc.get_freeze_count()
    async with burst(cfg, session, migrated) as daemon:
        assert gc.get_freeze_count() > before  # the modules, config and daemon: frozen
        await daemon.run_round()
        await daemon.stop()
    assert gc.get_freeze_count() == 0


async def test_one_probe_in_flight_per_target(
    sim: Simulator, session: aiohttp.ClientSession, migrated: AsyncEngine, tmp_path: Path
) -> None:
    cfg = make_config(sim, "hang", database=spill_in(tmp_path))  # silent for first_token_s (1 s)
    async with burst(cfg, session, migrated) as daemon:
        monitor = daemon.monitor
        target, workload = monitor.jobs[0]
        first = asyncio.create_task(monitor.probe_job(target, workload))
        await asyncio.sleep(0.1)
        assert await monitor.probe_job(target, workload) is None  # skipped, not queued
        r = await first
        assert r is not None
        assert r.outcome is Outcome.TIMEOUT
        assert monitor.skipped_busy == 1


async def test_budget_stops_paid_probing_and_resumes_next_day(
    sim: Simulator, session: aiohttp.ClientSession, migrated: AsyncEngine, tmp_path: Path
) -> None:
    cfg = make_config(
        sim,
        "plain",
        target={"input_price_per_mtok": 1000.0, "output_price_per_mtok": 1000.0},
        schedule={"budget_usd_per_day": 0.05},
        database=spill_in(tmp_path),
    )
    clock = Clock(datetime(2026, 11, 20, 23, 0, tzinfo=UTC))
    async with burst(cfg, session, migrated, now=clock) as daemon:  # start() loads the budget
        monitor = daemon.monitor
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
        await daemon.stop()
        assert await daemon.store.count_probes() == 3
    # A restart the same day counts what was already spent.
    async with burst(cfg, session, migrated, now=clock) as restarted:
        again = restarted.monitor.budget
        assert again.spent_usd == pytest.approx(third.cost_usd)
        assert not again.allows(clock())


async def test_prune_keeps_rollups(
    sim: Simulator, session: aiohttp.ClientSession, migrated: AsyncEngine, tmp_path: Path
) -> None:
    cfg = make_config(sim, "plain", schedule={"retention_days": 30}, database=spill_in(tmp_path))
    now = datetime(2026, 11, 26, 12, tzinfo=UTC)
    async with burst(cfg, session, migrated, now=Clock(now)) as daemon:
        store = daemon.store
        await store.insert_probes(
            [
                ("o" * 32, result(started_at=now - timedelta(days=31))),
                ("n" * 32, result(started_at=now - timedelta(days=29))),
            ]
        )
        await daemon.monitor.prune()
        assert await store.probe_ids() == {"n" * 32}
        assert len(await store.rollups()) == 2
        await daemon.monitor.prune()  # already ran today: a no-op


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
    eu = make_config(sim, "plain", "comments", vantage="eu-west", database=spill_in(tmp_path, "eu"))
    us = make_config(sim, "plain", "comments", vantage="us-east", database=spill_in(tmp_path, "us"))
    async with (
        burst(eu, session, pg_engines[0]) as d_eu,
        burst(us, session, pg_engines[1]) as d_us,
    ):
        await asyncio.gather(d_eu.run_round(), d_us.run_round())
        await d_eu.run_round()
        await d_eu.stop()
        await d_us.stop()
        store, m_eu, m_us = d_eu.store, d_eu.monitor, d_us.monitor
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


async def test_a_spent_budget_is_one_monitor_alert_a_day(
    sim: Simulator, session: aiohttp.ClientSession, migrated: AsyncEngine, tmp_path: Path
) -> None:
    async with webhook_receiver() as rx:
        cfg = make_config(
            sim,
            "plain",
            target={"input_price_per_mtok": 1000.0, "output_price_per_mtok": 1000.0},
            schedule={"budget_usd_per_day": 0.05},
            database=spill_in(tmp_path),
            alerts={"channels": [{"name": "hook", "type": "webhook", "url": rx.url}]},
        )
        clock = Clock(datetime(2026, 11, 20, 22, 0, tzinfo=UTC))
        async with burst(cfg, session, migrated, now=clock) as daemon:
            monitor = daemon.monitor
            target, workload = monitor.jobs[0]
            for _ in range(4):  # one paid probe spends it; three are refused
                await monitor.probe_job(target, workload)
                clock.now += timedelta(minutes=5)
                await daemon.alerting.evaluate()
                while await daemon.alerting.deliver():
                    pass
            firing = [p for p in rx.payloads() if p["status"] == "firing"]
            assert len(firing) == 1
            assert "budget" in str(firing[0]["alerts"][0]["annotations"]).lower()
            clock.now = datetime(2026, 11, 21, 0, 5, tzinfo=UTC)  # the next UTC day
            await monitor.probe_job(target, workload)
            await daemon.alerting.evaluate()
            while await daemon.alerting.deliver():
                pass
            statuses = [p["status"] for p in rx.payloads()]
            assert statuses == ["firing", "resolved"]
            await daemon.stop()
