"""The writer keeps probing off the database: batches, spills when the database goes away,
replays when it is back, and never loses or duplicates a probe."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from monitor.errors import StoreUnavailable
from monitor.spill import SpillFile
from monitor.storage.database import make_engine, upgrade
from monitor.storage.store import Store
from monitor.writer import ProbeWriter
from tests.conftest import PG_URL, Db
from tests.factories import T0, result
from tests.tcpproxy import TcpProxy


async def wait_for(predicate: object, timeout_s: float = 10.0) -> None:
    assert callable(predicate)
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


async def test_batches_reach_the_database(migrated: AsyncEngine, tmp_path: Path) -> None:
    store = Store(migrated)
    writer = ProbeWriter(store, SpillFile(tmp_path / "spill.jsonl"), flush_interval_s=0.05)
    writer.start()
    ids = {writer.submit(result()) for _ in range(2500)}
    await writer.close()
    assert await store.probe_ids() == ids
    assert writer.stats.inserted == 2500
    assert writer.stats.spilled == 0


@pytest.fixture
async def proxied_pg(pg_db: Db) -> AsyncIterator[tuple[TcpProxy, AsyncEngine]]:
    db = pg_db
    proxy = TcpProxy("127.0.0.1", 5432)
    await proxy.start()
    url = PG_URL.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    engine = make_engine(url, schema=db.schema)
    await upgrade(engine)
    yield proxy, engine
    await engine.dispose()
    await proxy.cut()


async def test_postgresql_going_away_loses_nothing(
    proxied_pg: tuple[TcpProxy, AsyncEngine], tmp_path: Path
) -> None:
    proxy, engine = proxied_pg
    store = Store(engine)
    spill = SpillFile(tmp_path / "spill.jsonl")
    writer = ProbeWriter(
        store, spill, flush_interval_s=0.05, retry_interval_s=0.2, db_timeout_s=2.0
    )
    writer.start()
    ids = {writer.submit(result()) for _ in range(100)}
    await wait_for(lambda: writer.stats.inserted == 100)
    await proxy.cut()
    ids |= {writer.submit(result()) for _ in range(300)}
    await wait_for(lambda: writer.stats.spilled >= 300)
    assert writer.db_down
    assert spill.size() > 0
    await proxy.restore()
    ids |= {writer.submit(result()) for _ in range(50)}
    await wait_for(lambda: not writer.db_down and writer.backlog == 0, 20)
    await writer.close()
    stored = await store.probe_ids()
    assert stored == ids  # nothing lost
    assert await store.count_probes() == 450  # nothing twice
    assert spill.size() == 0
    assert sum(r.n for r in (await store.rollups()).values()) == 450


async def test_sqlite_locked_then_free(tmp_path: Path) -> None:
    db = Db(f"sqlite+aiosqlite:///{tmp_path / 'locked.db'}", None)
    engine = db.engine(busy_timeout_ms=50)
    await upgrade(engine)
    locker = make_engine(db.url)
    store = Store(engine)
    spill = SpillFile(tmp_path / "spill.jsonl")
    writer = ProbeWriter(store, spill, flush_interval_s=0.05, retry_interval_s=0.2)
    writer.start()
    try:
        async with locker.connect() as conn:
            await conn.execute(text("BEGIN EXCLUSIVE"))
            ids = {writer.submit(result()) for _ in range(40)}
            await wait_for(lambda: writer.stats.spilled >= 40)
            await conn.execute(text("ROLLBACK"))
        await wait_for(lambda: not writer.db_down)
        await writer.close()
        assert await store.probe_ids() == ids
    finally:
        await locker.dispose()
        await engine.dispose()


async def test_a_spill_left_by_a_dead_writer_is_replayed_once(
    migrated: AsyncEngine, tmp_path: Path
) -> None:
    store = Store(migrated)
    spill = SpillFile(tmp_path / "spill.jsonl")
    records = [(f"{i:032x}", result(started_at=T0)) for i in range(30)]
    spill.append(records[:20])
    await store.insert_probes(records[:5])  # it died after writing some, before dropping
    with spill.path.open("ab") as f:  # and was killed in the middle of a line
        f.write(b'{"id": "torn", "result": {"mod')
    spill.append(records[20:])  # a later append must not be swallowed by the torn line
    writer = ProbeWriter(store, spill, flush_interval_s=0.05, retry_interval_s=0.05)
    assert writer.db_down  # starts by replaying
    writer.start()
    await wait_for(lambda: not writer.db_down)
    await writer.close()
    assert await store.probe_ids() == {pid for pid, _ in records}
    assert await store.count_probes() == 30


def test_spill_round_trip_and_drop(tmp_path: Path) -> None:
    spill = SpillFile(tmp_path / "s.jsonl")
    assert spill.read() == ([], 0)
    a = [("a" * 32, result(error_message="é ✓ <b>"))]
    spill.append(a)
    records, offset = spill.read()
    assert records == a
    spill.append([("b" * 32, result())])
    spill.drop_through(offset)
    records, _ = spill.read()
    assert [pid for pid, _ in records] == ["b" * 32]
    line = spill.path.read_text().splitlines()[0]
    assert json.loads(line)["result"]["outcome"] == "ok"


async def test_provider_values_that_do_not_fit_are_stored_fitted(
    migrated: AsyncEngine, tmp_path: Path
) -> None:
    store = Store(migrated)
    writer = ProbeWriter(store, SpillFile(tmp_path / "spill.jsonl"), flush_interval_s=0.05)
    writer.start()
    odd = result(
        output_tokens=10**20,
        finish_reason="x" * 100,
        served_by="p" * 500,
        error_message="nul \x00 byte",
        ttft_ms=float("inf"),
    )
    pid = writer.submit(odd)
    fine = writer.submit(result())
    await writer.close()
    assert await store.probe_ids() == {pid, fine}
    assert writer.stats.rejected == 0
    assert not writer.db_down


async def test_a_record_the_database_refuses_is_set_aside_not_blocking(
    migrated: AsyncEngine, tmp_path: Path
) -> None:
    store = Store(migrated)
    spill = SpillFile(tmp_path / "spill.jsonl")
    writer = ProbeWriter(store, spill, flush_interval_s=0.05)
    writer.start()
    good = {writer.submit(result()) for _ in range(10)}
    bad = writer.submit(result(started_at=datetime(2026, 1, 1)))  # naive: refused by design
    good |= {writer.submit(result()) for _ in range(10)}
    await writer.close()
    assert await store.probe_ids() == good
    assert writer.stats.rejected == 1
    assert not writer.db_down
    rejected = [json.loads(line)["id"] for line in spill.rejected_path.read_text().splitlines()]
    assert rejected == [bad]


async def test_a_rolled_back_target_id_is_not_reused(migrated: AsyncEngine) -> None:
    store = Store(migrated)
    alpha = result(provider="Alpha")
    with pytest.raises(StoreUnavailable):  # the batch fails after Alpha's row was created
        await store.insert_probes(
            [
                ("a" * 32, alpha),
                ("b" * 32, result(provider="Alpha", started_at=datetime(2026, 1, 1))),
            ]
        )
    await store.insert_probes([("c" * 32, result(provider="Beta"))])
    await store.insert_probes([("d" * 32, alpha)])
    from sqlalchemy import select

    from monitor.storage.schema import ProbeRow, TargetRow

    async with migrated.connect() as conn:
        rows = (
            await conn.execute(
                select(ProbeRow.id, TargetRow.provider).join(
                    TargetRow, TargetRow.id == ProbeRow.target_id
                )
            )
        ).all()
    assert dict(rows) == {"c" * 32: "Beta", "d" * 32: "Alpha"}
