"""Alert rule state and what an evaluation reads: per-vantage and cross-vantage state rows,
the row locks that order monitors, new probes, and the mass-failure reclassification."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from monitor.alert_model import GLOBAL, Observation, Status, StoredState, VantageState
from monitor.results import Outcome, ProbeResult, TargetKey, monitor_fault
from monitor.rollup import Rollup, monitor_fault_deltas, recounted
from monitor.storage.schema import AlertStateRow, ProbeRow, RollupRow, TargetRow
from monitor.storage.sql import dialect_insert

FAILURES = [o.value for o in Outcome if o.counts_against_uptime]
MAX_NEW_PER_PASS = 5000


def state_of(row: Any) -> StoredState:
    return StoredState(
        VantageState(
            status=Status(row.state),
            since=row.since,
            failures=row.consecutive_failures,
            successes=row.consecutive_successes,
            client_errors=row.consecutive_client_errors,
            misconfigured=row.config_incident_id is not None,
            failing_since=row.failing_since,
            succeeding_since=row.succeeding_since,
            last_seen_at=row.last_seen_at,
            evaluated_through=row.evaluated_through,
        ),
        row.open_incident_id,
        row.config_incident_id,
    )


def _observation(row: Any) -> Observation:
    return Observation(
        probe_id=row.id,
        started_at=row.started_at,
        outcome=Outcome(row.outcome),
        error_kind=row.error_kind,
        ttft_ms=row.ttft_ms,
        decode_tps=row.decode_tps,
        quality=row.quality,
    )


_OBS_COLUMNS = (
    ProbeRow.id,
    ProbeRow.target_id,
    ProbeRow.started_at,
    ProbeRow.outcome,
    ProbeRow.error_kind,
    ProbeRow.ttft_ms,
    ProbeRow.decode_tps,
    ProbeRow.quality,
)


class AlertStates:
    """Rule state and probe reads inside one evaluation's transaction."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self._pg = conn.dialect.name == "postgresql"

    async def lock_targets(
        self, target_ids: Sequence[int], now: datetime
    ) -> dict[int, StoredState]:
        """Make sure each target has its cross-vantage row, lock those rows (PostgreSQL; in
        target order) and return them. Whoever changes any state row of a target holds it."""
        if not target_ids:
            return {}
        ins = dialect_insert(self.conn.dialect.name)(AlertStateRow).on_conflict_do_nothing(
            index_elements=["target_id", "vantage"]
        )
        await self.conn.execute(
            ins,
            [
                {
                    "target_id": tid,
                    "vantage": GLOBAL,
                    "state": Status.UP.value,
                    "since": now,
                    "consecutive_failures": 0,
                    "consecutive_successes": 0,
                    "consecutive_client_errors": 0,
                    "updated_at": now,
                }
                for tid in sorted(set(target_ids))
            ],
        )
        query = (
            select(AlertStateRow)
            .where(AlertStateRow.vantage == GLOBAL, AlertStateRow.target_id.in_(target_ids))
            .order_by(AlertStateRow.target_id)
        )
        if self._pg:
            query = query.with_for_update()
        return {row.target_id: state_of(row) for row in (await self.conn.execute(query)).all()}

    async def states(
        self, target_ids: Sequence[int], vantage: str | None = None
    ) -> dict[int, dict[str, StoredState]]:
        """Per-vantage rows of these targets (all vantages, or one), `*` excluded."""
        query = select(AlertStateRow).where(
            AlertStateRow.target_id.in_(target_ids), AlertStateRow.vantage != GLOBAL
        )
        if vantage is not None:
            query = query.where(AlertStateRow.vantage == vantage)
        out: dict[int, dict[str, StoredState]] = {}
        for row in (await self.conn.execute(query)).all():
            out.setdefault(row.target_id, {})[row.vantage] = state_of(row)
        return out

    async def save(self, target_id: int, vantage: str, stored: StoredState, now: datetime) -> None:
        s = stored.state
        values = {
            "state": s.status.value,
            "since": s.since or now,
            "consecutive_failures": s.failures,
            "consecutive_successes": s.successes,
            "consecutive_client_errors": s.client_errors,
            "failing_since": s.failing_since,
            "succeeding_since": s.succeeding_since,
            "last_seen_at": s.last_seen_at,
            "evaluated_through": s.evaluated_through,
            "open_incident_id": stored.open_incident_id,
            "config_incident_id": stored.config_incident_id,
            "updated_at": now,
        }
        ins = dialect_insert(self.conn.dialect.name)(AlertStateRow).values(
            target_id=target_id, vantage=vantage, **values
        )
        await self.conn.execute(
            ins.on_conflict_do_update(index_elements=["target_id", "vantage"], set_=values)
        )

    async def new_probes(
        self, vantage: str, since: Mapping[int, datetime]
    ) -> list[tuple[int, Observation]]:
        """Probes from `vantage` started after each target's mark, oldest first (at most
        MAX_NEW_PER_PASS: the rest is for the next pass)."""
        if not since:
            return []
        found: list[Any] = []
        marks = list(since.items())
        # Each target's own mark in SQL, so targets far behind the others cannot starve them;
        # in groups, to stay within the databases' bound-parameter limits.
        for start in range(0, len(marks), 500):
            group = marks[start : start + 500]
            query = (
                select(*_OBS_COLUMNS)
                .where(
                    ProbeRow.vantage == vantage,
                    or_(
                        *(
                            and_(ProbeRow.target_id == tid, ProbeRow.started_at > mark)
                            for tid, mark in group
                        )
                    ),
                )
                .order_by(ProbeRow.started_at, ProbeRow.id)
                .limit(MAX_NEW_PER_PASS)
            )
            found += (await self.conn.execute(query)).all()
        found.sort(key=lambda row: (row.started_at, row.id))
        return [(row.target_id, _observation(row)) for row in found[:MAX_NEW_PER_PASS]]

    async def latest_before(
        self, vantage: str, target_ids: Sequence[int], start: datetime, end: datetime
    ) -> dict[int, Observation]:
        """Each target's latest probe from `vantage` in [start, end)."""
        query = (
            select(*_OBS_COLUMNS)
            .where(
                ProbeRow.vantage == vantage,
                ProbeRow.target_id.in_(target_ids),
                ProbeRow.started_at >= start,
                ProbeRow.started_at < end,
            )
            .order_by(ProbeRow.started_at)
        )
        return {row.target_id: _observation(row) for row in (await self.conn.execute(query)).all()}

    async def recent_ok(
        self, vantage: str, target_ids: Sequence[int], since: datetime
    ) -> dict[int, list[Observation]]:
        query = select(*_OBS_COLUMNS).where(
            ProbeRow.vantage == vantage,
            ProbeRow.target_id.in_(target_ids),
            ProbeRow.started_at >= since,
            ProbeRow.outcome == Outcome.OK.value,
        )
        out: dict[int, list[Observation]] = {}
        for row in (await self.conn.execute(query)).all():
            out.setdefault(row.target_id, []).append(_observation(row))
        return out

    async def reclassify(self, probe_ids: Sequence[str], kind: str) -> int:
        """Store failed probes as the monitor's own fault (`results.monitor_fault`, error kind
        `kind`; the original kind and message kept in `error_message`), their rollups changed
        by `rollup.monitor_fault_deltas`."""
        if not probe_ids:
            return 0
        rows = (
            await self.conn.execute(
                select(
                    ProbeRow.id,
                    ProbeRow.target_id,
                    ProbeRow.vantage,
                    ProbeRow.workload,
                    ProbeRow.started_at,
                    ProbeRow.outcome,
                    ProbeRow.error_kind,
                    ProbeRow.error_message,
                    TargetRow.model,
                    TargetRow.provider,
                    TargetRow.route,
                )
                .join(TargetRow, TargetRow.id == ProbeRow.target_id)
                .where(ProbeRow.id.in_(list(probe_ids)), ProbeRow.outcome.in_(FAILURES))
            )
        ).all()
        failed = []
        target_ids: dict[TargetKey, int] = {}
        for row in rows:
            r = ProbeResult(
                row.model,
                row.provider,
                row.route,
                row.vantage,
                row.workload,
                row.started_at,
                Outcome(row.outcome),
                error_kind=row.error_kind,
                error_message=row.error_message,
            )
            fault = monitor_fault(r, kind)
            await self.conn.execute(
                update(ProbeRow)
                .where(ProbeRow.id == row.id)
                .values(
                    outcome=fault.outcome.value,
                    error_kind=fault.error_kind,
                    error_message=(fault.error_message or "")[:500],
                )
            )
            failed.append(r)
            target_ids[r.target_key] = row.target_id
        pk = tuple_(RollupRow.target_id, RollupRow.vantage, RollupRow.workload, RollupRow.hour)
        for (target, vantage, workload, hour), delta in monitor_fault_deltas(failed, kind).items():
            key = (target_ids[target], vantage, workload, hour)
            query = select(RollupRow.n, RollupRow.outcomes, RollupRow.error_kinds).where(pk == key)
            if self._pg:
                query = query.with_for_update()
            stored = (await self.conn.execute(query)).one_or_none()
            if stored is None:
                continue
            counts = Rollup.from_columns(stored.n, stored.outcomes, stored.error_kinds, {}, 0.0)
            changed = recounted(counts, delta)
            await self.conn.execute(
                update(RollupRow)
                .where(pk == key)
                .values(outcomes=dict(changed.outcomes), error_kinds=dict(changed.error_kinds))
            )
        return len(rows)


async def all_states(engine: AsyncEngine) -> dict[tuple[TargetKey, str], StoredState]:
    """Every rule state, keyed by target key and vantage (tests, diagnostics)."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(AlertStateRow, TargetRow.model, TargetRow.provider, TargetRow.route).join(
                TargetRow, AlertStateRow.target_id == TargetRow.id
            )
        )
        return {((r.model, r.provider, r.route), r.vantage): state_of(r) for r in rows.all()}
