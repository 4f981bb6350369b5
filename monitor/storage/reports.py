"""Queries behind reports and status: rollups and raw probes of a period, frozen reports,
incidents, and the latest alert state."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from monitor.results import Outcome, ProbeResult, TokenSource
from monitor.rollup import Rollup, RollupKey
from monitor.storage.faults import unavailable
from monitor.storage.schema import (
    AlertStateRow,
    FrozenReportRow,
    IncidentRow,
    ProbeRow,
    RollupRow,
    TargetRow,
)
from monitor.storage.sql import dialect_insert, rollup_target
from monitor.storage.store import PROBE_COLUMNS

_TARGET_COLUMNS = (
    TargetRow.model.label("t_model"),
    TargetRow.provider.label("t_provider"),
    TargetRow.route.label("t_route"),
)


async def rollups_between(
    engine: AsyncEngine,
    start: datetime,
    end: datetime,
    model: str | None = None,
    metrics: Collection[str] | None = None,
    *,
    recent: bool = False,
) -> dict[RollupKey, Rollup]:
    """Hourly rollups of the hours overlapping [start, end), optionally of one model. With
    `metrics`, only those histograms are read: the database extracts them from the JSON, so
    the rest is never sent or decoded (and error kinds are left out too). `recent`: the hours
    are the last few (`sql.rollup_target`)."""
    c = RollupRow.__table__.c
    if metrics is None:
        columns: list[Any] = [RollupRow.__table__]
    else:
        columns = [c.target_id, c.vantage, c.workload, c.hour, c.n, c.outcomes, c.cost_usd]
        columns.append(c.qualities)
        columns += [RollupRow.histograms[m].label(f"h_{i}") for i, m in enumerate(metrics)]
    query = (
        select(*columns, *_TARGET_COLUMNS)
        .join(TargetRow, rollup_target(recent))
        .where(RollupRow.hour >= start.replace(minute=0, second=0, microsecond=0))
        .where(RollupRow.hour < end)
    )
    if model is not None:
        query = query.where(TargetRow.model == model)
    out: dict[RollupKey, Rollup] = {}
    with unavailable():
        async with engine.connect() as conn:
            for row in (await conn.execute(query)).all():
                key = (row.t_model, row.t_provider, row.t_route)
                if metrics is None:
                    histograms, kinds = row.histograms, row.error_kinds
                else:
                    found = ((m, getattr(row, f"h_{i}")) for i, m in enumerate(metrics))
                    histograms, kinds = {m: h for m, h in found if h is not None}, {}
                out[(key, row.vantage, row.workload, row.hour)] = Rollup.from_columns(
                    row.n, row.outcomes, kinds, histograms, row.cost_usd, qualities=row.qualities
                )
    return out


def _result(row: Any, model: str, provider: str, route: str) -> ProbeResult:
    values = {name: getattr(row, name) for name in PROBE_COLUMNS}
    return ProbeResult(
        model=model,
        provider=provider,
        route=route,
        outcome=Outcome(row.outcome),
        token_source=TokenSource(row.token_source) if row.token_source else None,
        **values,
    )


async def probes_between(
    engine: AsyncEngine, start: datetime, end: datetime, model: str | None = None
) -> list[ProbeResult]:
    """Raw probes started in [start, end) (within retention), optionally of one model."""
    query = (
        select(ProbeRow.__table__, *_TARGET_COLUMNS)
        .join(TargetRow, TargetRow.id == ProbeRow.target_id)
        .where(ProbeRow.started_at >= start, ProbeRow.started_at < end)
    )
    if model is not None:
        query = query.where(TargetRow.model == model)
    with unavailable():
        async with engine.connect() as conn:
            rows = (await conn.execute(query)).all()
    return [_result(row, row.t_model, row.t_provider, row.t_route) for row in rows]


async def status_samples(engine: AsyncEngine, start: datetime, end: datetime) -> list[ProbeResult]:
    """Probes started in [start, end) with only what `provmon status` reads (outcome, time,
    TTFT, decode and e2e speed, quality): a fraction of the cost of whole rows."""
    c = ProbeRow.__table__.c
    query = (
        select(
            c.vantage,
            c.workload,
            c.started_at,
            c.outcome,
            c.ttft_ms,
            c.decode_tps,
            c.e2e_tps,
            c.quality,
            *_TARGET_COLUMNS,
        )
        .join(TargetRow, TargetRow.id == ProbeRow.target_id)
        .where(ProbeRow.started_at >= start, ProbeRow.started_at < end)
    )
    with unavailable():
        async with engine.connect() as conn:
            rows = (await conn.execute(query)).all()
    return [
        ProbeResult(
            row.t_model,
            row.t_provider,
            row.t_route,
            row.vantage,
            row.workload,
            row.started_at,
            Outcome(row.outcome),
            ttft_ms=row.ttft_ms,
            decode_tps=row.decode_tps,
            e2e_tps=row.e2e_tps,
            quality=row.quality,
        )
        for row in rows
    ]


async def models_between(
    engine: AsyncEngine, start: datetime, end: datetime, source: str = "rollups"
) -> list[str]:
    """Models with rollups (hours overlapping [start, end)) or raw probes in the period."""
    if source == "rollups":
        hour_start = start.replace(minute=0, second=0, microsecond=0)
        query = (
            select(TargetRow.model)
            .join(RollupRow, RollupRow.target_id == TargetRow.id)
            .where(RollupRow.hour >= hour_start, RollupRow.hour < end)
        )
    else:
        query = (
            select(TargetRow.model)
            .join(ProbeRow, ProbeRow.target_id == TargetRow.id)
            .where(ProbeRow.started_at >= start, ProbeRow.started_at < end)
        )
    async with engine.connect() as conn:
        return sorted(set((await conn.scalars(query.distinct())).all()))


async def frozen_report(engine: AsyncEngine, period: str, model: str) -> dict[str, Any] | None:
    async with engine.connect() as conn:
        data = await conn.scalar(
            select(FrozenReportRow.data).where(
                FrozenReportRow.period == period, FrozenReportRow.model == model
            )
        )
    return dict(data) if data is not None else None


async def frozen_models(engine: AsyncEngine, period: str) -> list[str]:
    async with engine.connect() as conn:
        rows = await conn.scalars(
            select(FrozenReportRow.model).where(FrozenReportRow.period == period)
        )
        return sorted(rows.all())


async def freeze_report(
    engine: AsyncEngine, period: str, model: str, data: dict[str, Any], now: datetime
) -> bool:
    """Store a finished period's report; False when one was frozen already (kept as it was)."""
    ins = dialect_insert(engine.dialect.name)(FrozenReportRow)
    async with engine.begin() as conn:
        result = await conn.execute(
            ins.values(
                period=period, model=model, generated_at=now, data=data
            ).on_conflict_do_nothing(index_elements=["period", "model"])
        )
    return bool(result.rowcount)


async def incidents_between(
    engine: AsyncEngine, start: datetime, end: datetime, model: str | None = None
) -> list[tuple[Any, str | None, str | None, str | None]]:
    """Incidents overlapping [start, end), with their target's model, provider and route."""
    query = (
        select(IncidentRow.__table__, *_TARGET_COLUMNS)
        .outerjoin(TargetRow, TargetRow.id == IncidentRow.target_id)
        .where(
            IncidentRow.started_at < end,
            (IncidentRow.ended_at.is_(None)) | (IncidentRow.ended_at > start),
        )
        .order_by(IncidentRow.started_at)
    )
    if model is not None:
        query = query.where(TargetRow.model == model)
    async with engine.connect() as conn:
        return [
            (row, row.t_model, row.t_provider, row.t_route)
            for row in (await conn.execute(query)).all()
        ]


async def alert_states(engine: AsyncEngine) -> dict[tuple[str, str, str], dict[str, str]]:
    """Each target's alert state per vantage (`*` for the quorum view)."""
    query = select(
        AlertStateRow.vantage,
        AlertStateRow.state,
        TargetRow.model,
        TargetRow.provider,
        TargetRow.route,
    ).join(TargetRow, and_(TargetRow.id == AlertStateRow.target_id))
    out: dict[tuple[str, str, str], dict[str, str]] = {}
    async with engine.connect() as conn:
        for vantage, state, m, p, r in (await conn.execute(query)).all():
            out.setdefault((m, p, r), {})[vantage] = state
    return out
