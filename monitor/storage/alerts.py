"""Alert storage: rule state, incidents and the outbox, on SQLite and PostgreSQL.

An evaluation runs in one `AlertUnit` (one transaction): it reads the new probes, locks the
targets' cross-vantage rows (PostgreSQL: `FOR UPDATE`, in target order), and writes the new
states, incidents and outbox rows together, so a notification is recorded exactly when its state
change is. The sender claims outbox rows (`FOR UPDATE SKIP LOCKED` on PostgreSQL) so two
monitors never send the same row.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, func, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.orm import aliased

from monitor.alerts.model import (
    GLOBAL,
    Incident,
    IncidentKind,
    Observation,
    OutboxItem,
    OutboxStatus,
    Status,
    VantageState,
)
from monitor.errors import StoreUnavailable
from monitor.results import Outcome, TargetKey
from monitor.rollup import hour_of
from monitor.storage.schema import (
    AlertStateRow,
    IncidentRow,
    OutboxRow,
    ProbeRow,
    RollupRow,
    TargetRow,
)

FAILURES = [o.value for o in Outcome if o.counts_against_uptime]
MAX_NEW_PER_PASS = 5000


def _insert(dialect: str) -> Any:
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


@dataclass(frozen=True, slots=True)
class StoredState:
    """A rule state row: the state and the incidents it holds open."""

    state: VantageState
    open_incident_id: int | None = None
    config_incident_id: int | None = None


def _state_of(row: Any) -> StoredState:
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
    )


def _incident(row: Any, target: TargetKey | None) -> Incident:
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


_OBS_COLUMNS = (
    ProbeRow.id,
    ProbeRow.target_id,
    ProbeRow.started_at,
    ProbeRow.outcome,
    ProbeRow.error_kind,
    ProbeRow.ttft_ms,
    ProbeRow.decode_tps,
)
_INCIDENT_QUERY = select(
    IncidentRow, TargetRow.model, TargetRow.provider, TargetRow.route
).outerjoin(TargetRow, IncidentRow.target_id == TargetRow.id)


def _with_target(row: Any) -> Incident:
    target = (row.model, row.provider, row.route) if row.model is not None else None
    return _incident(row, target)


class AlertUnit:
    """The reads and writes of one evaluation, in one transaction."""

    def __init__(self, conn: AsyncConnection, dialect: str) -> None:
        self.conn = conn
        self._dialect = dialect

    @property
    def _pg(self) -> bool:
        return self._dialect == "postgresql"

    async def target_ids(self, keys: Iterable[TargetKey]) -> dict[TargetKey, int]:
        """Ids of these targets, created when new."""
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return {}
        ins = _insert(self._dialect)(TargetRow).on_conflict_do_nothing(
            index_elements=["model", "provider", "route"]
        )
        now = datetime.now().astimezone()
        await self.conn.execute(
            ins, [{"model": m, "provider": p, "route": r, "created_at": now} for m, p, r in wanted]
        )
        rows = await self.conn.execute(
            select(TargetRow.id, TargetRow.model, TargetRow.provider, TargetRow.route).where(
                tuple_(TargetRow.model, TargetRow.provider, TargetRow.route).in_(wanted)
            )
        )
        return {(m, p, r): tid for tid, m, p, r in rows}

    async def lock_targets(
        self, target_ids: Sequence[int], now: datetime
    ) -> dict[int, StoredState]:
        """Make sure each target has its cross-vantage row, lock those rows (PostgreSQL; in
        target order) and return them. Whoever changes any state row of a target holds it."""
        if not target_ids:
            return {}
        ins = _insert(self._dialect)(AlertStateRow).on_conflict_do_nothing(
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
        return {row.target_id: _state_of(row) for row in (await self.conn.execute(query)).all()}

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
            out.setdefault(row.target_id, {})[row.vantage] = _state_of(row)
        return out

    async def save_state(
        self, target_id: int, vantage: str, stored: StoredState, now: datetime
    ) -> None:
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
        ins = _insert(self._dialect)(AlertStateRow).values(
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
        """Store failed probes as the monitor's own fault (`monitor_error`, `kind`; the
        original kind and message kept in `error_message`), rollups adjusted to match."""
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
                ).where(ProbeRow.id.in_(list(probe_ids)), ProbeRow.outcome.in_(FAILURES))
            )
        ).all()
        moves: dict[tuple[int, str, str, datetime], list[tuple[str, str | None]]] = {}
        for row in rows:
            message = f"{row.error_kind or row.outcome}: {row.error_message or ''}".strip()
            await self.conn.execute(
                update(ProbeRow)
                .where(ProbeRow.id == row.id)
                .values(
                    outcome=Outcome.MONITOR_ERROR.value,
                    error_kind=kind,
                    error_message=message[:500],
                )
            )
            key = (row.target_id, row.vantage, row.workload, hour_of(row.started_at))
            moves.setdefault(key, []).append((row.outcome, row.error_kind))
        pk = tuple_(RollupRow.target_id, RollupRow.vantage, RollupRow.workload, RollupRow.hour)
        for key, changes in moves.items():
            query = select(RollupRow).where(pk == key)
            if self._pg:
                query = query.with_for_update()
            rollup = (await self.conn.execute(query)).one_or_none()
            if rollup is None:
                continue
            outcomes, kinds = Counter(rollup.outcomes), Counter(rollup.error_kinds)
            for outcome, old_kind in changes:
                outcomes[outcome] -= 1
                outcomes[Outcome.MONITOR_ERROR.value] += 1
                if old_kind:
                    kinds[old_kind] -= 1
                kinds[kind] += 1
            await self.conn.execute(
                update(RollupRow)
                .where(pk == key)
                .values(
                    outcomes={k: v for k, v in outcomes.items() if v > 0},
                    error_kinds={k: v for k, v in kinds.items() if v > 0},
                )
            )
        return len(rows)

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

    async def open_incident(
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
        result = await self.conn.execute(
            _insert(self._dialect)(IncidentRow).values(**values).returning(IncidentRow.id)
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

    async def incident(self, incident_id: int) -> Incident | None:
        row = (
            await self.conn.execute(_INCIDENT_QUERY.where(IncidentRow.id == incident_id))
        ).one_or_none()
        return _with_target(row) if row is not None else None

    async def update_incident(self, incident_id: int, **values: Any) -> Incident | None:
        if values:
            await self.conn.execute(
                update(IncidentRow).where(IncidentRow.id == incident_id).values(**values)
            )
        return await self.incident(incident_id)

    async def open_incidents(
        self, kind: IncidentKind | None = None, vantage: str | None = None
    ) -> list[Incident]:
        query = _INCIDENT_QUERY.where(IncidentRow.ended_at.is_(None))
        if kind is not None:
            query = query.where(IncidentRow.kind == kind.value)
        if vantage is not None:
            query = query.where(IncidentRow.vantage == vantage)
        return [_with_target(row) for row in (await self.conn.execute(query)).all()]

    async def add_outbox(
        self,
        incident_id: int,
        transition: str,
        channel: str,
        payload: dict[str, Any],
        status: OutboxStatus,
        now: datetime,
    ) -> bool:
        """Record a notification; False when it was already recorded (by any monitor)."""
        ins = _insert(self._dialect)(OutboxRow).on_conflict_do_nothing(
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

    async def outbox_statuses(self, incident_id: int, transition: str) -> dict[str, OutboxStatus]:
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


class AlertStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._dialect = engine.dialect.name

    @contextlib.asynccontextmanager
    async def unit(self) -> AsyncIterator[AlertUnit]:
        """One transaction; database faults surface as StoreUnavailable."""
        try:
            async with self.engine.begin() as conn:
                yield AlertUnit(conn, self._dialect)
        except (SQLAlchemyError, OSError) as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def claim_outbox(
        self, claimer: str, now: datetime, lease_s: float, limit: int = 50
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
        if self._dialect == "postgresql":
            ids = ids.with_for_update(skip_locked=True)
        async with self.unit() as u:
            claimed = (
                await u.conn.execute(
                    update(OutboxRow)
                    .where(OutboxRow.id.in_(ids.scalar_subquery()))
                    .values(status=OutboxStatus.SENDING.value, claimed_by=claimer, claimed_at=now)
                    .returning(OutboxRow.id)
                )
            ).all()
            if not claimed:
                return []
            rows = (
                await u.conn.execute(
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

    async def renew(self, item_id: int, claimer: str, now: datetime) -> bool:
        """Refresh a claim right before sending; False when another sender took it over."""
        async with self.unit() as u:
            result = await u.conn.execute(
                update(OutboxRow)
                .where(
                    OutboxRow.id == item_id,
                    OutboxRow.claimed_by == claimer,
                    OutboxRow.status == OutboxStatus.SENDING.value,
                )
                .values(claimed_at=now)
            )
        return bool(result.rowcount)

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
        async with self.unit() as u:
            result = await u.conn.execute(
                update(OutboxRow)
                .where(
                    OutboxRow.id == item_id,
                    OutboxRow.claimed_by == claimer,
                    OutboxRow.status == OutboxStatus.SENDING.value,
                )
                .values(**values)
            )
        return bool(result.rowcount)

    async def incidents(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        open_only: bool = False,
        kinds: Sequence[IncidentKind] | None = None,
    ) -> list[Incident]:
        """Incidents overlapping [since, until], oldest first (reports and `provmon
        incidents`)."""
        query = _INCIDENT_QUERY.order_by(IncidentRow.started_at, IncidentRow.id)
        if open_only:
            query = query.where(IncidentRow.ended_at.is_(None))
        if since is not None:
            query = query.where(or_(IncidentRow.ended_at.is_(None), IncidentRow.ended_at >= since))
        if until is not None:
            query = query.where(IncidentRow.started_at < until)
        if kinds is not None:
            query = query.where(IncidentRow.kind.in_([k.value for k in kinds]))
        try:
            async with self.engine.connect() as conn:
                return [_with_target(row) for row in (await conn.execute(query)).all()]
        except (SQLAlchemyError, OSError) as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def outbox(self) -> list[dict[str, Any]]:
        """Every outbox row as a dict (tests, diagnostics)."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(OutboxRow.__table__).order_by(OutboxRow.id))
            return [dict(row) for row in rows.mappings()]

    async def states(self) -> dict[tuple[TargetKey, str], StoredState]:
        """Every rule state, keyed by target key and vantage (tests, diagnostics)."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(AlertStateRow, TargetRow.model, TargetRow.provider, TargetRow.route).join(
                    TargetRow, AlertStateRow.target_id == TargetRow.id
                )
            )
            return {((r.model, r.provider, r.route), r.vantage): _state_of(r) for r in rows.all()}
