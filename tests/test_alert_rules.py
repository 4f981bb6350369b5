"""The alert rules on timelines: probes at t=…, which transitions happen and when. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from monitor.alert_model import (
    MASS_FAILURE_KIND,
    ConfigChange,
    Event,
    Incident,
    IncidentKind,
    Observation,
    Status,
    StatusChange,
    VantageState,
)
from monitor.alerts.payloads import ZERO_TIME, alertmanager_payload, title_and_body
from monitor.alerts.rules import (
    PassResult,
    RoundEntry,
    evaluate_pass,
    mass_failure,
    quorum_needed,
    quorum_status,
    round_entry,
)
from monitor.config.sections import AlertSettings, MaintenanceWindow
from monitor.maintenance import muting
from monitor.results import Outcome
from monitor.scheduler import cron_next

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
SETTINGS = AlertSettings()  # failure_threshold 3, success_threshold 2
CODES = {
    "ok": (Outcome.OK, None),
    "F": (Outcome.SERVER_ERROR, "http.503"),
    "T": (Outcome.TIMEOUT, "timeout.ttft"),
    "429": (Outcome.RATE_LIMITED, "http.429"),
    "401": (Outcome.CLIENT_ERROR, "http.401"),
    "M": (Outcome.MONITOR_ERROR, "monitor.connectivity"),
}


def at(t: float) -> datetime:
    return T0 + timedelta(seconds=t)


def obs(code: str, t: float, target: str = "a", **kw: object) -> Observation:
    outcome, kind = CODES[code]
    values: dict[str, object] = {"ttft_ms": 200.0, "decode_tps": 100.0} if code == "ok" else {}
    values |= kw
    return Observation(f"{target}-{t:g}", at(t), outcome, kind, **values)  # type: ignore[arg-type]


def timeline(text: str, target: str = "a") -> list[tuple[str, Observation]]:
    """'ok@0 F@60 F@120' → observations of one target."""
    out = []
    for item in text.split():
        code, _, t = item.partition("@")
        out.append((target, obs(code, float(t), target)))
    return out


def run(
    text: str, settings: AlertSettings = SETTINGS, state: VantageState | None = None
) -> tuple[VantageState, list[Event]]:
    new = timeline(text)
    now = new[-1][1].started_at
    states = {"a": state} if state is not None else {}
    result = evaluate_pass(states, new, {}, {}, settings, 60.0, now)
    return result.states["a"], result.events.get("a", [])


def brief(events: Sequence[Event]) -> list[tuple[str, float]]:
    out = []
    for e in events:
        t = (e.at - T0).total_seconds()
        if isinstance(e, StatusChange):
            out.append((e.after.value, t))
        else:
            out.append(("config" if e.opened else "config-resolved", t))
    return out


@pytest.mark.parametrize(
    ("probes", "expected"),
    [
        # Three failures in a row: DOWN at the third; two successes: UP at the second.
        ("ok@0 F@60 F@120 F@180 ok@240 ok@300", [("down", 180), ("up", 300)]),
        # Two failures are not enough.
        ("F@0 F@60 ok@120 F@180 F@240 ok@300", []),
        # Flapping: failures never three in a row, no alert at all.
        ("F@0 ok@60 F@120 ok@180 F@240 F@300 ok@360 F@420", []),
        # DOWN, one success does not bring it back, a failure restarts the count.
        ("T@0 T@60 T@120 ok@180 F@240 ok@300 ok@360", [("down", 120), ("up", 360)]),
        # 429s neither count nor break a streak.
        ("F@0 429@30 F@60 429@90 F@120", [("down", 120)]),
        ("429@0 429@60 429@120 429@180 429@240", []),
        # Only client errors: one configuration alert, never DOWN; resolved by an answer.
        (
            "401@0 401@60 401@120 401@180 401@240 ok@300",
            [("config", 120), ("config-resolved", 300)],
        ),
        # Client errors do not break a failure streak either.
        ("F@0 401@30 F@60 F@120", [("down", 120)]),
        # The monitor's own errors freeze the state.
        ("F@0 F@60 M@120 M@180 F@240", [("down", 240)]),
        ("F@0 F@60 F@120 M@180 M@240 M@300", [("down", 120)]),
    ],
)
def test_timelines(probes: str, expected: list[tuple[str, float]]) -> None:
    _, events = run(probes)
    assert brief(events) == expected


def test_thresholds_are_settings() -> None:
    s = AlertSettings(failure_threshold=1, success_threshold=1)
    _, events = run("F@0 ok@60 F@120 ok@180", s)
    assert brief(events) == [("down", 0), ("up", 60), ("down", 120), ("up", 180)]


def test_down_since_is_the_first_failure_and_state_survives_a_restart() -> None:
    state, events = run("ok@0 F@60 F@120")
    assert events == []
    assert (state.failures, state.failing_since) == (2, at(60))
    # The stored state carries the streak into the next pass (a restart reads it back).
    state, events = run("F@180", state=state)
    assert brief(events) == [("down", 180)]
    assert state.status is Status.DOWN
    assert state.since == at(60)
    assert state.evaluated_through == at(180)
    state, events = run("ok@240 ok@300", state=state)
    assert brief(events) == [("up", 300)]  # decided at the second success...
    assert state.since == at(240)  # ...UP since the first


def test_client_error_outcome_after_config_alert_then_failures() -> None:
    _, events = run("401@0 401@60 401@120 F@180 F@240 F@300")
    assert brief(events) == [("config", 120), ("config-resolved", 180), ("down", 300)]
    assert isinstance(events[0], ConfigChange)
    assert events[0].error_kind == "http.401"


# --- degraded -------------------------------------------------------------------------------

DEGRADE = AlertSettings(degraded_ttft_p50_ms=1000, degraded_window_s=300, degraded_min_samples=3)


def degraded_pass(
    ttfts: Sequence[float], now_t: float, state: VantageState | None = None
) -> PassResult[str]:
    window = [obs("ok", i * 60.0, ttft_ms=v) for i, v in enumerate(ttfts)]
    new = [("a", window[-1])]
    states = {"a": state} if state else {}
    return evaluate_pass(states, new, {}, {"a": window}, DEGRADE, 60.0, at(now_t))


def test_degraded_when_p50_ttft_crosses_the_bound_and_back() -> None:
    slow = degraded_pass([1500, 1600, 1700], 120)
    assert brief(slow.events["a"]) == [("degraded", 120)]
    state = slow.states["a"]
    assert state.status is Status.DEGRADED
    back = degraded_pass([1500, 300, 250, 200], 180, state)
    assert brief(back.events["a"]) == [("up", 180)]


def test_degraded_needs_enough_samples_and_never_overrides_down() -> None:
    assert degraded_pass([5000, 5000], 60).events == {}
    down = VantageState(status=Status.DOWN, since=T0, last_seen_at=T0)
    assert degraded_pass([5000, 5000, 5000], 120, down).events == {}


def test_decode_speed_bound() -> None:
    s = AlertSettings(degraded_decode_tps_p50=50, degraded_min_samples=2)
    window = [obs("ok", 0, decode_tps=20.0), obs("ok", 60, decode_tps=30.0)]
    result = evaluate_pass({}, [("a", window[-1])], {}, {"a": window}, s, 60.0, at(60))
    assert brief(result.events["a"]) == [("degraded", 60)]


# --- quorum across vantages -----------------------------------------------------------------


def vstate(status: Status, seen_t: float = 0) -> VantageState:
    return VantageState(status=status, since=T0, last_seen_at=at(seen_t))


@pytest.mark.parametrize(
    ("views", "expected"),
    [
        ({"eu": Status.DOWN}, Status.DOWN),  # one vantage: it decides
        ({"eu": Status.DOWN, "us": Status.UP}, Status.DOWN),  # half of two is one
        ({"eu": Status.DOWN, "us": Status.UP, "ap": Status.UP}, Status.UP),  # alone: not DOWN
        ({"eu": Status.DOWN, "us": Status.DOWN, "ap": Status.UP}, Status.DOWN),
        ({"eu": Status.DOWN, "us": Status.DEGRADED, "ap": Status.UP}, Status.DEGRADED),
        ({"eu": Status.UP, "us": Status.UP}, Status.UP),
    ],
)
def test_quorum(views: dict[str, Status], expected: Status) -> None:
    result = quorum_status({v: vstate(s) for v, s in views.items()}, SETTINGS, at(10))
    assert result is not None
    assert result[0] is expected


def test_quorum_counts_only_active_vantages() -> None:
    # us saw the target an hour ago: inactive, so eu alone decides.
    views = {"eu": vstate(Status.DOWN, 3600), "us": vstate(Status.UP), "ap": vstate(Status.UP)}
    result = quorum_status(views, SETTINGS, at(3600))
    assert result == (Status.DOWN, ("eu",))
    assert quorum_status({"eu": vstate(Status.DOWN)}, SETTINGS, at(7200)) is None
    assert [quorum_needed(n, 0.5) for n in (1, 2, 3, 4, 5)] == [1, 1, 2, 2, 3]
    assert [quorum_needed(n, 1.0) for n in (1, 2, 3)] == [1, 2, 3]


# --- the monitor's own connectivity: a round where nearly everything fails -------------------


def test_mass_failure_round_becomes_monitor_error_and_freezes_states() -> None:
    """Ten targets probed every 60 s, staggered; the network is cut at t=100."""
    targets = [f"t{i}" for i in range(10)]
    new: list[tuple[str, Observation]] = []
    for round_no in range(4):
        for i, name in enumerate(targets):
            t = round_no * 60 + i * 6
            code = "ok" if t < 100 else "F"
            new.append((name, obs(code, t, name)))
    result = evaluate_pass({}, new, {}, {}, SETTINGS, 60.0, at(240))
    assert result.events == {}  # no target went DOWN: the monitor did
    assert result.mass_failure
    failures = [o.probe_id for _, o in new if o.outcome is not Outcome.OK]
    assert sorted(result.reclassified) == sorted(failures)  # every failure is the monitor's
    assert all(s.failures == 0 and s.status is Status.UP for s in result.states.values())


def test_one_provider_down_is_not_a_mass_failure() -> None:
    new = []
    for round_no in range(4):
        for i in range(5):
            t = round_no * 60 + i * 6
            new.append((f"t{i}", obs("F" if i == 0 else "ok", t, f"t{i}")))
    result = evaluate_pass({}, new, {}, {}, SETTINGS, 60.0, at(240))
    assert brief(result.events["t0"]) == [("down", 120)]
    assert result.reclassified == []
    assert not result.mass_failure


def test_mass_failure_detector() -> None:
    def entries(*codes: str) -> dict[int, RoundEntry]:
        return {i: round_entry(obs(c, i, f"t{i}")) for i, c in enumerate(codes)}

    assert mass_failure(entries("F", "F", "F", "F"), at(10), 60, SETTINGS)
    assert not mass_failure(entries("F", "F", "F"), at(10), 60, SETTINGS)  # too few
    assert not mass_failure(entries("F", "F", "F", "ok"), at(10), 60, SETTINGS)
    # 429s and client errors are not judged; old probes are outside the round.
    assert mass_failure(entries("F", "F", "F", "F", "429", "401"), at(10), 60, SETTINGS)
    assert not mass_failure(entries("F", "F", "F", "F"), at(100), 60, SETTINGS)
    reclassified = Observation("x", at(1), Outcome.MONITOR_ERROR, MASS_FAILURE_KIND)
    assert round_entry(reclassified).failed is True


# --- maintenance windows --------------------------------------------------------------------

TARGET = ("acme/m", "Alpha", "direct")


def test_one_off_window_scopes() -> None:
    win = {"start": at(0), "end": at(600)}
    assert muting([MaintenanceWindow(**win)], TARGET, at(0))
    assert not muting([MaintenanceWindow(**win)], TARGET, at(600))
    assert muting([MaintenanceWindow(**win, provider="alpha")], TARGET, at(10))
    assert not muting([MaintenanceWindow(**win, provider="Beta")], TARGET, at(10))
    assert muting([MaintenanceWindow(**win, model="acme/m")], TARGET, at(10))
    assert muting([MaintenanceWindow(**win, target="acme/m|Alpha|direct")], TARGET, at(10))
    assert not muting([MaintenanceWindow(**win, target="acme/m|Alpha|openrouter")], TARGET, at(10))
    # The monitor's own alerts are muted only by unscoped windows.
    assert muting([MaintenanceWindow(**win)], None, at(10))
    assert not muting([MaintenanceWindow(**win, provider="Alpha")], None, at(10))


def test_cron_window() -> None:
    # Every day at 02:00 UTC for 30 minutes.
    w = MaintenanceWindow(cron="0 2 * * *", duration_s=1800)
    day = datetime(2026, 11, 20, tzinfo=UTC)
    assert not muting([w], TARGET, day + timedelta(hours=1, minutes=59))
    assert muting([w], TARGET, day + timedelta(hours=2))
    assert muting([w], TARGET, day + timedelta(hours=2, minutes=29))
    assert not muting([w], TARGET, day + timedelta(hours=2, minutes=30))
    # Standard cron weekdays: 0 is Sunday (2026-11-22).
    sunday = MaintenanceWindow(cron="0 2 * * 0", duration_s=600)
    assert not muting([sunday], TARGET, day + timedelta(hours=2, minutes=1))  # a Friday
    assert muting([sunday], TARGET, day + timedelta(days=2, hours=2, minutes=1))
    assert cron_next("30 4 * * 1-5", day) == day + timedelta(hours=4, minutes=30)


# --- payloads -------------------------------------------------------------------------------


def test_alertmanager_payload_shape() -> None:
    incident = Incident(
        id=7,
        kind=IncidentKind.DOWN,
        target=TARGET,
        vantage=None,
        started_at=at(60),
        ended_at=None,
        detected_at=at(180),
        vantages=("eu",),
        error_kinds={"http.503": 3},
    )
    firing = alertmanager_payload(incident, "firing", "hook")
    assert firing["status"] == "firing"
    assert firing["version"] == "4"
    assert firing["receiver"] == "hook"
    (alert,) = firing["alerts"]
    assert alert["labels"]["alertname"] == "ProviderDown"
    assert alert["labels"]["provider"] == "Alpha"
    assert alert["startsAt"] == "2026-11-20T12:01:00Z"
    assert alert["endsAt"] == ZERO_TIME
    assert "http.503×3" in alert["annotations"]["description"]
    resolved = alertmanager_payload(replace(incident, ended_at=at(400)), "resolved", "hook")
    assert resolved["alerts"][0]["endsAt"] == "2026-11-20T12:06:40Z"
    assert resolved["alerts"][0]["fingerprint"] == alert["fingerprint"]  # same alert
    keys = {firing["provmon"]["idempotency_key"], resolved["provmon"]["idempotency_key"]}
    assert len(keys) == 2  # but two notifications
    title, _ = title_and_body(resolved)
    assert title.startswith("[RESOLVED] ProviderDown: Alpha (direct) serving acme/m is back UP")


def test_quality_error_share_bound() -> None:
    """DEGRADED when more than `degraded_quality_error_pct` of the window's quality-checked ok
    probes had a broken tool call or structured answer; plain probes do not count."""
    s = AlertSettings(degraded_quality_error_pct=20, degraded_min_samples=4)
    verdicts = ["ok", "ok", "unknown_tool", "invalid_json", None, None]
    window = [obs("ok", i * 60.0, quality=q) for i, q in enumerate(verdicts)]
    result = evaluate_pass({}, [("a", window[-1])], {}, {"a": window}, s, 60.0, at(300))
    assert brief(result.events["a"]) == [("degraded", 300)]  # 2 of 4 broken: 50 % > 20 %
    good = [obs("ok", i * 60.0, quality=q) for i, q in enumerate(["ok"] * 4 + ["schema_mismatch"])]
    result = evaluate_pass({}, [("a", good[-1])], {}, {"a": good}, s, 60.0, at(240))
    assert result.events == {}  # 1 of 5: 20 %, not above
    few = window[2:]  # 2 quality-checked probes: too few to judge
    result = evaluate_pass({}, [("a", few[-1])], {}, {"a": few}, s, 60.0, at(300))
    assert result.events == {}
