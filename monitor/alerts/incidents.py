"""The incident decisions as pure functions: from a target's rule states (this vantage's new
one with its events, every vantage's stored one, the cross-vantage one), the incidents they
name and now, what to open, resolve, extend and save. No database: the evaluator reads what
these need, calls them, and applies the actions in their order.

Per target: a configuration incident while only client errors come back (this vantage); the
provider's DOWN or DEGRADED incident when the quorum of vantages says so, extended as more
vantages agree and resolved when the quorum says UP again; a vantage incident while this
vantage alone sees the target DOWN, superseded (resolved) once the provider is DOWN. Per
vantage: one monitor incident while its connectivity check fails or a round fails nearly
everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from monitor.alert_model import (
    GLOBAL,
    ConfigChange,
    Event,
    Incident,
    IncidentKind,
    Status,
    StatusChange,
    StoredState,
    VantageState,
)
from monitor.alerts.rules import quorum_status
from monitor.config.sections import AlertSettings

MASS_FAILURE_NOTE = "nearly every target failed in the same round"

_INCIDENT_OF = {Status.DOWN: IncidentKind.DOWN, Status.DEGRADED: IncidentKind.DEGRADED}


@dataclass(frozen=True, slots=True)
class NewIncident:
    """The incident an earlier `Open` of the same plan opened: its id is known once stored."""

    n: int


IncidentRef = int | NewIncident


@dataclass(frozen=True, slots=True)
class CountErrors:
    """Error kinds to count from the target's stored probes started in [since, until]: from
    `vantages` (None: every vantage), of its failures, or of its client errors."""

    since: datetime
    until: datetime
    vantages: tuple[str, ...] | None = None
    client_errors: bool = False


@dataclass(frozen=True, slots=True)
class Open:
    """Open an incident (of the target the plan is for; none for a monitor incident), detected
    now, and tell the channels."""

    ref: NewIncident
    kind: IncidentKind
    vantage: str | None
    started_at: datetime
    detected_at: datetime
    vantages: tuple[str, ...]
    error_kinds: dict[str, int] | CountErrors
    summary: str | None = None


@dataclass(frozen=True, slots=True)
class Resolve:
    """Close an open incident, ended at `ended_at` (never before it started); its error kinds
    counted again when `recount` says how. Resolved notices are dated `at`."""

    incident: IncidentRef
    at: datetime
    ended_at: datetime
    recount: CountErrors | None = None


@dataclass(frozen=True, slots=True)
class Extend:
    """More vantages see the provider's open incident: it now names `vantages`."""

    incident: int
    vantages: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Save:
    """Store the target's rule state for `vantage` (`*`: across vantages) and what it holds
    open."""

    vantage: str
    state: VantageState
    open_incident: IncidentRef | None = None
    config_incident: IncidentRef | None = None


Action = Open | Resolve | Extend | Save


@dataclass(frozen=True, slots=True)
class _Facts:
    kind: IncidentKind
    vantage: str | None
    started_at: datetime
    ended: bool


@dataclass(slots=True)
class _Plan:
    known: dict[IncidentRef, _Facts]
    actions: list[Action] = field(default_factory=list)

    @classmethod
    def over(cls, incidents: Mapping[int, Incident]) -> _Plan:
        return cls(
            {
                i.id: _Facts(i.kind, i.vantage, i.started_at, i.ended_at is not None)
                for i in incidents.values()
            }
        )

    def open(
        self,
        kind: IncidentKind,
        vantage: str | None,
        started_at: datetime,
        now: datetime,
        vantages: Sequence[str],
        error_kinds: dict[str, int] | CountErrors,
        summary: str | None = None,
    ) -> NewIncident:
        ref = NewIncident(sum(isinstance(a, Open) for a in self.actions) + 1)
        self.actions.append(
            Open(ref, kind, vantage, started_at, now, tuple(vantages), error_kinds, summary)
        )
        self.known[ref] = _Facts(kind, vantage, started_at, ended=False)
        return ref

    def resolve(self, ref: IncidentRef | None, at: datetime) -> None:
        """Resolve `ref` at `at` unless it is unknown or ended already. Error kinds are
        counted again up to `at`: a provider's DOWN from every vantage, a vantage's or a
        configuration incident from its vantage; DEGRADED and monitor incidents have none."""
        facts = self.known.get(ref) if ref is not None else None
        if ref is None or facts is None or facts.ended:
            return
        recount = None
        if facts.kind not in (IncidentKind.DEGRADED, IncidentKind.MONITOR):
            vantages = None if facts.kind is IncidentKind.DOWN else (facts.vantage or "",)
            client = facts.kind is IncidentKind.CONFIG
            recount = CountErrors(facts.started_at, at, vantages, client_errors=client)
        self.actions.append(Resolve(ref, at, max(at, facts.started_at), recount))
        self.known[ref] = replace(facts, ended=True)


def degraded_note(settings: AlertSettings) -> str:
    """The summary of a DEGRADED incident: the bounds crossed, over the window."""
    s = settings
    bounds = []
    if s.degraded_ttft_p50_ms is not None:
        bounds.append(f"p50 TTFT above {s.degraded_ttft_p50_ms:g} ms")
    if s.degraded_decode_tps_p50 is not None:
        bounds.append(f"p50 decode speed below {s.degraded_decode_tps_p50:g} tokens/s")
    return f"{' or '.join(bounds)} over {s.degraded_window_s:g} s"


def decide_target(
    vantage: str,
    *,
    old: StoredState,
    state: VantageState,
    events: Sequence[Event],
    rows: Mapping[str, StoredState],
    quorum: StoredState,
    incidents: Mapping[int, Incident],
    settings: AlertSettings,
    now: datetime,
) -> list[Action]:
    """One target after a pass of `vantage`: `old` is this vantage's stored row before the
    pass, `state` and `events` what the rules made of its new probes; `rows` every vantage's
    stored row and `quorum` the cross-vantage one, read under the target's lock; `incidents`
    the incidents those rows name. Returns the actions in the order to apply them."""
    v = vantage
    plan = _Plan.over(incidents)
    config_id: IncidentRef | None = old.config_incident_id
    for event in events:
        if isinstance(event, ConfigChange) and event.opened and config_id is None:
            kinds = {event.error_kind or "client_error": settings.failure_threshold}
            config_id = plan.open(IncidentKind.CONFIG, v, event.at, now, (v,), kinds)
        elif isinstance(event, ConfigChange) and not event.opened:
            plan.resolve(config_id, event.at)
            config_id = None
    # Across vantages: this vantage's new view, the others' stored views.
    views = {vv: st.state for vv, st in rows.items()}
    views[v] = state
    verdict = quorum_status(views, settings, now)
    before = quorum.state.status
    after, voters = verdict if verdict is not None else (before, ())
    open_id: IncidentRef | None = quorum.open_incident_id
    quorum_state = quorum.state
    if after is not before:
        # Ended at the first ok probe of this vantage's recovery, when that decided it.
        up = any(isinstance(e, StatusChange) and e.after is Status.UP for e in events)
        plan.resolve(open_id, (state.since or now) if up else now)
        open_id = None
        if after in _INCIDENT_OF:
            starts = [
                views[vv].failing_since or views[vv].since or now
                for vv in voters
                if views[vv].status is Status.DOWN
            ]
            started = min(starts) if starts else now
            counted: dict[str, int] | CountErrors = (
                CountErrors(started, now) if after is Status.DOWN else {}
            )
            summary = degraded_note(settings) if after is Status.DEGRADED else None
            open_id = plan.open(_INCIDENT_OF[after], None, started, now, voters, counted, summary)
        quorum_state = replace(quorum.state, status=after, since=now)
    elif quorum.open_incident_id is not None and voters:
        current = incidents.get(quorum.open_incident_id)
        if current is not None and not set(voters) <= set(current.vantages):
            wider = tuple(sorted(set(current.vantages) | set(voters)))
            plan.actions.append(Extend(quorum.open_incident_id, wider))
    # This vantage alone sees it DOWN: its own problem, reported as such. Once the provider
    # is DOWN, the other vantages' own incidents are superseded.
    vantage_id: IncidentRef | None = rows[v].open_incident_id if v in rows else old.open_incident_id
    if after is Status.DOWN:
        for vv, st in rows.items():
            if vv != v and st.open_incident_id is not None:
                plan.resolve(st.open_incident_id, now)
                plan.actions.append(Save(vv, st.state, None, st.config_incident_id))
    alone = state.status is Status.DOWN and after is not Status.DOWN
    if alone and vantage_id is None:
        started = state.failing_since or state.since or now
        count = CountErrors(state.since or now, now, (v,))
        vantage_id = plan.open(IncidentKind.VANTAGE, v, started, now, (v,), count)
    elif not alone and vantage_id is not None:
        plan.resolve(vantage_id, now)
        vantage_id = None
    plan.actions.append(Save(v, state, vantage_id, config_id))
    plan.actions.append(Save(GLOBAL, quorum_state, open_id, quorum.config_incident_id))
    return plan.actions


def decide_health(
    vantage: str,
    *,
    connectivity_down: bool,
    connectivity_note: str,
    mass_failure: bool,
    open_incidents: Sequence[Incident],
    now: datetime,
    budget_note: str | None = None,
) -> list[Action]:
    """The monitor incident of `vantage`: opened while its connectivity check fails, the
    latest round failed nearly everywhere, or its daily budget is spent (one at a time: a day's
    exhausted budget is one notification, resolved when the budget resets at 00:00 UTC), and
    resolved when none of these holds."""
    if connectivity_down or mass_failure or budget_note:
        if open_incidents:
            return []
        if connectivity_down:
            why = connectivity_note
        elif mass_failure:
            why = MASS_FAILURE_NOTE
        else:
            why = budget_note or ""
        plan = _Plan({})
        plan.open(IncidentKind.MONITOR, vantage, now, now, (vantage,), {}, why)
        return plan.actions
    plan = _Plan.over({i.id: i for i in open_incidents})
    for incident in open_incidents:
        plan.resolve(incident.id, now)
    return plan.actions
