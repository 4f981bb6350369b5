"""Queries behind the live pages (`provmon serve`): recent probes of one model, incidents,
open incidents per model and the database's readiness. Read-only."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from monitor.alert_model import Incident, IncidentKind
from monitor.catalogue.listing import Endpoint
from monitor.errors import DatabaseError, StoreUnavailable
from monitor.results import Outcome, ProbeResult, TargetKey
from monitor.storage.database import require_migrated
from monitor.storage.reports import alert_states
from monitor.storage.schema import (
    CatalogueSnapshotRow,
    IncidentRow,
    ProbeRow,
    RollupRow,
    TargetRow,
)
from monitor.storage.sql import rollup_target

OUTCOMES = tuple(o.value for o in Outcome)


async def recent_samples(
    engine: AsyncEngine, start: datetime, end: datetime, model: str | None = None
) -> list[ProbeResult]:
    """Probes started in [start, end), optionally of one model, with only what the live pages
    read: outcome, time, TTFT, e2e latency, decode and e2e speed, quality verdict."""
    c = ProbeRow.__table__.c
    query = (
        select(
            TargetRow.model,
            TargetRow.provider,
            TargetRow.route,
            c.vantage,
            c.workload,
            c.started_at,
            c.outcome,
            c.ttft_ms,
            c.latency_ms,
            c.decode_tps,
            c.e2e_tps,
            c.quality,
        )
        .join(TargetRow, TargetRow.id == ProbeRow.target_id)
        .where(ProbeRow.started_at >= start, ProbeRow.started_at < end)
    )
    if model is not None:
        query = query.where(TargetRow.model == model)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(query)).all()
    except (SQLAlchemyError, OSError) as exc:
        raise StoreUnavailable(str(exc)) from exc
    return [
        ProbeResult(
            row.model,
            row.provider,
            row.route,
            row.vantage,
            row.workload,
            row.started_at,
            Outcome(row.outcome),
            ttft_ms=row.ttft_ms,
            latency_ms=row.latency_ms,
            decode_tps=row.decode_tps,
            e2e_tps=row.e2e_tps,
            quality=row.quality,
        )
        for row in rows
    ]


async def hourly_outcomes(
    engine: AsyncEngine,
    start: datetime,
    end: datetime,
    model: str | None = None,
    *,
    recent: bool = False,
) -> dict[TargetKey, dict[datetime, Counter[str]]]:
    """Outcome counts per target and hour of the rollups of hours in [start, end), vantages and
    workloads summed by the database (only integers cross the wire, no histograms). `recent`:
    the hours are the last few (`sql.rollup_target`)."""
    sums = [
        func.sum(func.coalesce(RollupRow.outcomes[name].as_integer(), 0)).label(name)
        for name in OUTCOMES
    ]
    query = (
        select(TargetRow.model, TargetRow.provider, TargetRow.route, RollupRow.hour, *sums)
        .join(TargetRow, rollup_target(recent))
        .where(RollupRow.hour >= start, RollupRow.hour < end)
        .group_by(
            TargetRow.model,
            TargetRow.provider,
            TargetRow.route,
            RollupRow.target_id,
            RollupRow.hour,
        )
    )
    if model is not None:
        query = query.where(TargetRow.model == model)
    out: dict[TargetKey, dict[datetime, Counter[str]]] = {}
    try:
        async with engine.connect() as conn:
            for row in (await conn.execute(query)).all():
                counts = Counter(
                    {name: int(n) for name, n in zip(OUTCOMES, row[4:], strict=True) if n}
                )
                out.setdefault((row.model, row.provider, row.route), {})[row.hour] = counts
    except (SQLAlchemyError, OSError) as exc:
        raise StoreUnavailable(str(exc)) from exc
    return out


async def first_probe_at(
    engine: AsyncEngine, start: datetime, end: datetime, model: str | None = None
) -> datetime | None:
    """When the first probe in [start, end) started (of `model`), or None."""
    query = (
        select(func.min(ProbeRow.started_at))
        .join(TargetRow, TargetRow.id == ProbeRow.target_id)
        .where(ProbeRow.started_at >= start, ProbeRow.started_at < end)
    )
    if model is not None:
        query = query.where(TargetRow.model == model)
    try:
        async with engine.connect() as conn:
            found = await conn.scalar(query)
    except (SQLAlchemyError, OSError) as exc:
        raise StoreUnavailable(str(exc)) from exc
    return found if isinstance(found, datetime) else None


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
        vantages=tuple(str(v) for v in row.vantages or ()),
        error_kinds={str(k): int(v) for k, v in (row.error_kinds or {}).items()},
        summary=row.summary,
    )


async def incidents_since(
    engine: AsyncEngine, since: datetime, model: str | None = None, limit: int = 500
) -> list[Incident]:
    """Incidents open at or after `since` (still open, or ended after it), newest first, at most
    `limit`; with `model`, only that model's targets' incidents."""
    query = (
        select(IncidentRow.__table__, TargetRow.model, TargetRow.provider, TargetRow.route)
        .outerjoin(TargetRow, TargetRow.id == IncidentRow.target_id)
        .where(or_(IncidentRow.ended_at.is_(None), IncidentRow.ended_at >= since))
        .order_by(IncidentRow.started_at.desc(), IncidentRow.id.desc())
        .limit(limit)
    )
    if model is not None:
        query = query.where(TargetRow.model == model)
    try:
        async with engine.connect() as conn:
            return [_incident(row) for row in (await conn.execute(query)).all()]
    except (SQLAlchemyError, OSError) as exc:
        raise StoreUnavailable(str(exc)) from exc


async def open_incident_counts(engine: AsyncEngine) -> dict[str, int]:
    """Open incidents per model (of the provider kinds: down and degraded)."""
    query = (
        select(TargetRow.model, func.count())
        .select_from(IncidentRow)
        .join(TargetRow, TargetRow.id == IncidentRow.target_id)
        .where(
            IncidentRow.ended_at.is_(None),
            IncidentRow.kind.in_([IncidentKind.DOWN.value, IncidentKind.DEGRADED.value]),
        )
        .group_by(TargetRow.model)
    )
    try:
        async with engine.connect() as conn:
            return {str(m): int(n) for m, n in (await conn.execute(query)).all()}
    except (SQLAlchemyError, OSError) as exc:
        raise StoreUnavailable(str(exc)) from exc


async def latest_listing(
    engine: AsyncEngine, model: str, since: datetime
) -> tuple[datetime, list[Endpoint]] | None:
    """The model's latest catalogue snapshot observed since `since`: when, and its
    endpoints (what OpenRouter lists and publishes of each); None without one."""
    query = (
        select(CatalogueSnapshotRow.observed_at, CatalogueSnapshotRow.endpoints)
        .where(CatalogueSnapshotRow.model == model, CatalogueSnapshotRow.observed_at >= since)
        .order_by(CatalogueSnapshotRow.observed_at.desc())
        .limit(1)
    )
    try:
        async with engine.connect() as conn:
            row = (await conn.execute(query)).first()
    except (SQLAlchemyError, OSError) as exc:
        raise StoreUnavailable(str(exc)) from exc
    if row is None:
        return None
    found = [Endpoint.from_json(e) for e in row.endpoints or () if isinstance(e, dict)]
    return row.observed_at, found


async def target_states(engine: AsyncEngine) -> dict[TargetKey, dict[str, str]]:
    """`monitor.storage.reports.alert_states`, with faults as StoreUnavailable."""
    try:
        return await alert_states(engine)
    except (SQLAlchemyError, OSError) as exc:
        raise StoreUnavailable(str(exc)) from exc


async def readiness(engine: AsyncEngine) -> str | None:
    """None when the database answers and is migrated to head; else why not, in one line
    without the URL (it may carry a password)."""
    try:
        await require_migrated(engine)
    except DatabaseError as exc:
        return str(exc)
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        return f"database unreachable ({type(exc).__name__})"
    return None
