"""The evaluator: runs the rules over newly stored probes and records what they decide.

One pass, for this monitor's vantage, in one transaction: read the probes stored since each
target's high-water mark, apply `rules.evaluate_pass`, store probes the mass-failure rule gave
back to the monitor, then lock the targets' cross-vantage rows, read their states and the
incidents those name, and apply what `incidents.decide_target` (and `decide_health`, for the
monitor itself) decides: incidents opened and resolved with their outbox rows, states saved.
Re-running a pass finds nothing new, so a crash anywhere repeats nothing. Reminders and
un-muting after maintenance are `remind`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from monitor.alert_model import (
    MASS_FAILURE_KIND,
    Incident,
    IncidentKind,
    Observation,
    OutboxStatus,
    StoredState,
    VantageState,
)
from monitor.alerts.incidents import (
    Action,
    CountErrors,
    Extend,
    IncidentRef,
    NewIncident,
    Open,
    Resolve,
    decide_health,
    decide_target,
)
from monitor.alerts.payloads import alertmanager_payload, describe
from monitor.alerts.rules import evaluate_pass, round_entry
from monitor.clock import utc_now
from monitor.config import Config
from monitor.maintenance import muting
from monitor.results import Outcome, TargetKey
from monitor.storage.alerts import AlertStore, AlertUnit

log = logging.getLogger(__name__)

LOOKBACK = timedelta(days=1)
"""Probes older than this are history, not news: a pass never reaches further back."""

Target = tuple[int, TargetKey]
"""(target id, target key): what an incident of a target is stored with."""


@dataclass(slots=True)
class PassReport:
    probes: int = 0
    reclassified: int = 0
    opened: int = 0
    resolved: int = 0
    notifications: int = 0


class Evaluator:
    def __init__(
        self,
        cfg: Config,
        store: AlertStore,
        *,
        now: Callable[[], datetime] = utc_now,
        on_outbox: Callable[[], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.settings = cfg.alerts
        self.vantage = cfg.vantage
        self._store = store
        self._now = now
        self._on_outbox = on_outbox
        self._lock = asyncio.Lock()
        self.connectivity_down = False
        self.connectivity_note = ""
        self.budget_note: str | None = None  # set while the daily budget is spent
        intervals = [t.interval_s for t in cfg.targets] or [cfg.schedule.interval_s]
        self.round_s = max(intervals) + cfg.schedule.jitter_s
        self._channels = [c.name for c in cfg.channels]
        self._ids: dict[TargetKey, int] | None = None

    # --- one pass ---------------------------------------------------------------------------

    async def evaluate(self) -> PassReport:
        """Apply the rules to every probe stored since the last pass (this vantage)."""
        async with self._lock:
            report = PassReport()
            try:
                async with self._store.unit() as u:
                    await self._pass(u, self._now(), report)
            except BaseException:
                self._ids = None  # they may have been created in the transaction undone
                raise
            if report.notifications and self._on_outbox is not None:
                self._on_outbox()
            return report

    async def _pass(self, u: AlertUnit, now: datetime, r: PassReport) -> None:
        s, v = self.settings, self.vantage
        if self._ids is None:
            self._ids = await u.target_ids(t.target_key for t in self.cfg.targets)
        ids = self._ids
        keys = {tid: key for key, tid in ids.items()}
        own = {tid: by_v[v] for tid, by_v in (await u.state.states(list(keys), v)).items()}
        floor = now - LOOKBACK
        since = {
            tid: max(own[tid].state.evaluated_through or floor, floor)
            if tid in own
            else now - timedelta(seconds=self.round_s)
            for tid in keys
        }
        new = await u.state.new_probes(v, since)
        r.probes = len(new)
        first = new[0][1].started_at if new else now
        seed = await u.state.latest_before(
            v, list(keys), first - timedelta(seconds=self.round_s), first
        )
        affected = sorted({tid for tid, _ in new})
        recent: Mapping[int, list[Observation]] = {}
        if s.degraded_ttft_p50_ms is not None or s.degraded_decode_tps_p50 is not None:
            recent = await u.state.recent_ok(
                v, affected, now - timedelta(seconds=s.degraded_window_s)
            )
        result = evaluate_pass(
            {tid: st.state for tid, st in own.items()},
            [(tid, obs) for tid, obs in new],
            {tid: round_entry(obs) for tid, obs in seed.items()},
            recent,
            s,
            self.round_s,
            now,
        )
        if result.reclassified:
            r.reclassified = await u.state.reclassify(result.reclassified, MASS_FAILURE_KIND)
            log.warning(
                "mass failure at vantage %s: %d failed probes are the monitor's own fault",
                v,
                r.reclassified,
            )
        reverted = {  # streaks the mass-failure rule took back, of targets with no new probe
            tid: state
            for tid, state in result.states.items()
            if tid not in affected and tid in own and state != own[tid].state
        }
        quorum = await u.state.lock_targets(sorted(set(affected) | set(reverted)), now)
        if reverted:
            fresh = await u.state.states(list(reverted), v)  # read again under the lock
            for tid, state in reverted.items():
                await u.state.save(tid, v, replace(fresh[tid][v], state=state), now)
        # Every vantage's rows of the targets, and the incidents they name, under the lock.
        rows = await u.state.states(affected) if affected else {}
        named = {
            i
            for tid in affected
            for st in (own.get(tid), quorum[tid], *rows.get(tid, {}).values())
            if st is not None
            for i in (st.open_incident_id, st.config_incident_id)
            if i is not None
        }
        incidents = await u.incidents.by_ids(named)
        for tid in affected:
            actions = decide_target(
                v,
                old=own.get(tid, StoredState(VantageState(since=now))),
                state=result.states[tid],
                events=result.events.get(tid, []),
                rows=rows.get(tid, {}),
                quorum=quorum[tid],
                incidents=incidents,
                settings=s,
                now=now,
            )
            await self._apply(u, actions, (tid, keys[tid]), now, r)
        health = decide_health(
            v,
            connectivity_down=self.connectivity_down,
            connectivity_note=self.connectivity_note,
            mass_failure=result.mass_failure,
            open_incidents=await u.incidents.open_now(IncidentKind.MONITOR, v),
            now=now,
            budget_note=self.budget_note,
        )
        await self._apply(u, health, None, now, r)

    # --- applying the decisions ---------------------------------------------------------------

    async def _apply(
        self,
        u: AlertUnit,
        actions: Sequence[Action],
        target: Target | None,
        now: datetime,
        r: PassReport,
    ) -> None:
        """Carry out `actions` in order, for `target` (None: the monitor's own incident)."""
        opened: dict[NewIncident, int] = {}

        def stored(ref: IncidentRef | None) -> int | None:
            return opened[ref] if isinstance(ref, NewIncident) else ref

        for action in actions:
            if isinstance(action, Open):
                kinds = action.error_kinds
                if isinstance(kinds, CountErrors):
                    kinds = await self._count(u, target, kinds)
                incident = await u.incidents.open(
                    action.kind,
                    target,
                    action.vantage,
                    action.started_at,
                    action.detected_at,
                    action.vantages,
                    kinds,
                    action.summary,
                )
                opened[action.ref] = incident.id
                await self._firing(u, incident, now, r)
            elif isinstance(action, Resolve):
                incident_id = stored(action.incident)
                assert incident_id is not None
                await self._resolve(u, incident_id, action, target, r)
            elif isinstance(action, Extend):
                await u.incidents.update(action.incident, vantages=list(action.vantages))
            else:
                assert target is not None, "only a target's plan saves states"
                held = StoredState(
                    action.state, stored(action.open_incident), stored(action.config_incident)
                )
                await u.state.save(target[0], action.vantage, held, now)

    async def _count(self, u: AlertUnit, target: Target | None, c: CountErrors) -> dict[str, int]:
        if target is None:
            return {}
        vantages = list(c.vantages) if c.vantages is not None else None
        if c.client_errors:
            outcomes = [Outcome.CLIENT_ERROR.value]
            return await u.incidents.error_kinds(target[0], c.since, c.until, vantages, outcomes)
        return await u.incidents.error_kinds(target[0], c.since, c.until, vantages)

    async def _firing(self, u: AlertUnit, incident: Incident, now: datetime, r: PassReport) -> None:
        muted = muting(self.cfg.maintenance, incident.target, now) is not None
        status = OutboxStatus.MUTED if muted else OutboxStatus.PENDING
        for channel in self._channels:
            payload = alertmanager_payload(incident, "firing", channel)
            if await u.outbox.add(incident.id, "firing", channel, payload, status, now):
                r.notifications += 0 if muted else 1
        r.opened += 1
        log.warning(
            "incident %d opened: %s%s",
            incident.id,
            payload_summary(incident, "firing"),
            " (muted by a maintenance window)" if muted else "",
        )

    async def _resolve(
        self, u: AlertUnit, incident_id: int, action: Resolve, target: Target | None, r: PassReport
    ) -> None:
        values: dict[str, object] = {"ended_at": action.ended_at}
        if action.recount is not None and target is not None:
            values["error_kinds"] = await self._count(u, target, action.recount)
        closed = await u.incidents.update(incident_id, **values)
        if closed is None:
            return
        r.resolved += 1
        log.warning("incident %d resolved: %s", incident_id, payload_summary(closed, "resolved"))
        if not self.settings.send_resolved:
            return
        for channel, fired in (await u.outbox.statuses(incident_id, "firing")).items():
            if channel not in self._channels:
                continue
            muted = fired is OutboxStatus.MUTED
            payload = alertmanager_payload(closed, "resolved", channel)
            status = OutboxStatus.MUTED if muted else OutboxStatus.PENDING
            if await u.outbox.add(incident_id, "resolved", channel, payload, status, action.at):
                r.notifications += 0 if muted else 1

    # --- reminders and the end of maintenance -----------------------------------------------

    async def remind(self) -> int:
        """Reminders every `repeat_interval_s` while DOWN; notifications muted by a
        maintenance window that has ended while their incident is still open go out now.
        Idempotent and safe from several monitors: the outbox key admits each once."""
        now = self._now()
        queued = 0
        async with self._store.unit() as u:
            for incident in await u.incidents.open_now():
                if muting(self.cfg.maintenance, incident.target, now) is not None:
                    continue
                firing = await u.outbox.statuses(incident.id, "firing")
                muted = [ch for ch, st in firing.items() if st is OutboxStatus.MUTED]
                unmuted = await u.outbox.unmute(incident.id, "firing", muted, now) if muted else 0
                queued += unmuted
                if incident.kind is not IncidentKind.DOWN:
                    continue
                age_s = (now - (incident.detected_at or incident.started_at)).total_seconds()
                n = int(age_s // self.settings.repeat_interval_s)
                if n < 1:
                    continue
                transition = f"reminder:{n}"
                for channel in self._channels:
                    if channel in muted or channel not in firing:
                        continue  # it has just been told (or never was)
                    payload = alertmanager_payload(incident, transition, channel)
                    if await u.outbox.add(
                        incident.id, transition, channel, payload, OutboxStatus.PENDING, now
                    ):
                        queued += 1
        if queued and self._on_outbox is not None:
            self._on_outbox()
        return queued


def payload_summary(incident: Incident, transition: str) -> str:
    return describe(incident, transition)[0]
