"""Catalogue storage: snapshots of OpenRouter's endpoints listings, the changes between them,
and their notifications, on SQLite and PostgreSQL.

`record` writes a snapshot, the events it shows against the model's previous snapshot and one
outbox row per event and channel in one transaction, so a change is notified exactly when it is
recorded. A snapshot is unique per model and slot: when several monitors share the database,
the first to write a slot records the changes and the others skip it.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from monitor.alert_model import OutboxStatus
from monitor.catalogue.diff import CatalogueEvent, ChangeKind, StoredEvent, diff
from monitor.catalogue.listing import Endpoint
from monitor.storage.faults import unavailable
from monitor.storage.schema import CatalogueEventRow, CatalogueSnapshotRow, OutboxRow
from monitor.storage.sql import dialect_insert

Notifications = Callable[[int, CatalogueEvent], Sequence[tuple[str, dict[str, Any]]]]
"""(event id, event) → the (channel, payload) outbox rows to write for it."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    model: str
    observed_at: datetime
    vantage: str
    authenticated: bool
    endpoints: list[Endpoint]


def _snapshot(row: Any) -> Snapshot:
    return Snapshot(
        model=row.model,
        observed_at=row.observed_at,
        vantage=row.vantage,
        authenticated=row.authenticated,
        endpoints=[Endpoint.from_json(e) for e in row.endpoints if isinstance(e, dict)],
    )


def _event(row: Any) -> StoredEvent:
    return StoredEvent(
        row.id,
        CatalogueEvent(
            model=row.model,
            endpoint=row.endpoint,
            provider=row.provider,
            kind=ChangeKind(row.kind),
            before=row.before,
            after=row.after,
            at=row.observed_at,
        ),
    )


class CatalogueStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._insert = dialect_insert(engine.dialect.name)

    async def record(
        self,
        model: str,
        slot: int,
        observed_at: datetime,
        vantage: str,
        authenticated: bool,
        endpoints: Sequence[Endpoint],
        notifications: Notifications | None = None,
    ) -> list[StoredEvent] | None:
        """Store a listing and what changed since the model's previous one; None when this
        slot of the model was already recorded (by any monitor)."""
        with unavailable():
            async with self.engine.begin() as conn:
                if self.engine.dialect.name == "postgresql":  # one model's listings in turn
                    key = zlib.crc32(f"provmon:catalogue:{model}".encode()) & 0x7FFFFFFF
                    await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
                ins = self._insert(CatalogueSnapshotRow).on_conflict_do_nothing(
                    index_elements=["model", "slot"]
                )
                result = await conn.execute(
                    ins.values(
                        model=model,
                        slot=slot,
                        observed_at=observed_at,
                        vantage=vantage,
                        authenticated=authenticated,
                        endpoints=[e.to_json() for e in endpoints],
                    ).returning(CatalogueSnapshotRow.id)
                )
                snapshot_id = result.scalar()
                if snapshot_id is None:
                    return None
                previous = (
                    await conn.execute(
                        select(CatalogueSnapshotRow)
                        .where(
                            CatalogueSnapshotRow.model == model,
                            CatalogueSnapshotRow.id != snapshot_id,
                            CatalogueSnapshotRow.observed_at <= observed_at,
                        )
                        .order_by(
                            CatalogueSnapshotRow.observed_at.desc(),
                            CatalogueSnapshotRow.id.desc(),
                        )
                        .limit(1)
                    )
                ).first()
                before = _snapshot(previous).endpoints if previous is not None else None
                stored: list[StoredEvent] = []
                for event in diff(model, before, list(endpoints), observed_at):
                    event_id = (
                        await conn.execute(
                            self._insert(CatalogueEventRow)
                            .values(
                                model=event.model,
                                endpoint=event.endpoint,
                                provider=event.provider,
                                kind=event.kind.value,
                                before=event.before,
                                after=event.after,
                                observed_at=event.at,
                            )
                            .returning(CatalogueEventRow.id)
                        )
                    ).scalar_one()
                    stored.append(StoredEvent(event_id, event))
                    for channel, payload in (notifications or _none)(event_id, event):
                        await conn.execute(
                            self._insert(OutboxRow).values(
                                incident_id=None,
                                transition=f"catalogue:{event_id}",
                                channel=channel,
                                payload=payload,
                                status=OutboxStatus.PENDING.value,
                                attempts=0,
                                next_attempt_at=observed_at,
                                created_at=observed_at,
                            )
                        )
                return stored

    async def events(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        models: Sequence[str] | None = None,
    ) -> list[StoredEvent]:
        """Recorded changes, oldest first."""
        query = select(CatalogueEventRow).order_by(
            CatalogueEventRow.observed_at, CatalogueEventRow.id
        )
        if since is not None:
            query = query.where(CatalogueEventRow.observed_at >= since)
        if until is not None:
            query = query.where(CatalogueEventRow.observed_at < until)
        if models:
            query = query.where(CatalogueEventRow.model.in_(list(models)))
        with unavailable():
            async with self.engine.connect() as conn:
                return [_event(row) for row in (await conn.execute(query)).all()]

    async def snapshots(
        self, model: str, since: datetime | None = None, until: datetime | None = None
    ) -> list[Snapshot]:
        """The model's snapshots observed in [since, until), oldest first."""
        query = (
            select(CatalogueSnapshotRow)
            .where(CatalogueSnapshotRow.model == model)
            .order_by(CatalogueSnapshotRow.observed_at, CatalogueSnapshotRow.id)
        )
        if since is not None:
            query = query.where(CatalogueSnapshotRow.observed_at >= since)
        if until is not None:
            query = query.where(CatalogueSnapshotRow.observed_at < until)
        with unavailable():
            async with self.engine.connect() as conn:
                return [_snapshot(row) for row in (await conn.execute(query)).all()]

    async def prune(self, before: datetime) -> int:
        """Delete snapshots observed before `before`, except each model's latest (the next
        listing is compared with it). Events stay."""
        latest = (
            select(
                CatalogueSnapshotRow.model,
                func.max(CatalogueSnapshotRow.observed_at).label("latest"),
            )
            .group_by(CatalogueSnapshotRow.model)
            .subquery()
        )
        keep = select(CatalogueSnapshotRow.id).join(
            latest,
            and_(
                CatalogueSnapshotRow.model == latest.c.model,
                CatalogueSnapshotRow.observed_at == latest.c.latest,
            ),
        )
        with unavailable():
            async with self.engine.begin() as conn:
                result = await conn.execute(
                    delete(CatalogueSnapshotRow).where(
                        CatalogueSnapshotRow.observed_at < before,
                        CatalogueSnapshotRow.id.not_in(keep),
                    )
                )
        return int(result.rowcount or 0)


def _none(_event_id: int, _event: CatalogueEvent) -> Sequence[tuple[str, dict[str, Any]]]:
    return ()
