"""SQL shared by the stores: the dialect's INSERT (for ON CONFLICT) and the target-id upsert."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from monitor.results import TargetKey
from monitor.storage.schema import TargetRow


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
