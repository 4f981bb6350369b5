"""Shared fixtures: the simulator served in-process on an ephemeral port, provmon's HTTP
session, fresh databases (SQLite and PostgreSQL), and the `postgres` marker put on every test
that uses PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from monitor.config import Config, Target, parse_config
from monitor.logs import stop_logging
from monitor.probing.http import ClientSession, client_session
from monitor.simulator import Simulator, quirks_farm, run_simulator
from monitor.simulator.farm import Farm
from monitor.storage.database import make_engine, upgrade
from tests.factories import FAST_TIMEOUTS, config_doc, direct_target, openrouter_target

API_KEY = "sk-sim-test-key-0123456789"
SIM_THREAD_KEY = "sk-cli-test-secret-998877"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """A test that runs the CLI in-process sets up provmon's logging: its listener writes to
    that test's captured stderr. Undo it after the test, so later tests' records do not go to
    a closed stream from the listener's thread."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    stop_logging()
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    farm = quirks_farm(seed=7, api_key=API_KEY, processing_s=0.05)
    async with run_simulator(farm) as s:
        yield s


def make_config(sim: Simulator, *providers: str, route: str = "direct", **extra: Any) -> Config:
    """A config probing the named simulator providers by one route."""
    target_extra = extra.pop("target", {})
    if route == "direct":
        targets = [
            direct_target(sim.direct_base_url(p), p, key_env="SIM_KEY", **target_extra)
            for p in providers
        ]
    else:
        targets = [openrouter_target(providers)]
    doc = config_doc(
        targets,
        **{
            "vantage": "test",
            "timeouts": FAST_TIMEOUTS,
            "openrouter": {"base_url": sim.openrouter_base_url, "api_key_env": "SIM_KEY"},
            "workloads": {"small": {"input_tokens": 20, "max_tokens": 20}},
            **extra,
        },
    )
    return parse_config(doc, {"SIM_KEY": API_KEY})


@pytest.fixture
async def session() -> AsyncIterator[ClientSession]:
    """The HTTP session provmon itself uses (a fresh connection per probe)."""
    async with client_session() as s:
        yield s


def only(cfg: Config) -> Target:
    assert len(cfg.targets) == 1
    return cfg.targets[0]


# --- databases: every storage test body runs on SQLite and on PostgreSQL --------------------

PG_URL = os.environ.get("PROVMON_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


async def _pg_reachable() -> str | None:
    try:
        conn = await asyncpg.connect(PG_URL.replace("+asyncpg", ""), timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"{type(exc).__name__}: {exc}"
    await conn.close()
    return None


@dataclasses.dataclass
class Db:
    """A fresh, empty database: a temp SQLite file or a PostgreSQL schema of its own."""

    url: str
    schema: str | None

    def engine(self, **kwargs: Any) -> AsyncEngine:
        return make_engine(self.url, schema=self.schema, **kwargs)

    @property
    def kind(self) -> str:
        return "postgresql" if self.schema else "sqlite"


@contextlib.asynccontextmanager
async def fresh_db(kind: str, tmp_path: Path) -> AsyncIterator[Db]:
    if kind == "sqlite":
        yield Db(f"sqlite+aiosqlite:///{tmp_path / 'provmon.db'}", None)
        return
    problem = await _pg_reachable()
    if problem is not None:
        if IN_CI:
            pytest.fail(f"PostgreSQL at {PG_URL} is required in CI: {problem}")
        pytest.skip(f"PostgreSQL at {PG_URL} not reachable: {problem}")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(PG_URL.replace("+asyncpg", ""))
    await conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield Db(PG_URL, schema)
    finally:
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
        await conn.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """`postgres` on every test that needs the local PostgreSQL (`-m "not postgres"`)."""
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        uses = set(getattr(item, "fixturenames", ()))
        if params.get("db") == "postgresql" or uses & {"pg_db", "pg_database"}:
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(params=["sqlite", "postgresql"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Db]:
    async with fresh_db(request.param, tmp_path) as d:
        yield d


@pytest.fixture
async def pg_db(tmp_path: Path) -> AsyncIterator[Db]:
    async with fresh_db("postgresql", tmp_path) as d:
        yield d


@pytest.fixture
async def migrated(db: Db) -> AsyncIterator[AsyncEngine]:
    engine = db.engine()
    await upgrade(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
def threaded_sim() -> Iterator[Simulator]:
    """The simulator in its own event loop on a thread, so the CLI can run its own loop."""
    farm: Farm = quirks_farm(seed=3, api_key=SIM_THREAD_KEY, processing_s=0.05)
    ready = threading.Event()
    box: dict[str, object] = {}
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def serve() -> None:
        async with run_simulator(farm) as sim:
            box["sim"] = sim
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    sim = box["sim"]
    assert isinstance(sim, Simulator)
    yield sim
    loop.call_soon_threadsafe(stop.set)
    thread.join(10)
    loop.close()
