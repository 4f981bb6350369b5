"""Incidents: opened, read, updated and closed inside an evaluation's transaction, the error
kinds they count from stored probes, and the incident list of reports and `provmon incidents`."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from monitor.alert_model import Incident, IncidentKind
from monitor.results import TargetKey
from monitor.storage.alert_state import FAILURES
from monitor.storage.faults import unavailable
from monitor.storage.schema import IncidentRow, ProbeRow, TargetRow
from monitor.storage.sql import dialect_insert

_INCIDENT_QUERY = select(
    IncidentRow, TargetRow.model, TargetRow.provider, TargetRow.route
).outerjoin(TargetRow, IncidentRow.target_id == TargetRow.id)


def _incident(row: Any) -> Incident:
    target = (row.model, row.provider, row.route) if row.model is not None else None
    return Incident(
        id=row.id,
        kind=IncidentKind(row.kind),
        target=target,
        vantage=row.vantage,
        started_at=row.started_at,
        ended_at=row.ended_at,
        detected_at=row.detected_at,
        vantages=tuple(row.vantages or ()),
        error_kinds={str(k): int(v) for k, v in (row.error_kinds or {}).items()},
        summary=row.summary,
    )


class Incidents:
    """Incidents inside one evaluation's transaction."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def error_kinds(
        self,
        target_id: int,
        since: datetime,
        until: datetime,
        vantages: Sequence[str] | None = None,
        outcomes: Sequence[str] = FAILURES,
    ) -> dict[str, int]:
        """Error kinds of a target's failures (or other `outcomes`) in [since, until]."""
        query = (
            select(ProbeRow.error_kind, func.count())
            .where(
                ProbeRow.target_id == target_id,
                ProbeRow.started_at >= since,
                ProbeRow.started_at <= until,
                ProbeRow.outcome.in_(list(outcomes)),
            )
            .group_by(ProbeRow.error_kind)
        )
        if vantages is not None:
            query = query.where(ProbeRow.vantage.in_(list(vantages)))
        return {str(k or "unknown"): int(n) for k, n in (await self.conn.execute(query)).all()}

    async def open(
        self,
        kind: IncidentKind,
        target: tuple[int, TargetKey] | None,
        vantage: str | None,
        started_at: datetime,
        detected_at: datetime,
        vantages: Sequence[str] = (),
        error_kinds: Mapping[str, int] | None = None,
        summary: str | None = None,
    ) -> Incident:
        values = {
            "target_id": target[0] if target else None,
            "kind": kind.value,
            "vantage": vantage,
            "started_at": started_at,
            "ended_at": None,
            "detected_at": detected_at,
            "vantages": list(vantages),
            "error_kinds": dict(error_kinds or {}),
            "summary": summary,
        }
        insert = dialect_insert(self.conn.dialect.name)
        result = await self.conn.execute(
            insert(IncidentRow).values(**values).returning(IncidentRow.id)
        )
        return Incident(
            id=int(result.scalar_one()),
            kind=kind,
            target=target[1] if target else None,
            vantage=vantage,
            started_at=started_at,
            ended_at=None,
            detected_at=detected_at,
            vantages=tuple(vantages),
            error_kinds=dict(error_kinds or {}),
            summary=summary,
        )

    async def get(self, incident_id: int) -> Incident | None:
        row = (
            await self.conn.execute(_INCIDENT_QUERY.where(IncidentRow.id == incident_id))
        ).one_or_none()
        return _incident(row) if row is not None else None

    async def by_ids(self, incident_ids: Collection[int]) -> dict[int, Incident]:
        """These incidents (open or not), by id; ids not found are left out."""
        if not incident_ids:
            return {}
        query = _INCIDENT_QUERY.where(IncidentRow.id.in_(sorted(incident_ids)))
        return {row.id: _incident(row) for row in (await self.conn.execute(query)).all()}

    async def update(self, incident_id: int, **values: Any) -> Incident | None:
        if values:
            await self.conn.execute(
                update(IncidentRow).where(IncidentRow.id == incident_id).values(**values)
            )
        return await self.get(incident_id)

    async def open_now(
        self, kind: IncidentKind | None = None, vantage: str | None = None
    ) -> list[Incident]:
        query = _INCIDENT_QUERY.where(IncidentRow.ended_at.is_(None))
        if kind is not None:
            query = query.where(IncidentRow.kind == kind.value)
        if vantage is not None:
            query = query.where(IncidentRow.vantage == vantage)
        return [_incident(row) for row in (await self.conn.execute(query)).all()]


async def list_incidents(
    engine: AsyncEngine,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    open_only: bool = False,
    kinds: Sequence[IncidentKind] | None = None,
) -> list[Incident]:
    """Incidents overlapping [since, until], oldest first (reports and `provmon incidents`)."""
    query = _INCIDENT_QUERY.order_by(IncidentRow.started_at, IncidentRow.id)
    if open_only:
        query = query.where(IncidentRow.ended_at.is_(None))
    if since is not None:
        query = query.where(or_(IncidentRow.ended_at.is_(None), IncidentRow.ended_at >= since))
    if until is not None:
        query = query.where(IncidentRow.started_at < until)
    if kinds is not None:
        query = query.where(IncidentRow.kind.in_([k.value for k in kinds]))
    with unavailable():
        async with engine.connect() as conn:
            return [_incident(row) for row in (await conn.execute(query)).all()]
