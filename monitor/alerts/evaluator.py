"""The evaluator: runs the rules over newly stored probes and records what they decide.

One pass, for this monitor's vantage, in one transaction: read the probes stored since each
target's high-water mark, apply `rules.evaluate_pass`, store probes the mass-failure rule gave
back to the monitor, then per target recompute the cross-vantage (quorum) state under its row
lock, and open or resolve incidents with their outbox rows. Re-running a pass finds nothing new,
so a crash anywhere repeats nothing. Reminders and un-muting after maintenance are `remind`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from monitor.alerts.model import (
    GLOBAL,
    MASS_FAILURE_KIND,
    ConfigChange,
    Event,
    Incident,
    IncidentKind,
    Observation,
    OutboxStatus,
    Status,
    StatusChange,
    VantageState,
)
from monitor.alerts.payloads import alertmanager_payload, describe
from monitor.alerts.rules import evaluate_pass, quorum_status, round_entry
from monitor.clock import utc_now
from monitor.config import Config
from monitor.maintenance import muting
from monitor.results import Outcome, TargetKey
from monitor.storage.alerts import AlertStore, AlertUnit, StoredState

log = logging.getLogger(__name__)

LOOKBACK = timedelta(days=1)
"""Probes older than this are history, not news: a pass never reaches further back."""

_INCIDENT_OF = {Status.DOWN: IncidentKind.DOWN, Status.DEGRADED: IncidentKind.DEGRADED}


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
        intervals = [t.interval_s for t in cfg.targets] or [cfg.schedule.interval_s]
        self.round_s = max(intervals) + cfg.schedule.jitter_s
        self._channels = [c.name for c in cfg.channels]
        self._ids: dict[TargetKey, int] | None = None

    # --- notifications --------------------------------------------------------------------

    async def _firing(self, u: AlertUnit, incident: Incident, now: datetime, r: PassReport) -> None:
        muted = muting(self.cfg.maintenance, incident.target, now) is not None
        status = OutboxStatus.MUTED if muted else OutboxStatus.PENDING
        for channel in self._channels:
            payload = alertmanager_payload(incident, "firing", channel)
            if await u.add_outbox(incident.id, "firing", channel, payload, status, now):
                r.notifications += 0 if muted else 1
        r.opened += 1
        log.warning(
            "incident %d opened: %s%s",
            incident.id,
            payload_summary(incident, "firing"),
            " (muted by a maintenance window)" if muted else "",
        )

    async def _resolve(
        self, u: AlertUnit, incident_id: int | None, at: datetime, r: PassReport, tid: int | None
    ) -> None:
        if incident_id is None:
            return
        incident = await u.incident(incident_id)
        if incident is None or incident.ended_at is not None:
            return
        values: dict[str, object] = {"ended_at": max(at, incident.started_at)}
        if tid is not None and incident.kind is not IncidentKind.DEGRADED:
            vantages = None if incident.kind is IncidentKind.DOWN else [incident.vantage or ""]
            outcomes = (
                [Outcome.CLIENT_ERROR.value] if incident.kind is IncidentKind.CONFIG else None
            )
            values["error_kinds"] = await u.error_kinds(
                tid,
                incident.started_at,
                at,
                vantages,
                **({"outcomes": outcomes} if outcomes else {}),
            )
        closed = await u.update_incident(incident_id, **values)
        if closed is None:
            return
        r.resolved += 1
        log.warning("incident %d resolved: %s", incident_id, payload_summary(closed, "resolved"))
        if not self.settings.send_resolved:
            return
        for channel, fired in (await u.outbox_statuses(incident_id, "firing")).items():
            if channel not in self._channels:
                continue
            muted = fired is OutboxStatus.MUTED
            payload = alertmanager_payload(closed, "resolved", channel)
            status = OutboxStatus.MUTED if muted else OutboxStatus.PENDING
            if await u.add_outbox(incident_id, "resolved", channel, payload, status, at):
                r.notifications += 0 if muted else 1

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
        own = {tid: by_v[v] for tid, by_v in (await u.states(list(keys), v)).items()}
        floor = now - LOOKBACK
        since = {
            tid: max(own[tid].state.evaluated_through or floor, floor)
            if tid in own
            else now - timedelta(seconds=self.round_s)
            for tid in keys
        }
        new = await u.new_probes(v, since)
        r.probes = len(new)
        first = new[0][1].started_at if new else now
        seed = await u.latest_before(v, list(keys), first - timedelta(seconds=self.round_s), first)
        affected = sorted({tid for tid, _ in new})
        recent: Mapping[int, list[Observation]] = {}
        if s.degraded_ttft_p50_ms is not None or s.degraded_decode_tps_p50 is not None:
            recent = await u.recent_ok(v, affected, now - timedelta(seconds=s.degraded_window_s))
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
            r.reclassified = await u.reclassify(result.reclassified, MASS_FAILURE_KIND)
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
        globals_ = await u.lock_targets(sorted(set(affected) | set(reverted)), now)
        if reverted:
            fresh = await u.states(list(reverted), v)  # read again under the lock
            for tid, state in reverted.items():
                await u.save_state(tid, v, replace(fresh[tid][v], state=state), now)
        for tid in affected:
            await self._target(
                u,
                tid,
                keys[tid],
                own.get(tid, StoredState(VantageState(since=now))),
                result.states[tid],
                result.events.get(tid, []),
                globals_[tid],
                now,
                r,
            )
        await self._monitor_health(u, result.mass_failure, now, r)

    async def _target(
        self,
        u: AlertUnit,
        tid: int,
        key: TargetKey,
        old: StoredState,
        state: VantageState,
        events: list[Event],
        glob: StoredState,
        now: datetime,
        r: PassReport,
    ) -> None:
        v = self.vantage
        config_id = old.config_incident_id
        for event in events:
            if isinstance(event, ConfigChange) and event.opened and config_id is None:
                kinds = {event.error_kind or "client_error": self.settings.failure_threshold}
                incident = await u.open_incident(
                    IncidentKind.CONFIG, (tid, key), v, event.at, now, (v,), kinds
                )
                config_id = incident.id
                await self._firing(u, incident, now, r)
            elif isinstance(event, ConfigChange) and not event.opened:
                await self._resolve(u, config_id, event.at, r, tid)
                config_id = None
        # Across vantages: this vantage's new view, the others' stored views.
        rows = (await u.states([tid])).get(tid, {})  # read under the target's lock
        views = {vv: st.state for vv, st in rows.items()}
        views[v] = state
        verdict = quorum_status(views, self.settings, now)
        before = glob.state.status
        after, voters = verdict if verdict is not None else (before, ())
        open_id = glob.open_incident_id
        if after is not before:
            # Ended at the first ok probe of this vantage's recovery, when that decided it.
            up = any(isinstance(e, StatusChange) and e.after is Status.UP for e in events)
            await self._resolve(u, open_id, (state.since or now) if up else now, r, tid)
            open_id = None
            if after in _INCIDENT_OF:
                starts = [
                    views[vv].failing_since or views[vv].since or now
                    for vv in voters
                    if views[vv].status is Status.DOWN
                ]
                started = min(starts) if starts else now
                kinds = await u.error_kinds(tid, started, now) if after is Status.DOWN else {}
                summary = self._degraded_note() if after is Status.DEGRADED else None
                incident = await u.open_incident(
                    _INCIDENT_OF[after], (tid, key), None, started, now, voters, kinds, summary
                )
                open_id = incident.id
                await self._firing(u, incident, now, r)
            glob = replace(glob, state=replace(glob.state, status=after, since=now))
        elif open_id is not None and voters:
            current = await u.incident(open_id)
            if current is not None and not set(voters) <= set(current.vantages):
                await u.update_incident(
                    open_id, vantages=sorted(set(current.vantages) | set(voters))
                )
        # This vantage alone sees it DOWN: its own problem, reported as such. Once the
        # provider is DOWN, the other vantages' own incidents are superseded.
        vantage_id = rows[v].open_incident_id if v in rows else old.open_incident_id
        if after is Status.DOWN:
            for vv, st in rows.items():
                if vv != v and st.open_incident_id is not None:
                    await self._resolve(u, st.open_incident_id, now, r, tid)
                    await u.save_state(tid, vv, replace(st, open_incident_id=None), now)
        alone = state.status is Status.DOWN and after is not Status.DOWN
        if alone and vantage_id is None:
            incident = await u.open_incident(
                IncidentKind.VANTAGE,
                (tid, key),
                v,
                state.failing_since or state.since or now,
                now,
                (v,),
                await u.error_kinds(tid, state.since or now, now, [v]),
            )
            vantage_id = incident.id
            await self._firing(u, incident, now, r)
        elif not alone and vantage_id is not None:
            await self._resolve(u, vantage_id, now, r, tid)
            vantage_id = None
        await u.save_state(tid, v, StoredState(state, vantage_id, config_id), now)
        await u.save_state(tid, GLOBAL, replace(glob, open_incident_id=open_id), now)

    def _degraded_note(self) -> str:
        s = self.settings
        bounds = []
        if s.degraded_ttft_p50_ms is not None:
            bounds.append(f"p50 TTFT above {s.degraded_ttft_p50_ms:g} ms")
        if s.degraded_decode_tps_p50 is not None:
            bounds.append(f"p50 decode speed below {s.degraded_decode_tps_p50:g} tokens/s")
        return f"{' or '.join(bounds)} over {s.degraded_window_s:g} s"

    async def _monitor_health(self, u: AlertUnit, mass: bool, now: datetime, r: PassReport) -> None:
        """One 'monitor connectivity' incident per vantage while its check fails or a round
        fails nearly everywhere."""
        want = self.connectivity_down or mass
        current = await u.open_incidents(IncidentKind.MONITOR, self.vantage)
        if want and not current:
            why = (
                self.connectivity_note
                if self.connectivity_down
                else ("nearly every target failed in the same round")
            )
            incident = await u.open_incident(
                IncidentKind.MONITOR, None, self.vantage, now, now, (self.vantage,), {}, why
            )
            await self._firing(u, incident, now, r)
        elif not want:
            for incident in current:
                await self._resolve(u, incident.id, now, r, None)

    # --- reminders and the end of maintenance -----------------------------------------------

    async def remind(self) -> int:
        """Reminders every `repeat_interval_s` while DOWN; notifications muted by a
        maintenance window that has ended while their incident is still open go out now.
        Idempotent and safe from several monitors: the outbox key admits each once."""
        now = self._now()
        queued = 0
        async with self._store.unit() as u:
            for incident in await u.open_incidents():
                if muting(self.cfg.maintenance, incident.target, now) is not None:
                    continue
                firing = await u.outbox_statuses(incident.id, "firing")
                muted = [ch for ch, st in firing.items() if st is OutboxStatus.MUTED]
                unmuted = await u.unmute(incident.id, "firing", muted, now) if muted else 0
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
                    if await u.add_outbox(
                        incident.id, transition, channel, payload, OutboxStatus.PENDING, now
                    ):
                        queued += 1
        if queued and self._on_outbox is not None:
            self._on_outbox()
        return queued


def payload_summary(incident: Incident, transition: str) -> str:
    return describe(incident, transition)[0]
