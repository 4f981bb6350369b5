"""Alert storage: the one handle alerting holds, over the modules that do each job.

An evaluation runs in one `AlertUnit` (one transaction): it reads the new probes, locks the
targets' cross-vantage rows (PostgreSQL: `FOR UPDATE`, in target order), and writes the new
states (`alert_state`), incidents (`incidents`) and outbox rows (`outbox`) together, so a
notification is recorded exactly when its state change is. Senders claim, renew and finish
outbox rows through the same handle (`outbox`: the claim protocol)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from monitor.alert_model import Incident, IncidentKind, OutboxItem, OutboxStatus, StoredState
from monitor.results import TargetKey
from monitor.storage.alert_state import AlertStates, all_states
from monitor.storage.faults import unavailable
from monitor.storage.incidents import Incidents, list_incidents
from monitor.storage.outbox import OutboxWrites, claim_due, finish_claim, outbox_rows, renew_claim
from monitor.storage.sql import ensure_targets


class AlertUnit:
    """The reads and writes of one evaluation, in one transaction."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.state = AlertStates(conn)
        self.incidents = Incidents(conn)
        self.outbox = OutboxWrites(conn)

    async def target_ids(self, keys: Iterable[TargetKey]) -> dict[TargetKey, int]:
        """Ids of these targets, created when new."""
        return await ensure_targets(self.conn, keys)


class AlertStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @contextlib.asynccontextmanager
    async def unit(self) -> AsyncIterator[AlertUnit]:
        """One transaction; database faults surface as StoreUnavailable."""
        with unavailable():
            async with self.engine.begin() as conn:
                yield AlertUnit(conn)

    async def claim_outbox(
        self, claimer: str, now: datetime, lease_s: float, limit: int = 50
    ) -> list[OutboxItem]:
        return await claim_due(self.engine, claimer, now, lease_s, limit)

    async def renew(self, item_id: int, claimer: str, now: datetime) -> bool:
        return await renew_claim(self.engine, item_id, claimer, now)

    async def finish(
        self,
        item_id: int,
        claimer: str,
        status: OutboxStatus,
        now: datetime,
        *,
        error: str | None = None,
        next_attempt_at: datetime | None = None,
    ) -> bool:
        return await finish_claim(
            self.engine, item_id, claimer, status, now, error=error, next_attempt_at=next_attempt_at
        )

    async def incidents(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        open_only: bool = False,
        kinds: Sequence[IncidentKind] | None = None,
    ) -> list[Incident]:
        return await list_incidents(
            self.engine, since=since, until=until, open_only=open_only, kinds=kinds
        )

    async def outbox(self) -> list[dict[str, Any]]:
        """Every outbox row as a dict (tests, diagnostics)."""
        return await outbox_rows(self.engine)

    async def states(self) -> dict[tuple[TargetKey, str], StoredState]:
        """Every rule state, keyed by target key and vantage (tests, diagnostics)."""
        return await all_states(self.engine)
