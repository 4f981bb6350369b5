"""The probe store: inserts probes with their rollups in one transaction, and the queries the
daemon needs. Database faults surface as `StoreUnavailable`, so callers never import SQLAlchemy."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, any_, bindparam, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from monitor.errors import StoreUnavailable
from monitor.results import ProbeResult, TargetKey
from monitor.rollup import Rollup, RollupKey, fold
from monitor.storage.database import check_sqlite_file, schema_at_head
from monitor.storage.faults import unavailable
from monitor.storage.outbox import prune_outbox
from monitor.storage.schema import JobRunRow, ProbeRow, RollupRow, TargetRow
from monitor.storage.sql import dialect_insert, ensure_targets

log = logging.getLogger(__name__)

ProbeRecord = tuple[str, ProbeResult]
"""(probe id, result)."""

PROBE_COLUMNS = (
    "vantage",
    "workload",
    "started_at",
    "error_kind",
    "error_message",
    "http_status",
    "retry_after_s",
    "ttft_ms",
    "ttfa_ms",
    "latency_ms",
    "output_tokens",
    "input_tokens",
    "decode_tps",
    "e2e_tps",
    "chunks",
    "buffered",
    "cost_usd",
    "finish_reason",
    "served_by",
    # 0003_probe_phases
    "dns_ms",
    "connect_ms",
    "tls_ms",
    "ttfb_ms",
    "itl_p50_ms",
    "itl_p99_ms",
    "max_gap_ms",
    "flags",
    # 0005_quality
    "quality",
)


ROLLUPS = cast(Table, RollupRow.__table__)
PROBES = cast(Table, ProbeRow.__table__)
ROW_COLUMNS = ("id", "target_id", "outcome", "token_source", *PROBE_COLUMNS)


INT_MAX = 2**31 - 1


def _fit(value: Any, length: int | None) -> Any:
    """A provider-supplied value made storable: NUL bytes stripped, text cut to the column's
    `length`, integers outside its range and non-finite floats dropped (None)."""
    if isinstance(value, str):
        if "\x00" in value:
            value = value.replace("\x00", "")
        return value[:length] if length and len(value) > length else value
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value if -INT_MAX <= value <= INT_MAX else None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return value


# Each probe column with its text length (None: unbounded or not text), worked out once.
_FIT_COLUMNS = tuple(
    (name, getattr(ProbeRow.__table__.c[name].type, "length", None)) for name in PROBE_COLUMNS
)


def probe_row(pid: str, target_id: int, r: ProbeResult) -> dict[str, Any]:
    row: dict[str, Any] = {name: _fit(getattr(r, name), length) for name, length in _FIT_COLUMNS}
    row["id"] = pid
    row["target_id"] = target_id
    row["outcome"] = r.outcome.value
    row["token_source"] = r.token_source.value if r.token_source is not None else None
    return row


def _pg_probe_insert() -> Any:
    """PostgreSQL: the rows as one array per column, `unnest`ed. A multi-row VALUES list is a
    new statement for every batch size, and each is kept prepared on every pooled connection
    (asyncpg's cache, 100 per connection): the daemon's memory crept as batch sizes varied.
    One statement text whatever the number of rows keeps that cache small and flat."""
    arrays = [bindparam(f"a_{name}", type_=ARRAY(PROBES.c[name].type)) for name in ROW_COLUMNS]
    rows = func.unnest(*arrays).table_valued(*ROW_COLUMNS).render_derived()
    return (
        postgresql.insert(PROBES)
        .from_select(list(ROW_COLUMNS), select(*(rows.c[name] for name in ROW_COLUMNS)))
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(PROBES.c.id)
    )


PG_PROBE_INSERT = _pg_probe_insert()


def _rollups_for_update(dialect: str, hours: set[Any], tids: set[int], vantages: set[str]) -> Any:
    """The rollup rows a batch may touch. Plain IN lists on SQLite (a batch spans an hour or
    two: much cheaper than a four-column tuple IN; the few extra rows are dropped by the
    caller); on PostgreSQL `= ANY(array)`, one statement text whatever the list lengths, and
    the rows locked."""
    r = RollupRow
    if dialect != "postgresql":
        return select(r).where(r.hour.in_(hours), r.target_id.in_(tids), r.vantage.in_(vantages))
    return (
        select(r)
        .where(
            r.hour == any_(bindparam("hours", sorted(hours), type_=ARRAY(r.__table__.c.hour.type))),
            r.target_id
            == any_(bindparam("tids", sorted(tids), type_=ARRAY(ROLLUPS.c.target_id.type))),
            r.vantage
            == any_(bindparam("vantages", sorted(vantages), type_=ARRAY(ROLLUPS.c.vantage.type))),
        )
        .with_for_update()
    )


class Store:
    def __init__(self, engine: AsyncEngine, *, verify_schema: bool = False) -> None:
        self.engine = engine
        self.verify_schema = verify_schema  # opened while the database was away
        self._schema_warned = False
        self._dialect = engine.dialect.name
        self._target_ids: dict[TargetKey, int] = {}

    async def _ids(self, conn: AsyncConnection, keys: Iterable[TargetKey]) -> dict[TargetKey, int]:
        """Ids of `keys`, creating missing targets in this transaction. The cache is only
        updated by callers after the transaction commits: a rolled-back id must not stick."""
        found = {k: self._target_ids[k] for k in keys if k in self._target_ids}
        found |= await ensure_targets(conn, (k for k in keys if k not in found))
        return found

    async def target_ids(self, keys: Iterable[TargetKey]) -> dict[TargetKey, int]:
        """Ids of these targets, created when new."""
        wanted = list(keys)
        with unavailable():
            async with self.engine.begin() as conn:
                known = await self._ids(conn, wanted)
        self._target_ids.update(known)
        return {k: known[k] for k in wanted}

    async def ping(self) -> bool:
        """The database answers (and, for SQLite, is still the file it was). A store opened
        while the database was away (`verify_schema`) also checks, once, that the schema it
        finds is at head: until someone runs `provmon db upgrade`, it is not there to write."""
        try:
            check_sqlite_file(self.engine)
            if self.verify_schema:
                if not await schema_at_head(self.engine):
                    if not self._schema_warned:
                        self._schema_warned = True
                        log.error(
                            "the database answers but its schema is not the one provmon needs: "
                            "run `provmon db upgrade`; results wait in the spill until then"
                        )
                    return False
                self.verify_schema = False
            async with self.engine.connect() as conn:
                await conn.execute(select(1))
        except (SQLAlchemyError, OSError, StoreUnavailable):
            return False
        return True

    async def insert_probes(self, records: Sequence[ProbeRecord]) -> int:
        """Insert probes not yet stored and add them to the hourly rollups, atomically.

        Returns how many were new; records whose id is already stored are skipped (replays).
        """
        if not records:
            return 0
        if self.verify_schema:
            raise StoreUnavailable("the database's schema is not verified yet (see ping)")
        check_sqlite_file(self.engine)
        with unavailable(rejects=True):
            async with self.engine.begin() as conn:
                ids = await self._ids(conn, {r.target_key for _, r in records})
                by_id = {pid: r for pid, r in records}
                if self._dialect == "postgresql":
                    columns: dict[str, list[Any]] = {f"a_{name}": [] for name in ROW_COLUMNS}
                    for pid, r in by_id.items():  # column-wise: no dict per row kept
                        row = probe_row(pid, ids[r.target_key], r)
                        for name in ROW_COLUMNS:
                            columns[f"a_{name}"].append(row[name])
                    result = await conn.execute(PG_PROBE_INSERT, columns)
                else:
                    rows = [probe_row(pid, ids[r.target_key], r) for pid, r in by_id.items()]
                    ins = (
                        sqlite.insert(PROBES)
                        .on_conflict_do_nothing(index_elements=["id"])
                        .returning(PROBES.c.id)
                    )
                    # executemany: multi-row VALUES batches from one compiled form.
                    result = await conn.execute(ins, rows)
                inserted = [row[0] for row in result]
                await self._add_rollups(conn, ids, fold(by_id[pid] for pid in inserted))
        self._target_ids.update(ids)
        return len(inserted)

    async def _add_rollups(
        self, conn: AsyncConnection, ids: dict[TargetKey, int], deltas: dict[RollupKey, Rollup]
    ) -> None:
        if not deltas:
            return
        keyed = {(ids[t], v, w, h): d for (t, v, w, h), d in deltas.items()}
        query = _rollups_for_update(
            self._dialect, {k[3] for k in keyed}, {k[0] for k in keyed}, {k[1] for k in keyed}
        )
        existing = {}
        for row in (await conn.execute(query)).all():
            key = (row.target_id, row.vantage, row.workload, row.hour)
            if key in keyed:
                existing[key] = row
        new_rows = []
        updates = []
        for key, delta in keyed.items():
            old = existing.get(key)
            if old is None:
                new_rows.append(
                    {
                        "target_id": key[0],
                        "vantage": key[1],
                        "workload": key[2],
                        "hour": key[3],
                        **delta.to_columns(),
                    }
                )
                continue
            merged = Rollup.from_columns(
                old.n,
                old.outcomes,
                old.error_kinds,
                old.histograms,
                old.cost_usd,
                qualities=old.qualities,
            )
            merged.merge(delta)
            updates.append(
                {"k_target": key[0], "k_vantage": key[1], "k_workload": key[2], "k_hour": key[3]}
                | merged.to_columns()
            )
        if updates:
            t = ROLLUPS.c
            stmt = (
                update(ROLLUPS)
                .where(
                    t.target_id == bindparam("k_target"),
                    t.vantage == bindparam("k_vantage"),
                    t.workload == bindparam("k_workload"),
                    t.hour == bindparam("k_hour"),
                )
                .values(
                    n=bindparam("n"),
                    outcomes=bindparam("outcomes"),
                    error_kinds=bindparam("error_kinds"),
                    histograms=bindparam("histograms"),
                    cost_usd=bindparam("cost_usd"),
                    qualities=bindparam("qualities"),
                )
            )
            await conn.execute(stmt, updates)  # one executemany for every row
        if new_rows:
            await conn.execute(insert(ROLLUPS), new_rows)

    async def spend_since(self, vantage: str, since: datetime) -> float:
        """USD spent on probes from `vantage` since `since`."""
        with unavailable():
            async with self.engine.connect() as conn:
                value = await conn.scalar(
                    select(func.coalesce(func.sum(ProbeRow.cost_usd), 0.0)).where(
                        ProbeRow.vantage == vantage, ProbeRow.started_at >= since
                    )
                )
        return float(value or 0.0)

    async def prune_probes(self, before: datetime) -> int:
        """Delete raw probes started before `before` (rollups stay)."""
        with unavailable():
            async with self.engine.begin() as conn:
                result = await conn.execute(delete(ProbeRow).where(ProbeRow.started_at < before))
        return int(result.rowcount or 0)

    async def prune_bookkeeping(self, before: datetime) -> tuple[int, int]:
        """Delete finished outbox rows (never one still to send, nor one of an open incident)
        and records of once-per-period job runs, both older than `before`. Returns how many
        of each."""
        with unavailable():
            async with self.engine.begin() as conn:
                outbox = await prune_outbox(conn, before)
                runs = await conn.execute(delete(JobRunRow).where(JobRunRow.ran_at < before))
        return outbox, int(runs.rowcount or 0)

    async def job_ran(self, name: str, period: str) -> bool:
        """A run of job `name` for `period` is recorded."""
        with unavailable():
            async with self.engine.connect() as conn:
                found = await conn.scalar(
                    select(func.count())
                    .select_from(JobRunRow)
                    .where(JobRunRow.name == name, JobRunRow.period == period)
                )
        return bool(found)

    async def claim_job_run(self, name: str, period: str, vantage: str, now: datetime) -> bool:
        """Record that job `name` runs for `period`; False when some monitor already did."""
        with unavailable():
            async with self.engine.begin() as conn:
                ins = dialect_insert(self._dialect)(JobRunRow).on_conflict_do_nothing(
                    index_elements=["name", "period"]
                )
                result = await conn.execute(
                    ins.values(name=name, period=period, vantage=vantage, ran_at=now)
                )
                return bool(result.rowcount)

    async def probe_ids(self) -> set[str]:
        async with self.engine.connect() as conn:
            return set((await conn.scalars(select(ProbeRow.id))).all())

    async def count_probes(self, vantage: str | None = None) -> int:
        query = select(func.count()).select_from(ProbeRow)
        if vantage is not None:
            query = query.where(ProbeRow.vantage == vantage)
        async with self.engine.connect() as conn:
            return int(await conn.scalar(query) or 0)

    async def rollups(self) -> dict[RollupKey, Rollup]:
        """Every rollup, keyed by target key, vantage, workload and hour."""
        async with self.engine.connect() as conn:
            targets = {
                row.id: (row.model, row.provider, row.route)
                for row in await conn.execute(select(TargetRow))
            }
            out: dict[RollupKey, Rollup] = {}
            for row in await conn.execute(select(RollupRow)):
                out[(targets[row.target_id], row.vantage, row.workload, row.hour)] = (
                    Rollup.from_columns(
                        row.n,
                        row.outcomes,
                        row.error_kinds,
                        row.histograms,
                        row.cost_usd,
                        qualities=row.qualities,
                    )
                )
            return out
