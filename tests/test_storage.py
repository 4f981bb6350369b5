"""Storage on SQLite and PostgreSQL (same bodies): migrations, probes, rollups, locks."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from monitor.errors import DatabaseError
from monitor.results import Outcome, ProbeResult
from monitor.rollup import hour_of
from monitor.stats import percentile
from monitor.storage.database import (
    advisory_lock,
    current_revision,
    downgrade,
    head_revision,
    require_migrated,
    upgrade,
)
from monitor.storage.reports import probes_between
from monitor.storage.schema import Base, ProbeRow
from monitor.storage.store import Store
from tests.conftest import Db
from tests.factories import T0, result


async def test_migrations_up_down_and_no_drift(db: Db) -> None:
    engine = db.engine()
    try:
        with pytest.raises(DatabaseError, match="provmon db upgrade"):
            await require_migrated(engine)
        before, after = await upgrade(engine)
        assert (before, after) == (None, head_revision())
        await require_migrated(engine)

        def drift(conn: Connection) -> list[object]:
            return list(compare_metadata(MigrationContext.configure(conn), Base.metadata))

        async with engine.connect() as conn:
            assert await conn.run_sync(drift) == []
        await downgrade(engine, "base")
        assert await current_revision(engine) is None

        def tables(conn: Connection) -> set[str]:
            return set(inspect(conn).get_table_names())

        async with engine.connect() as conn:
            assert await conn.run_sync(tables) <= {"alembic_version"}
        await upgrade(engine)
        assert await current_revision(engine) == head_revision()
    finally:
        await engine.dispose()


async def test_probes_round_trip_tz_aware_and_idempotent(migrated: AsyncEngine) -> None:
    store = Store(migrated)
    local = datetime(2026, 11, 16, 9, 30, tzinfo=ZoneInfo("America/New_York"))
    r1 = result(started_at=local, error_message="x" * 300, quality="schema_mismatch")
    r2 = result(provider="Beta", outcome=Outcome.TIMEOUT, error_kind="timeout.ttft")
    assert await store.insert_probes([("a" * 32, r1), ("b" * 32, r2)]) == 2
    assert await store.insert_probes([("a" * 32, r1), ("c" * 32, r1)]) == 1  # a replay
    assert await store.count_probes() == 3
    async with migrated.connect() as conn:
        row = (await conn.execute(select(ProbeRow).where(ProbeRow.id == "a" * 32))).one()
    assert row.started_at == datetime(2026, 11, 16, 14, 30, tzinfo=UTC)
    assert row.started_at.tzinfo is not None
    assert row.ttft_ms == 200.0
    assert row.outcome == "ok"
    assert row.token_source == "usage"
    assert row.buffered is False
    assert row.quality == "schema_mismatch"  # 0005_quality


async def test_naive_datetimes_are_refused(migrated: AsyncEngine) -> None:
    store = Store(migrated)
    with pytest.raises(Exception, match="naive datetime"):
        await store.insert_probes([("n" * 32, result(started_at=datetime(2026, 1, 1)))])


async def test_rollups_count_and_percentiles(migrated: AsyncEngine) -> None:
    store = Store(migrated)
    records: list[tuple[str, ProbeResult]] = []
    ttfts = [100.0 + 7.3 * i for i in range(200)]
    for i, ttft in enumerate(ttfts):
        at = T0 + timedelta(minutes=i % 60)
        quality = "invalid_json" if i % 20 == 0 else "ok" if i % 4 == 0 else None
        records.append((f"{i:032d}", result(started_at=at, ttft_ms=ttft, quality=quality)))
    records.append(("f" * 32, result(outcome=Outcome.SERVER_ERROR, error_kind="http.503")))
    records.append(("e" * 32, result(outcome=Outcome.RATE_LIMITED, error_kind="http.429")))
    # Two batches, the second overlapping the first: merged, never double-counted.
    assert await store.insert_probes(records[:150]) == 150
    assert await store.insert_probes(records[100:]) == 52
    rollups = await store.rollups()
    assert len(rollups) == 1
    ((key, rollup),) = rollups.items()
    assert key == (("acme/model-1", "Alpha", "direct"), "here", "short", hour_of(T0))
    assert rollup.n == 202
    assert rollup.outcomes == {"ok": 200, "server_error": 1, "rate_limited": 1}
    assert rollup.error_kinds == {"http.503": 1, "http.429": 1}
    assert rollup.qualities == {"ok": 40, "invalid_json": 10}  # merged across the batches
    hist = rollup.histograms["ttft_ms"]
    assert hist.n == 200
    exact = sorted(ttfts)
    for p in (50, 75, 90, 99):
        approx = hist.quantile(p)
        assert approx is not None
        assert abs(approx - percentile(exact, p)) / percentile(exact, p) <= 0.01


async def test_spend_prune_and_job_claims(migrated: AsyncEngine) -> None:
    store = Store(migrated)
    day = datetime(2026, 11, 20, tzinfo=UTC)
    await store.insert_probes(
        [
            ("1" * 32, result(started_at=day - timedelta(hours=1), cost_usd=1.0)),
            ("2" * 32, result(started_at=day + timedelta(hours=1), cost_usd=0.25)),
            ("3" * 32, result(started_at=day + timedelta(hours=2), cost_usd=0.5, vantage="b")),
        ]
    )
    assert await store.spend_since("here", day) == pytest.approx(0.25)
    assert await store.prune_probes(day) == 1
    assert await store.count_probes() == 2
    assert len(await store.rollups()) == 3  # rollups outlive raw probes
    assert await store.claim_job_run("prune", "2026-11-20", "here", day) is True
    assert await store.claim_job_run("prune", "2026-11-20", "b", day) is False
    assert await store.claim_job_run("prune", "2026-11-21", "b", day) is True


async def test_advisory_lock_is_exclusive_on_postgresql(migrated: AsyncEngine, db: Db) -> None:
    async with advisory_lock(migrated, "job") as first:
        assert first is True
        async with advisory_lock(migrated, "job") as second:
            assert second is (db.kind == "sqlite")
    async with advisory_lock(migrated, "job") as again:
        assert again is True


async def test_concurrent_target_creation(migrated: AsyncEngine) -> None:
    stores = [Store(migrated) for _ in range(4)]
    keys = [("m", f"p{i}", "direct") for i in range(5)]
    results = await asyncio.gather(*(s.target_ids(keys) for s in stores))
    assert all(r == results[0] for r in results)
    assert len(set(results[0].values())) == 5


async def test_probe_phases_itl_and_flags_are_stored(migrated: AsyncEngine) -> None:
    store = Store(migrated)
    r = result(
        dns_ms=1.5,
        connect_ms=0.25,
        tls_ms=3.0,
        ttfb_ms=150.0,
        itl_p50_ms=20.0,
        itl_p99_ms=45.5,
        max_gap_ms=60.0,
        flags="cost_implausible,usage_implausible",
    )
    assert await store.insert_probes([("p" * 32, r)]) == 1
    [back] = await probes_between(migrated, T0, T0 + timedelta(hours=1))
    assert back == r
