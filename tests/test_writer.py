"""The writer keeps probing off the database: batches, spills when the database goes away,
replays when it is back, and never loses or duplicates a probe."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
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


async def test_an_unavailable_database_is_one_short_line(pg_db: Db) -> None:
    """What the writer logs when the database goes away mid-statement: the driver's reason,
    not the statement with a batch of provider text as its parameters."""
    proxy = TcpProxy("127.0.0.1", 5432)
    await proxy.start()
    engine = make_engine(PG_URL.replace(":5432", f":{proxy.port}"), schema=pg_db.schema)
    locker = pg_db.engine()
    await upgrade(engine)
    store = Store(engine)
    try:
        async with locker.connect() as conn:
            await conn.execute(text("LOCK TABLE probes IN EXCLUSIVE MODE"))
            batch = [("b" * 32, result(error_message="provider text " * 50))]
            insert = asyncio.create_task(store.insert_probes(batch))
            await asyncio.sleep(0.5)  # waiting on the lock
            await proxy.cut()
            with pytest.raises(StoreUnavailable) as caught:
                await insert
            await conn.rollback()
    finally:
        await locker.dispose()
        await engine.dispose()
    message = str(caught.value)
    assert "INSERT" not in message
    assert "provider text" not in message
    assert 0 < len(message) <= 300
    assert "\n" not in message


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
    assert writer.spill_bytes == spill.size() > 0
    writer.start()
    await wait_for(lambda: not writer.db_down)
    await writer.close()
    assert writer.spill_bytes == 0
    assert await store.probe_ids() == {pid for pid, _ in records}
    assert await store.count_probes() == 30


async def test_results_submitted_while_a_replay_waits_are_spilled_within_ack_s(
    pg_db: Db, tmp_path: Path
) -> None:
    """The database answers pings but a replay's insert waits (here on a table lock): what
    probes submit meanwhile is in the fsynced spill within ack_s, not held in memory until the
    replay is done; then everything is stored once."""
    engine, locker = pg_db.engine(), pg_db.engine()
    await upgrade(engine)
    store = Store(engine)
    spill = SpillFile(tmp_path / "spill.jsonl")
    left = [(f"{i:032x}", result(started_at=T0)) for i in range(50)]
    spill.append(left)  # left by a writer that died during an outage
    writer = ProbeWriter(
        store, spill, flush_interval_s=0.05, retry_interval_s=0.05, db_timeout_s=30, ack_s=1.0
    )
    try:
        async with locker.connect() as conn:
            await conn.execute(text("LOCK TABLE probes IN EXCLUSIVE MODE"))
            writer.start()
            await asyncio.sleep(0.3)  # pinged, replaying, its insert waiting on the lock
            assert writer.db_down
            during = {writer.submit(result()) for _ in range(20)}
            t0 = asyncio.get_running_loop().time()
            await wait_for(lambda: during <= spilled_ids(spill), timeout_s=5)
            assert asyncio.get_running_loop().time() - t0 < 1.0
            await conn.rollback()
        await wait_for(lambda: not writer.db_down and writer.backlog == 0, 20)
        await writer.close()
        assert await store.probe_ids() == {pid for pid, _ in left} | during
        assert await store.count_probes() == 70
        assert spill.size() == 0
    finally:
        await locker.dispose()
        await engine.dispose()


async def test_close_during_a_waiting_replay_is_bounded_and_keeps_everything(
    pg_db: Db, tmp_path: Path
) -> None:
    engine, locker = pg_db.engine(), pg_db.engine()
    await upgrade(engine)
    spill = SpillFile(tmp_path / "spill.jsonl")
    left = [(f"{i:032x}", result(started_at=T0)) for i in range(30)]
    spill.append(left)
    writer = ProbeWriter(
        Store(engine), spill, flush_interval_s=0.05, retry_interval_s=0.05, db_timeout_s=30
    )
    try:
        async with locker.connect() as conn:
            await conn.execute(text("LOCK TABLE probes IN EXCLUSIVE MODE"))
            writer.start()
            await asyncio.sleep(0.3)  # replaying, its insert waiting on the lock
            late = {writer.submit(result()) for _ in range(5)}
            t0 = asyncio.get_running_loop().time()
            await writer.close(timeout_s=1.0)
            assert asyncio.get_running_loop().time() - t0 < 2.0
            assert spilled_ids(spill) == {pid for pid, _ in left} | late
            ours = [t for t in asyncio.all_tasks() if t.get_name().startswith("probe-")]
            assert all(t.done() or t.cancelling() for t in ours)  # no orphan left running
            await conn.rollback()
    finally:
        await locker.dispose()
        await engine.dispose()


def test_spill_is_read_in_slices_from_an_offset(tmp_path: Path) -> None:
    spill = SpillFile(tmp_path / "s.jsonl")
    records = [(f"{i:032x}", result(error_message="x" * 300)) for i in range(4000)]
    spill.append(records)
    assert spill.size() > 2 * 1024 * 1024  # more than one copy slice
    seen, offset = [], 0
    while True:
        got, end = spill.read(64 * 1024, offset)
        if end == offset:
            break
        seen += got
        offset = end
    assert seen == records
    big = ("b" * 32, result(error_message="y" * 200_000))  # longer than the slice
    spill.append([big])
    assert spill.read(64 * 1024, offset) == ([big], spill.size())
    spill.append(records[:1])
    spill.drop_through(offset)  # streamed: the tail kept, in order
    assert spill.read() == ([big, records[0]], spill.size())


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


def spilled_ids(spill: SpillFile) -> set[str]:
    records, _ = spill.read()
    return {pid for pid, _ in records}


@pytest.mark.slow
async def test_a_hung_database_is_spilled_within_ack_s(
    proxied_pg: tuple[TcpProxy, AsyncEngine], tmp_path: Path
) -> None:
    """PostgreSQL stops answering without refusing (a partition): within ack_s of being
    submitted every result is in the fsynced spill, though the insert is still waiting."""
    proxy, engine = proxied_pg
    store = Store(engine)
    spill = SpillFile(tmp_path / "spill.jsonl")
    writer = ProbeWriter(
        store, spill, flush_interval_s=0.05, retry_interval_s=0.2, db_timeout_s=30, ack_s=1.0
    )
    writer.start()
    ids = {writer.submit(result()) for _ in range(20)}
    await wait_for(lambda: writer.stats.inserted == 20)
    proxy.hang()
    hung = {writer.submit(result()) for _ in range(30)}
    t0 = asyncio.get_running_loop().time()
    await wait_for(lambda: hung <= spilled_ids(spill), timeout_s=5)
    assert asyncio.get_running_loop().time() - t0 < 1.0 + 1.0  # ack_s plus an fsync
    assert writer.db_down
    assert writer.stats.ack_timeouts >= 1
    later = {writer.submit(result()) for _ in range(10)}  # while hung: straight to the spill
    await wait_for(lambda: later <= spilled_ids(spill), timeout_s=3)
    proxy.unhang()
    await wait_for(lambda: not writer.db_down and writer.backlog == 0, 40)
    await writer.close()
    assert await store.probe_ids() == ids | hung | later
    assert await store.count_probes() == 60  # the late insert and the replay: once
    assert sum(r.n for r in (await store.rollups()).values()) == 60


@pytest.mark.slow
async def test_close_is_bounded_while_the_database_hangs(
    proxied_pg: tuple[TcpProxy, AsyncEngine], tmp_path: Path
) -> None:
    proxy, engine = proxied_pg
    spill = SpillFile(tmp_path / "spill.jsonl")
    writer = ProbeWriter(Store(engine), spill, flush_interval_s=0.05, db_timeout_s=30, ack_s=0.5)
    writer.start()
    proxy.hang()
    ids = {writer.submit(result()) for _ in range(10)}
    t0 = asyncio.get_running_loop().time()
    await writer.close(timeout_s=3)
    assert asyncio.get_running_loop().time() - t0 < 4
    assert spilled_ids(spill) == ids
    proxy.unhang()


async def test_far_behind_spills_whole_batches_and_submit_does_no_io(
    migrated: AsyncEngine, tmp_path: Path
) -> None:
    store = Store(migrated)
    spill = SpillFile(tmp_path / "spill.jsonl")
    writer = ProbeWriter(
        store, spill, max_queue=50, batch_max=20, flush_interval_s=0.05, retry_interval_s=0.1
    )
    ids = {writer.submit(result()) for _ in range(500)}  # writer not started: nothing written
    assert spill.size() == 0
    assert writer.backlog == 500
    writer.start()
    await wait_for(lambda: writer.backlog == 0 and not writer.db_down, 20)
    await writer.close()
    assert writer.stats.spilled > 0  # the first batches went to disk while it was far behind
    assert await store.probe_ids() == ids
    assert await store.count_probes() == 500


async def test_an_unwritable_spill_is_logged_once_and_nothing_is_lost(
    proxied_pg: tuple[TcpProxy, AsyncEngine],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    proxy, engine = proxied_pg
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the spill's folder should be")
    spill = SpillFile(blocked / "spill.jsonl")
    store = Store(engine)
    writer = ProbeWriter(
        store, spill, flush_interval_s=0.02, retry_interval_s=0.2, db_timeout_s=2, ack_s=0.3
    )
    writer.start()
    await proxy.cut()
    ids = {writer.submit(result()) for _ in range(15)}
    await wait_for(lambda: writer.stats.spill_failures >= 20)
    errors = [r for r in caplog.records if "cannot write the spill file" in r.getMessage()]
    assert len(errors) == 1
    assert "(File exists)" in errors[0].getMessage()  # the cause, from mkdir
    assert not any(r.exc_info for r in caplog.records)  # no traceback per attempt
    await proxy.restore()
    await wait_for(lambda: writer.backlog == 0 and not writer.db_down, 20)
    await writer.close()
    assert await store.probe_ids() == ids


def test_spill_writability_is_proven(tmp_path: Path) -> None:
    SpillFile(tmp_path / "deep" / "er" / "spill.jsonl").check_writable()
    assert list((tmp_path / "deep" / "er").iterdir()) == []  # the probe file is gone
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError):
        SpillFile(tmp_path / "file" / "spill.jsonl").check_writable()
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "spill.jsonl").write_text("")
    (ro / "spill.jsonl").chmod(0o400)
    if os.geteuid() != 0:  # root writes anyway
        with pytest.raises(PermissionError):
            SpillFile(ro / "spill.jsonl").check_writable()


async def test_a_deleted_sqlite_file_is_an_outage_within_one_batch(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    await upgrade(engine)
    store = Store(engine)
    spill = SpillFile(tmp_path / "spill.jsonl")
    writer = ProbeWriter(store, spill, flush_interval_s=0.05, retry_interval_s=0.1)
    writer.start()
    first = {writer.submit(result()) for _ in range(5)}
    await wait_for(lambda: writer.stats.inserted == 5)
    for name in ("p.db", "p.db-wal", "p.db-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_path / name)
    after = {writer.submit(result()) for _ in range(5)}
    await wait_for(lambda: after <= spilled_ids(spill), timeout_s=5)
    assert writer.db_down
    assert writer.stats.inserted == 5  # nothing went into the unlinked inode
    await asyncio.sleep(0.3)
    assert writer.db_down  # pings fail too while the file is gone
    await writer.close()
    await engine.dispose()
    assert not path.exists()  # and no empty database was created in its place
    assert spilled_ids(spill) == after
    assert first.isdisjoint(after)


async def test_a_replaced_sqlite_file_is_an_outage(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    await upgrade(engine)
    store = Store(engine)
    await store.insert_probes([("a" * 32, result())])
    (tmp_path / "new.db").write_bytes(path.read_bytes())
    (tmp_path / "new.db").replace(path)
    with pytest.raises(StoreUnavailable, match="replaced"):
        await store.insert_probes([("b" * 32, result())])
    assert not await store.ping()
    await engine.dispose()
