"""The alert rules as pure functions of stored state, new observations, settings and now.

Per target and vantage: UP → DOWN after `failure_threshold` consecutive failures, DOWN → UP after
`success_threshold` consecutive successes (429s, client errors and the monitor's own errors
neither count nor break a streak); `failure_threshold` client errors in a row with nothing else
raise a configuration alert instead; UP ↔ DEGRADED by the p50 TTFT or decode speed of the ok
probes in a window. Across vantages, `quorum` decides. A round in which nearly every target
fails is the monitor's fault: those probes become `monitor_error` and no state moves.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from monitor.alert_model import (
    MASS_FAILURE_KIND,
    ConfigChange,
    Event,
    Observation,
    Status,
    StatusChange,
    VantageState,
)
from monitor.config.sections import AlertSettings
from monitor.results import Outcome
from monitor.stats import percentile


def step(
    state: VantageState, obs: Observation, settings: AlertSettings
) -> tuple[VantageState, list[Event]]:
    """Apply one probe to one target's state, seen from one vantage."""
    events: list[Event] = []
    at = obs.started_at
    state = replace(state, evaluated_through=at)
    if obs.outcome is Outcome.MONITOR_ERROR:
        return state, events  # the monitor's fault: frozen
    state = replace(state, last_seen_at=at)
    if obs.outcome is Outcome.RATE_LIMITED:
        return state, events
    if obs.outcome is Outcome.CLIENT_ERROR:
        n = state.client_errors + 1
        state = replace(state, client_errors=n)
        if n >= settings.failure_threshold and not state.misconfigured:
            state = replace(state, misconfigured=True)
            events.append(ConfigChange(at, opened=True, error_kind=obs.error_kind))
        return state, events
    # The provider answered past authentication: ok or a failure.
    if state.misconfigured:
        events.append(ConfigChange(at, opened=False))
    state = replace(state, client_errors=0, misconfigured=False)
    if obs.outcome.counts_against_uptime:
        failures = state.failures + 1
        state = replace(
            state,
            failures=failures,
            successes=0,
            failing_since=state.failing_since or at,
            succeeding_since=None,
        )
        if state.status is not Status.DOWN and failures >= settings.failure_threshold:
            events.append(StatusChange(at, state.status, Status.DOWN))
            state = replace(state, status=Status.DOWN, since=state.failing_since)
    else:
        successes = state.successes + 1
        state = replace(
            state,
            successes=successes,
            failures=0,
            failing_since=None,
            succeeding_since=state.succeeding_since or at,
        )
        if state.status is Status.DOWN and successes >= settings.success_threshold:
            events.append(StatusChange(at, Status.DOWN, Status.UP))
            state = replace(state, status=Status.UP, since=state.succeeding_since)
    return state, events


def degraded_verdict(
    recent_ok: Iterable[Observation], settings: AlertSettings, now: datetime
) -> bool | None:
    """True when the p50 TTFT or decode speed of the ok probes in the window, or the share of
    them whose quality is not ok (quality workloads), is out of bounds; False when every bound
    is met (or none is set), None when there are too few samples."""
    bounds = (
        settings.degraded_ttft_p50_ms,
        settings.degraded_decode_tps_p50,
        settings.degraded_quality_error_pct,
    )
    if all(b is None for b in bounds):
        return False
    start = now - timedelta(seconds=settings.degraded_window_s)
    window = [o for o in recent_ok if o.outcome is Outcome.OK and start <= o.started_at <= now]
    judged = False
    if settings.degraded_ttft_p50_ms is not None:
        ttfts = sorted(o.ttft_ms for o in window if o.ttft_ms is not None)
        if len(ttfts) >= settings.degraded_min_samples:
            judged = True
            if percentile(ttfts, 50) > settings.degraded_ttft_p50_ms:
                return True
    if settings.degraded_decode_tps_p50 is not None:
        speeds = sorted(o.decode_tps for o in window if o.decode_tps is not None)
        if len(speeds) >= settings.degraded_min_samples:
            judged = True
            if percentile(speeds, 50) < settings.degraded_decode_tps_p50:
                return True
    if settings.degraded_quality_error_pct is not None:
        verdicts = [o.quality for o in window if o.quality is not None]
        if len(verdicts) >= settings.degraded_min_samples:
            judged = True
            bad = sum(v != "ok" for v in verdicts)
            if 100 * bad / len(verdicts) > settings.degraded_quality_error_pct:
                return True
    return False if judged else None


def apply_degraded(
    state: VantageState, verdict: bool | None, now: datetime
) -> tuple[VantageState, list[Event]]:
    """Move an UP or DEGRADED target by the degraded verdict (DOWN stays DOWN)."""
    if verdict is None or state.status is Status.DOWN:
        return state, []
    want = Status.DEGRADED if verdict else Status.UP
    if want is state.status:
        return state, []
    return replace(state, status=want, since=now), [StatusChange(now, state.status, want)]


def active(state: VantageState, settings: AlertSettings, now: datetime) -> bool:
    """The vantage probed the target (and got past its own faults) recently."""
    return (
        state.last_seen_at is not None
        and (now - state.last_seen_at).total_seconds() <= settings.vantage_active_s
    )


def quorum_needed(n_active: int, quorum: float) -> int:
    """How many of `n_active` vantages must agree: at least `quorum` of them, at least one."""
    return max(1, math.ceil(quorum * n_active - 1e-9))


def quorum_status(
    by_vantage: Mapping[str, VantageState], settings: AlertSettings, now: datetime
) -> tuple[Status, tuple[str, ...]] | None:
    """The target's status across vantages and the vantages that see it DOWN (or DEGRADED);
    None when no vantage is active (nothing to judge by: keep what was)."""
    live = {v: s for v, s in by_vantage.items() if active(s, settings, now)}
    if not live:
        return None
    needed = quorum_needed(len(live), settings.quorum)
    down = tuple(sorted(v for v, s in live.items() if s.status is Status.DOWN))
    slow = tuple(sorted(v for v, s in live.items() if s.status is Status.DEGRADED))
    if len(down) >= needed:
        return Status.DOWN, down
    if len(down) + len(slow) >= needed:
        return Status.DEGRADED, tuple(sorted(down + slow))
    return Status.UP, ()


# --- the monitor's own health: a round in which nearly every target fails ------------------


@dataclass(frozen=True, slots=True)
class RoundEntry:
    """A target's latest probe from this vantage."""

    probe_id: str
    started_at: datetime
    failed: bool | None  # None: neither success nor failure (429, client or monitor error)
    reclassified: bool = False


def round_entry(obs: Observation) -> RoundEntry:
    if obs.outcome is Outcome.OK:
        failed: bool | None = False
    elif obs.failed:
        failed = True
    else:
        failed = None
    return RoundEntry(obs.probe_id, obs.started_at, failed, obs.error_kind == MASS_FAILURE_KIND)


K = TypeVar("K", bound=Hashable)


def mass_failure(
    latest: Mapping[K, RoundEntry], at: datetime, round_s: float, settings: AlertSettings
) -> bool:
    """Nearly every target failed in the round ending at `at` (each target's latest probe
    within one schedule interval): `mass_failure_share` of at least
    `mass_failure_min_targets` targets."""
    start = at - timedelta(seconds=round_s)
    judged = [e for e in latest.values() if start <= e.started_at <= at and e.failed is not None]
    if len(judged) < settings.mass_failure_min_targets:
        return False
    failed = sum(1 for e in judged if e.failed)
    return failed >= settings.mass_failure_share * len(judged) - 1e-9


def revert_failure(state: VantageState) -> VantageState:
    """Take back the latest failure of a streak (it was the monitor's fault after all)."""
    if state.status is Status.DOWN or state.failures == 0:
        return state
    failures = state.failures - 1
    return replace(
        state, failures=failures, failing_since=state.failing_since if failures else None
    )


@dataclass(slots=True)
class PassResult(Generic[K]):
    states: dict[K, VantageState]
    events: dict[K, list[Event]] = field(default_factory=dict)
    reclassified: list[str] = field(default_factory=list)
    """Probe ids to store as `monitor_error` / `monitor.mass_failure`."""
    mass_failure: bool = False
    """The latest round (ending now) is a mass failure."""


def evaluate_pass(
    states: Mapping[K, VantageState],
    new: Sequence[tuple[K, Observation]],
    round_seed: Mapping[K, RoundEntry],
    recent_ok: Mapping[K, Sequence[Observation]],
    settings: AlertSettings,
    round_s: float,
    now: datetime,
) -> PassResult[K]:
    """One evaluation of one vantage: `new` probes (every target, in time order) applied to the
    stored `states`; `round_seed` holds each target's latest probe before them, `recent_ok` the
    ok probes in the degraded window (the new ones included)."""
    out: PassResult[K] = PassResult(states=dict(states))
    latest = dict(round_seed)
    in_mass = bool(new) and mass_failure(latest, new[0][1].started_at, round_s, settings)
    for key, obs in sorted(new, key=lambda kv: kv[1].started_at):
        state = out.states.get(key, VantageState(since=obs.started_at))
        latest[key] = round_entry(obs)
        now_mass = mass_failure(latest, obs.started_at, round_s, settings)
        if now_mass and not in_mass:
            # Just found out: the failures of this round so far were the monitor's too.
            start = obs.started_at - timedelta(seconds=round_s)
            for other, entry in list(latest.items()):
                if other == key or not entry.failed or entry.reclassified:
                    continue
                if entry.started_at < start:
                    continue
                out.reclassified.append(entry.probe_id)
                latest[other] = replace(entry, reclassified=True)
                out.states[other] = revert_failure(
                    out.states.get(other, VantageState(since=entry.started_at))
                )
        in_mass = now_mass
        if in_mass and obs.outcome.counts_against_uptime:
            out.reclassified.append(obs.probe_id)
            latest[key] = replace(latest[key], reclassified=True)
            obs = replace(obs, outcome=Outcome.MONITOR_ERROR, error_kind=MASS_FAILURE_KIND)
        state, events = step(state, obs, settings)
        out.states[key] = state
        if events:
            out.events.setdefault(key, []).extend(events)
    for key in {k for k, _ in new}:
        state, events = apply_degraded(
            out.states[key], degraded_verdict(recent_ok.get(key, ()), settings, now), now
        )
        out.states[key] = state
        if events:
            out.events.setdefault(key, []).extend(events)
    out.mass_failure = mass_failure(latest, now, round_s, settings)
    return out
