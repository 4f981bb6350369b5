"""Engines, migrations and cross-monitor locks: the database's life cycle, thin over SQLAlchemy."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import weakref
import zlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import orjson
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from monitor.errors import DatabaseError, StoreUnavailable
from monitor.redact import short_message

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"
Engine = AsyncEngine
"""The database handle other packages pass around without importing SQLAlchemy."""
SQLITE_BUSY_TIMEOUT_MS = 5000


def make_engine(
    url: str,
    *,
    pool_size: int = 5,
    schema: str | None = None,
    busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS,
) -> AsyncEngine:
    """An async engine. SQLite gets WAL, a busy timeout and foreign keys; PostgreSQL a pool
    with pre-ping, and `schema` as its search path (tests use one schema each)."""
    json_args = {"json_serializer": _json_dumps, "json_deserializer": orjson.loads}
    if url.startswith("sqlite"):
        engine = create_async_engine(
            url, connect_args={"timeout": busy_timeout_ms / 1000}, **json_args
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn: object, _record: ConnectionPoolEntry) -> None:
            cursor = dbapi_conn.cursor()  # type: ignore[attr-defined]
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    connect_args: dict[str, object] = {"timeout": 10}
    if schema is not None:
        connect_args["server_settings"] = {"search_path": schema}
    return create_async_engine(
        url, pool_size=pool_size, pool_pre_ping=True, connect_args=connect_args, **json_args
    )


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL; None for other databases (and in-memory SQLite)."""
    if not url.startswith("sqlite"):
        return None
    name = url.split(":///", 1)[1] if ":///" in url else ""
    name = name.split("?", 1)[0]
    return Path(name) if name and name != ":memory:" else None


_FileId = tuple[int, int]
_sqlite_files: weakref.WeakKeyDictionary[object, tuple[Path, _FileId]] = weakref.WeakKeyDictionary()


def _file_id(path: Path) -> _FileId | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def check_sqlite_file(engine: AsyncEngine) -> None:
    """Raise StoreUnavailable when the SQLite file this engine first wrote to has been deleted
    or replaced: its open connections would go on "storing" into an unlinked inode, and a new
    one would create an empty database. No-op for PostgreSQL. One `stat` per call."""
    path = sqlite_path(engine.url.render_as_string(hide_password=False))
    if path is None:
        return
    now = _file_id(path)
    known = _sqlite_files.get(engine.sync_engine)
    if known is None:
        if now is not None:
            _sqlite_files[engine.sync_engine] = (path, now)
        return
    if now is None:
        raise StoreUnavailable(f"the SQLite file {path} was deleted under provmon")
    if now != known[1]:
        raise StoreUnavailable(
            f"the SQLite file {path} was replaced under provmon (restart it to use the new one)"
        )


def _json_dumps(value: object) -> str:
    # orjson: rollup histograms are the bulk of what is read and written; it is several times
    # faster than the standard library there.
    return orjson.dumps(value).decode()


def alembic_config() -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _current(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(_current)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> tuple[str | None, str | None]:
    """Migrate to `revision`; returns (revision before, revision after)."""

    def run(conn: Connection) -> tuple[str | None, str | None]:
        before = _current(conn)
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
        return before, _current(conn)

    async with engine.begin() as conn:
        return await conn.run_sync(run)


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    def run(conn: Connection) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)

    async with engine.begin() as conn:
        await conn.run_sync(run)


async def require_migrated(engine: AsyncEngine) -> None:
    """Raise DatabaseError unless the schema is at head."""
    current = await current_revision(engine)
    head = head_revision()
    if current != head:
        state = "empty (no schema)" if current is None else f"at revision {current}"
        raise DatabaseError(
            f"the database is {state}, provmon needs revision {head}: run `provmon db upgrade`"
        )


async def schema_problem(
    engine: AsyncEngine, *, timeout_s: float = 5.0, secrets: Sequence[str] = ()
) -> str | None:
    """None when the database answers and its schema is at head; else why not, in one line
    (`secrets` redacted). For readiness checks: never raises for a database fault."""
    try:
        async with asyncio.timeout(timeout_s):
            await require_migrated(engine)
    except DatabaseError as exc:
        return str(exc)
    except (SQLAlchemyError, OSError, TimeoutError, ImportError) as exc:
        return "cannot reach the database: " + short_message(
            str(exc) or type(exc).__name__, list(secrets)
        )
    return None


@contextlib.asynccontextmanager
async def daemon_engine(
    url: str, *, timeout_s: float = 5.0
) -> AsyncIterator[tuple[AsyncEngine, bool]]:
    """The daemon's engine, whether or not the database answers now: yields (engine, reachable).
    A database that answers must be migrated (DatabaseError otherwise, as for every command);
    one that does not answer within `timeout_s` is an outage the daemon rides out, spilling
    until it answers. A missing SQLite file is not an outage: DatabaseError."""

    def reason(exc: BaseException) -> str:
        return short_message(str(exc) or type(exc).__name__, [url])

    path = sqlite_path(url)
    if path is not None and not path.exists():
        raise DatabaseError(f"no database at {path}: run `provmon db upgrade` to create it")
    try:
        engine = make_engine(url)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise DatabaseError(f"cannot use the database URL: {reason(exc)}") from None
    try:
        reachable = True
        try:
            async with asyncio.timeout(timeout_s):
                await require_migrated(engine)
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            reachable = False
            log.warning(
                "database unreachable at start (%s): probing anyway, results wait in the spill",
                reason(exc),
            )
        yield engine, reachable
    finally:
        await engine.dispose()


async def schema_at_head(engine: AsyncEngine) -> bool:
    """The schema is the one this provmon needs (raises SQLAlchemyError/OSError when the
    database cannot be reached)."""
    return await current_revision(engine) == head_revision()


@contextlib.asynccontextmanager
async def connected(
    url: str, *, migrated: bool = True, timeout_s: float = 15.0
) -> AsyncIterator[AsyncEngine]:
    """An engine for one command, reachable (and migrated, unless `migrated=False`), disposed
    after. Every database failure — a bad URL, a refused connection, an error mid-query —
    becomes a DatabaseError with a one-line reason, never a traceback. Only `migrated=False`
    (`provmon db upgrade`, the demo) may create a SQLite file; other commands never do."""

    def reason(exc: BaseException) -> str:
        return short_message(str(exc) or type(exc).__name__, [url])

    path = sqlite_path(url)
    if migrated and path is not None and not path.exists():
        raise DatabaseError(f"no database at {path}: run `provmon db upgrade` to create it")

    try:
        engine = make_engine(url)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise DatabaseError(f"cannot use the database URL: {reason(exc)}") from None
    try:
        try:
            async with asyncio.timeout(timeout_s):
                if migrated:
                    await require_migrated(engine)
                else:
                    async with engine.connect() as conn:
                        await ping(conn)
        except DatabaseError:
            raise
        except (SQLAlchemyError, OSError, TimeoutError, ImportError) as exc:
            raise DatabaseError(f"cannot reach the database: {reason(exc)}") from None
        try:
            yield engine
        except (SQLAlchemyError, OSError, StoreUnavailable) as exc:
            raise DatabaseError(f"database error: {reason(exc)}") from None
    finally:
        await engine.dispose()


def _lock_key(name: str) -> int:
    return zlib.crc32(f"provmon:{name}".encode()) & 0x7FFFFFFF


@contextlib.asynccontextmanager
async def advisory_lock(engine: AsyncEngine, name: str) -> AsyncIterator[bool]:
    """Try to take a cluster-wide lock named `name`; yields whether it was taken.

    PostgreSQL: a session advisory lock, held on its own connection until the block ends.
    SQLite has one writer machine by nature: the lock is always taken.
    """
    if engine.dialect.name != "postgresql":
        yield True
        return
    key = _lock_key(name)
    async with engine.connect() as conn:
        got = bool(
            (await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key})).scalar()
        )
        try:
            yield got
        finally:
            if got:
                await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            await conn.commit()


async def ping(conn: AsyncConnection) -> None:
    await conn.execute(text("SELECT 1"))
