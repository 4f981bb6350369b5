"""The outbox: notifications recorded in the transaction that decided them, then claimed,
sent and finished by senders. A claim is a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL), so
two monitors never send the same row; a sender that died loses its rows after the lease."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.orm import aliased

from monitor.alert_model import OutboxItem, OutboxStatus
from monitor.storage.faults import unavailable
from monitor.storage.schema import IncidentRow, OutboxRow
from monitor.storage.sql import dialect_insert


class OutboxWrites:
    """The outbox inside one evaluation's transaction."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def add(
        self,
        incident_id: int,
        transition: str,
        channel: str,
        payload: dict[str, Any],
        status: OutboxStatus,
        now: datetime,
    ) -> bool:
        """Record a notification; False when it was already recorded (by any monitor)."""
        ins = dialect_insert(self.conn.dialect.name)(OutboxRow).on_conflict_do_nothing(
            index_elements=["incident_id", "transition", "channel"]
        )
        result = await self.conn.execute(
            ins.values(
                incident_id=incident_id,
                transition=transition,
                channel=channel,
                payload=payload,
                status=status.value,
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
        )
        return bool(result.rowcount)

    async def statuses(self, incident_id: int, transition: str) -> dict[str, OutboxStatus]:
        rows = await self.conn.execute(
            select(OutboxRow.channel, OutboxRow.status).where(
                OutboxRow.incident_id == incident_id, OutboxRow.transition == transition
            )
        )
        return {channel: OutboxStatus(status) for channel, status in rows.all()}

    async def unmute(
        self, incident_id: int, transition: str, channels: Sequence[str], now: datetime
    ) -> int:
        result = await self.conn.execute(
            update(OutboxRow)
            .where(
                OutboxRow.incident_id == incident_id,
                OutboxRow.transition == transition,
                OutboxRow.channel.in_(list(channels)),
                OutboxRow.status == OutboxStatus.MUTED.value,
            )
            .values(status=OutboxStatus.PENDING.value, next_attempt_at=now)
        )
        return int(result.rowcount or 0)


async def claim_due(
    engine: AsyncEngine, claimer: str, now: datetime, lease_s: float, limit: int = 50
) -> list[OutboxItem]:
    """Take the notifications due now: pending ones whose time has come, and ones left
    'sending' longer than `lease_s` by a sender that died. Oldest first."""
    stale = now - timedelta(seconds=lease_s)
    due = or_(
        and_(OutboxRow.status == OutboxStatus.PENDING.value, OutboxRow.next_attempt_at <= now),
        and_(OutboxRow.status == OutboxStatus.SENDING.value, OutboxRow.claimed_at < stale),
    )
    earlier = aliased(OutboxRow)
    unsent_before = exists().where(
        earlier.incident_id == OutboxRow.incident_id,
        earlier.channel == OutboxRow.channel,
        earlier.id < OutboxRow.id,
        earlier.status.in_([OutboxStatus.PENDING.value, OutboxStatus.SENDING.value]),
    )
    # A channel gets an incident's notifications in order: firing before resolved.
    ids = select(OutboxRow.id).where(due, ~unsent_before).order_by(OutboxRow.id).limit(limit)
    if engine.dialect.name == "postgresql":
        ids = ids.with_for_update(skip_locked=True)
    with unavailable():
        async with engine.begin() as conn:
            claimed = (
                await conn.execute(
                    update(OutboxRow)
                    .where(OutboxRow.id.in_(ids.scalar_subquery()))
                    .values(status=OutboxStatus.SENDING.value, claimed_by=claimer, claimed_at=now)
                    .returning(OutboxRow.id)
                )
            ).all()
            if not claimed:
                return []
            rows = (
                await conn.execute(
                    select(OutboxRow, IncidentRow.ended_at)
                    .outerjoin(IncidentRow, OutboxRow.incident_id == IncidentRow.id)
                    .where(OutboxRow.id.in_([r[0] for r in claimed]))
                    .order_by(OutboxRow.id)
                )
            ).all()
    return [
        OutboxItem(
            id=r.id,
            incident_id=r.incident_id,
            transition=r.transition,
            channel=r.channel,
            payload=r.payload,
            attempts=r.attempts,
            incident_open=r.ended_at is None,
        )
        for r in rows
    ]


async def renew_claim(engine: AsyncEngine, item_id: int, claimer: str, now: datetime) -> bool:
    """Refresh a claim right before sending; False when another sender took it over."""
    with unavailable():
        async with engine.begin() as conn:
            result = await conn.execute(
                update(OutboxRow)
                .where(
                    OutboxRow.id == item_id,
                    OutboxRow.claimed_by == claimer,
                    OutboxRow.status == OutboxStatus.SENDING.value,
                )
                .values(claimed_at=now)
            )
    return bool(result.rowcount)


async def finish_claim(
    engine: AsyncEngine,
    item_id: int,
    claimer: str,
    status: OutboxStatus,
    now: datetime,
    *,
    error: str | None = None,
    next_attempt_at: datetime | None = None,
) -> bool:
    """Record how a claimed send ended; False when the claim was lost meanwhile."""
    values: dict[str, Any] = {
        "status": status.value,
        "attempts": OutboxRow.attempts + (1 if status is not OutboxStatus.CANCELLED else 0),
        "last_error": error,
    }
    if status is OutboxStatus.SENT:
        values["sent_at"] = now
    if next_attempt_at is not None:
        values["next_attempt_at"] = next_attempt_at
    with unavailable():
        async with engine.begin() as conn:
            result = await conn.execute(
                update(OutboxRow)
                .where(
                    OutboxRow.id == item_id,
                    OutboxRow.claimed_by == claimer,
                    OutboxRow.status == OutboxStatus.SENDING.value,
                )
                .values(**values)
            )
    return bool(result.rowcount)


async def outbox_rows(engine: AsyncEngine) -> list[dict[str, Any]]:
    """Every outbox row as a dict (tests, diagnostics)."""
    async with engine.connect() as conn:
        found = await conn.execute(select(OutboxRow.__table__).order_by(OutboxRow.id))
        return [dict(row) for row in found.mappings()]


DONE = (OutboxStatus.SENT, OutboxStatus.FAILED, OutboxStatus.CANCELLED, OutboxStatus.MUTED)


async def prune_outbox(conn: AsyncConnection, before: datetime) -> int:
    """Delete finished notifications (sent, given up, cancelled, muted) created before `before`
    whose incident has ended: a row still to be sent, or of an incident still open (its
    reminders and its resolution still refer to it), is never deleted."""
    ended = select(IncidentRow.id).where(IncidentRow.ended_at.is_not(None))
    result = await conn.execute(
        delete(OutboxRow).where(
            OutboxRow.created_at < before,
            OutboxRow.status.in_([str(s) for s in DONE]),
            or_(OutboxRow.incident_id.is_(None), OutboxRow.incident_id.in_(ended)),
        )
    )
    return int(result.rowcount or 0)
