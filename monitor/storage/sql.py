"""SQL shared by the stores: the dialect's INSERT (for ON CONFLICT), the target-id upsert and
the rollups' join to their targets."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, literal_column, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from monitor.results import TargetKey
from monitor.storage.schema import RollupRow, TargetRow


def dialect_insert(dialect: str) -> Any:
    """The INSERT construct of `dialect`, the one with `on_conflict_do_nothing/update`."""
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


async def ensure_targets(conn: AsyncConnection, keys: Iterable[TargetKey]) -> dict[TargetKey, int]:
    """Ids of these targets, created when new, in the caller's transaction (several monitors
    may create one at once: the first insert wins, every one reads the same id)."""
    wanted = sorted(set(keys))  # one order for every monitor: no deadlock between two
    if not wanted:
        return {}
    ins = dialect_insert(conn.dialect.name)(TargetRow).on_conflict_do_nothing(
        index_elements=["model", "provider", "route"]
    )
    now = datetime.now().astimezone()
    await conn.execute(
        ins, [{"model": m, "provider": p, "route": r, "created_at": now} for m, p, r in wanted]
    )
    rows = await conn.execute(
        select(TargetRow.id, TargetRow.model, TargetRow.provider, TargetRow.route).where(
            tuple_(TargetRow.model, TargetRow.provider, TargetRow.route).in_(wanted)
        )
    )
    return {(m, p, r): tid for tid, m, p, r in rows}


def rollup_target(recent: bool = False) -> ColumnElement[bool]:
    """The join of the rollups to their targets. With `recent` (the hours asked are the last
    few) the rollups' side is an expression (`target_id + 0`) no index serves, so the database
    finds the hours through ix_rollups_hour and each one's target by its id. Otherwise SQLite
    (no statistics) takes the model's targets first and walks every stored hour of each
    through the primary key, whose hour comes after vantage and workload: for the current
    hour of 20 targets with 30 days kept, 14,400 index entries (8–10 ms), growing with what is
    kept. Long ranges keep the plain join: there that walk is the right plan."""
    target_id = RollupRow.target_id + literal_column("0") if recent else RollupRow.target_id
    return TargetRow.id == target_id
