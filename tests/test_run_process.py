"""`provmon run` as a process: SIGTERM drains and exits 0; `kill -9` while the database is away
loses nothing the spill file holds, and a restart replays it once."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from monitor.simulator import Simulator
from monitor.storage.database import make_engine, upgrade
from monitor.storage.store import Store
from tests.conftest import API_KEY, IN_CI, PG_URL, SIM_THREAD_KEY
from tests.factories import TINY, config_doc, direct_target, toml_text
from tests.tcpproxy import TcpProxy

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]


def config_text(sim: Simulator, db_url: str, spill: Path, key_env: str) -> str:
    targets = [
        direct_target(sim.direct_base_url(p), p, key_env=key_env, workloads=["tiny"], interval_s=1)
        for p in ("plain", "comments", "usage-none")
    ]
    doc = config_doc(
        targets,
        database=db_url,
        spill=spill,
        vantage="proc",
        timeouts={"first_token_s": 2, "idle_s": 1, "total_s": 5},
        workloads={"tiny": TINY},
        schedule={"jitter_s": 0.05, "drain_s": 5},
    )
    return toml_text(doc)


def sqlite_count(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("select count(*) from probes").fetchone()[0])


def test_sigterm_drains_and_exits_zero(threaded_sim: Simulator, tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    cfg = tmp_path / "provmon.toml"
    cfg.write_text(
        config_text(threaded_sim, f"sqlite+aiosqlite:///{db}", tmp_path / "spill.jsonl", "K")
    )
    env = {"K": SIM_THREAD_KEY, "PATH": "/usr/bin:/bin"}
    run = [sys.executable, "-m", "monitor"]
    subprocess.run([*run, "db", "upgrade", "-c", str(cfg)], check=True, env=env, timeout=60)
    with subprocess.Popen(
        [*run, "--log-format", "json", "run", "-c", str(cfg)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            deadline = time.monotonic() + 20
            while sqlite_count(db) < 6:
                assert time.monotonic() < deadline, "no probes stored"
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                time.sleep(0.1)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=15) == 0
            assert proc.stderr is not None
            logs = [json.loads(line) for line in proc.stderr.read().splitlines() if line]
        finally:
            if proc.poll() is None:
                proc.kill()
    messages = [entry["message"] for entry in logs]
    assert any(m.startswith("stopped:") for m in messages)
    assert all({"ts", "level", "logger", "message"} <= set(e) for e in logs)
    assert SIM_THREAD_KEY not in json.dumps(logs)
    stored = sqlite_count(db)
    served = [t for t in threaded_sim.farm.truth if t.closed_by == "server"]
    # Every request the simulator answered in full became a stored probe, and SIGTERM let
    # the probes in flight finish: none was cut off by the monitor.
    assert stored == len(served)
    assert [t for t in threaded_sim.farm.truth if t.closed_by == "client"] == []


@pytest.fixture
async def pg_database() -> AsyncIterator[str]:
    """A database of its own on the local PostgreSQL, for a daemon in another process."""
    try:
        admin = await asyncpg.connect(PG_URL.replace("+asyncpg", ""), timeout=3)
    except (OSError, asyncpg.PostgresError) as exc:
        if IN_CI:
            pytest.fail(f"PostgreSQL is required in CI: {exc}")
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    name = f"provmon_{uuid.uuid4().hex[:10]}"
    await admin.execute(f"CREATE DATABASE {name}")
    try:
        yield PG_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


async def wait_until(predicate: object, timeout_s: float, what: str) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout_s
    while not await predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def test_kill_9_while_database_is_away_loses_nothing(
    sim: Simulator, pg_database: str, tmp_path: Path
) -> None:
    engine = make_engine(pg_database)
    await upgrade(engine)
    store = Store(engine)
    proxy = TcpProxy("127.0.0.1", 5432)
    await proxy.start()
    spill = tmp_path / "spill.jsonl"
    cfg = tmp_path / "provmon.toml"
    via_proxy = pg_database.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    cfg.write_text(config_text(sim, via_proxy, spill, "K"))
    env = {"K": API_KEY, "PATH": "/usr/bin:/bin"}
    cmd = [sys.executable, "-m", "monitor", "run", "-c", str(cfg)]

    async def count() -> int:
        return await store.count_probes()

    async def spilled_lines() -> int:
        return len(spill.read_text().splitlines()) if spill.exists() else 0

    try:
        first = await asyncio.create_subprocess_exec(
            *cmd, env=env, stderr=asyncio.subprocess.DEVNULL
        )

        async def some_stored() -> bool:
            return await count() >= 3

        await wait_until(some_stored, 20, "first probes")
        await proxy.cut()

        async def some_spilled() -> bool:
            return await spilled_lines() >= 6

        await wait_until(some_spilled, 20, "probes spilled")
        first.kill()  # kill -9: no drain, no flush
        await first.wait()
        spilled_ids = {json.loads(line)["id"] for line in spill.read_text().splitlines() if line}
        before = await count()
        await proxy.restore()
        second = await asyncio.create_subprocess_exec(
            *cmd, env=env, stderr=asyncio.subprocess.DEVNULL
        )

        async def replayed() -> bool:
            return spill.exists() and spill.stat().st_size == 0 and await count() > before

        await wait_until(replayed, 30, "the spill replayed")
        second.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(second.wait(), 15) == 0
    finally:
        for p in ("first", "second"):
            proc = locals().get(p)
            if proc is not None and proc.returncode is None:
                proc.kill()
                await proc.wait()
        await proxy.cut()
    ids = await store.probe_ids()
    assert spilled_ids <= ids  # nothing the spill held was lost
    rollups = await store.rollups()
    assert sum(r.n for r in rollups.values()) == len(ids)  # and nothing counted twice
    await engine.dispose()


@pytest.mark.parametrize("outage", ["refused", "black-holed"])
async def test_starts_and_probes_while_the_database_is_away(
    sim: Simulator, pg_database: str, tmp_path: Path, outage: str
) -> None:
    """`provmon run` started during an outage probes anyway (spilling), `check` still says the
    database is unreachable, and every probe the simulator served is stored once it answers."""
    engine = make_engine(pg_database)
    await upgrade(engine)
    store = Store(engine)
    proxy = TcpProxy("127.0.0.1", 5432)
    await proxy.start()
    if outage == "refused":
        await proxy.cut()
    else:
        proxy.hang()
    spill = tmp_path / "spill.jsonl"
    cfg = tmp_path / "provmon.toml"
    via_proxy = pg_database.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    cfg.write_text(config_text(sim, via_proxy, spill, "K"))
    env = {"K": API_KEY, "PATH": "/usr/bin:/bin"}
    base = [sys.executable, "-m", "monitor"]
    check = await asyncio.create_subprocess_exec(
        *base,
        "check",
        "-c",
        str(cfg),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, check_err = await check.communicate()
    assert check.returncode == 1
    assert b"database" in check_err
    sim.farm.truth.clear()
    proc = await asyncio.create_subprocess_exec(
        *base, "run", "-c", str(cfg), env=env, stderr=asyncio.subprocess.DEVNULL
    )
    try:

        async def spilling() -> bool:
            return spill.exists() and len(spill.read_text().splitlines()) >= 6

        await wait_until(spilling, 30, "probes spilled while the database is away")
        assert await store.count_probes() == 0
        if outage == "refused":
            await proxy.restore()
        else:
            proxy.unhang()

        async def replayed() -> bool:
            return spill.stat().st_size == 0 and await store.count_probes() >= 6

        await wait_until(replayed, 40, "the spill replayed once the database answers")
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 20) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await proxy.cut()
    served = [t for t in sim.farm.truth if t.closed_by == "server"]
    ids = await store.probe_ids()
    assert len(ids) == len(served)  # every probe served is stored, none twice
    rollups = await store.rollups()
    assert sum(r.n for r in rollups.values()) == len(ids)
    await engine.dispose()
