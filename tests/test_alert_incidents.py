"""The incident decisions, branch by branch: rule states, incidents and now in, actions out.
Pure: no database, no clock."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

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
from monitor.alerts.incidents import (
    MASS_FAILURE_NOTE,
    Action,
    CountErrors,
    Extend,
    NewIncident,
    Open,
    Resolve,
    Save,
    decide_health,
    decide_target,
    degraded_note,
)
from monitor.config.sections import AlertSettings

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
NOW = T0 + timedelta(minutes=10)
SETTINGS = AlertSettings()  # failure_threshold 3, quorum 0.5, vantage_active_s 900
TARGET = ("acme/model-1", "Alpha", "direct")


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def up(**kw: object) -> VantageState:
    values: dict[str, object] = {"status": Status.UP, "since": T0, "last_seen_at": NOW}
    return VantageState(**(values | kw))  # type: ignore[arg-type]


def down(failing_since: datetime = T0, **kw: object) -> VantageState:
    values: dict[str, object] = {
        "status": Status.DOWN,
        "since": failing_since,
        "failing_since": failing_since,
        "failures": 3,
        "last_seen_at": NOW,
    }
    return VantageState(**(values | kw))  # type: ignore[arg-type]


def incident(
    incident_id: int,
    kind: IncidentKind,
    vantage: str | None = None,
    vantages: Sequence[str] = (),
    started_at: datetime = T0,
    ended_at: datetime | None = None,
) -> Incident:
    return Incident(
        incident_id, kind, TARGET, vantage, started_at, ended_at, started_at, tuple(vantages), {}
    )


def decide(
    state: VantageState,
    *,
    events: Sequence[Event] = (),
    old: StoredState | None = None,
    rows: Mapping[str, StoredState] | None = None,
    quorum: StoredState | None = None,
    incidents: Sequence[Incident] = (),
    vantage: str = "eu",
    settings: AlertSettings = SETTINGS,
) -> list[Action]:
    return decide_target(
        vantage,
        old=old or StoredState(up()),
        state=state,
        events=list(events),
        rows=rows if rows is not None else {},
        quorum=quorum or StoredState(up()),
        incidents={i.id: i for i in incidents},
        settings=settings,
        now=NOW,
    )


def saves(actions: Sequence[Action]) -> dict[str, Save]:
    return {a.vantage: a for a in actions if isinstance(a, Save)}


def not_saves(actions: Sequence[Action]) -> list[Action]:
    return [a for a in actions if not isinstance(a, Save)]


# --- nothing to do --------------------------------------------------------------------------


def test_all_up_only_saves_the_states() -> None:
    actions = decide(up())
    assert not_saves(actions) == []
    assert [a.vantage for a in actions] == ["eu", GLOBAL]  # this vantage's, then the quorum's
    assert saves(actions)[GLOBAL].state.status is Status.UP
    assert saves(actions)[GLOBAL].open_incident is None


def test_no_active_vantage_keeps_the_quorum_verdict() -> None:
    stale = down(last_seen_at=NOW - timedelta(hours=1))
    quorum = StoredState(VantageState(status=Status.DOWN, since=T0), open_incident_id=7)
    actions = decide(stale, quorum=quorum, incidents=[incident(7, IncidentKind.DOWN)])
    assert not_saves(actions) == []
    assert saves(actions)[GLOBAL] == Save(GLOBAL, quorum.state, 7, None)


# --- configuration incidents ----------------------------------------------------------------


def test_client_errors_open_a_config_incident() -> None:
    state = up(client_errors=3, misconfigured=True)
    actions = decide(state, events=[ConfigChange(at(120), opened=True, error_kind="http.401")])
    opened = Open(
        NewIncident(1),
        IncidentKind.CONFIG,
        "eu",
        at(120),
        NOW,
        ("eu",),
        {"http.401": SETTINGS.failure_threshold},
    )
    assert not_saves(actions) == [opened]
    assert saves(actions)["eu"] == Save("eu", state, None, NewIncident(1))


def test_an_open_config_incident_is_not_opened_twice() -> None:
    old = StoredState(up(misconfigured=True), config_incident_id=4)
    actions = decide(
        up(misconfigured=True),
        old=old,
        events=[ConfigChange(at(120), opened=True, error_kind=None)],
        incidents=[incident(4, IncidentKind.CONFIG, "eu")],
    )
    assert not_saves(actions) == []
    assert saves(actions)["eu"].config_incident == 4


def test_an_answer_resolves_the_config_incident_counting_client_errors() -> None:
    old = StoredState(up(misconfigured=True), config_incident_id=4)
    config = incident(4, IncidentKind.CONFIG, "eu", started_at=at(120))
    actions = decide(
        up(), old=old, events=[ConfigChange(at(600), opened=False)], incidents=[config]
    )
    recount = CountErrors(at(120), at(600), ("eu",), client_errors=True)
    assert not_saves(actions) == [Resolve(4, at(600), at(600), recount)]
    assert saves(actions)["eu"].config_incident is None


def test_a_config_incident_opened_and_resolved_in_one_pass() -> None:
    events = [ConfigChange(at(120), opened=True), ConfigChange(at(180), opened=False)]
    actions = not_saves(decide(up(), events=events))
    assert [type(a) for a in actions] == [Open, Resolve]
    assert isinstance(actions[0], Open)
    assert actions[0].error_kinds == {"client_error": 3}
    assert actions[1] == Resolve(
        NewIncident(1), at(180), at(180), CountErrors(at(120), at(180), ("eu",), True)
    )


# --- the provider's incident, by quorum -----------------------------------------------------


def test_quorum_down_opens_the_providers_incident_from_the_first_failure() -> None:
    rows = {"us": StoredState(down(failing_since=at(30)))}
    state = down(failing_since=at(60))
    actions = decide(state, events=[StatusChange(at(180), Status.UP, Status.DOWN)], rows=rows)
    opened = Open(
        NewIncident(1),
        IncidentKind.DOWN,
        None,
        at(30),  # the earliest failure among the vantages that see it DOWN
        NOW,
        ("eu", "us"),
        CountErrors(at(30), NOW),  # every vantage's failures
    )
    assert not_saves(actions) == [opened]
    quorum = saves(actions)[GLOBAL]
    assert (quorum.state.status, quorum.state.since) == (Status.DOWN, NOW)
    assert quorum.open_incident == NewIncident(1)
    assert saves(actions)["eu"].open_incident is None  # not alone: no vantage incident


def test_recovery_resolves_at_the_first_ok_probe_of_the_recovery() -> None:
    quorum = StoredState(VantageState(status=Status.DOWN, since=at(180)), open_incident_id=9)
    state = up(since=at(300), successes=2, succeeding_since=at(300))
    actions = decide(
        state,
        events=[StatusChange(at(360), Status.DOWN, Status.UP)],
        quorum=quorum,
        incidents=[incident(9, IncidentKind.DOWN, vantages=("eu",), started_at=at(60))],
    )
    assert not_saves(actions) == [Resolve(9, at(300), at(300), CountErrors(at(60), at(300)))]
    assert saves(actions)[GLOBAL].state.status is Status.UP
    assert saves(actions)[GLOBAL].open_incident is None


def test_recovery_decided_elsewhere_resolves_now() -> None:
    quorum = StoredState(VantageState(status=Status.DOWN, since=at(180)), open_incident_id=9)
    rows = {"us": StoredState(up())}
    actions = decide(
        up(),
        rows=rows,
        quorum=quorum,
        incidents=[incident(9, IncidentKind.DOWN, started_at=at(60))],
    )
    assert not_saves(actions) == [Resolve(9, NOW, NOW, CountErrors(at(60), NOW))]


def test_a_resolution_never_ends_before_its_start() -> None:
    quorum = StoredState(VantageState(status=Status.DOWN, since=at(180)), open_incident_id=9)
    state = up(since=at(300))
    actions = decide(
        state,
        events=[StatusChange(at(360), Status.DOWN, Status.UP)],
        quorum=quorum,
        incidents=[incident(9, IncidentKind.DOWN, started_at=at(400))],
    )
    (resolve,) = not_saves(actions)
    assert isinstance(resolve, Resolve)
    assert (resolve.at, resolve.ended_at) == (at(300), at(400))


def test_degraded_opens_an_incident_with_its_bounds_and_no_error_kinds() -> None:
    settings = AlertSettings(degraded_ttft_p50_ms=800)
    state = up(status=Status.DEGRADED, since=NOW)
    actions = decide(
        state, events=[StatusChange(NOW, Status.UP, Status.DEGRADED)], settings=settings
    )
    note = "p50 TTFT above 800 ms over 900 s"
    assert degraded_note(settings) == note
    assert not_saves(actions) == [
        Open(NewIncident(1), IncidentKind.DEGRADED, None, NOW, NOW, ("eu",), {}, note)
    ]


def test_degraded_to_down_replaces_the_incident() -> None:
    quorum = StoredState(VantageState(status=Status.DEGRADED, since=at(60)), open_incident_id=5)
    actions = decide(
        down(failing_since=at(120)),
        events=[StatusChange(at(240), Status.DEGRADED, Status.DOWN)],
        quorum=quorum,
        incidents=[incident(5, IncidentKind.DEGRADED, started_at=at(60))],
    )
    resolve, opened = not_saves(actions)
    assert resolve == Resolve(5, NOW, NOW, None)  # DEGRADED has no error kinds to count
    assert isinstance(opened, Open)
    assert (opened.kind, opened.started_at) == (IncidentKind.DOWN, at(120))


def test_another_vantage_agreeing_extends_the_incident() -> None:
    quorum = StoredState(VantageState(status=Status.DOWN, since=at(180)), open_incident_id=9)
    rows = {"us": StoredState(down()), "ap": StoredState(up())}
    actions = decide(
        down(),
        rows=rows,
        quorum=quorum,
        incidents=[incident(9, IncidentKind.DOWN, vantages=("us",))],
    )
    assert not_saves(actions) == [Extend(9, ("eu", "us"))]
    assert saves(actions)[GLOBAL].open_incident == 9


def test_no_extension_when_the_voters_are_named_already() -> None:
    quorum = StoredState(VantageState(status=Status.DOWN, since=at(180)), open_incident_id=9)
    actions = decide(
        down(),
        rows={"us": StoredState(down())},
        quorum=quorum,
        incidents=[incident(9, IncidentKind.DOWN, vantages=("eu", "us"))],
    )
    assert not_saves(actions) == []


# --- a vantage's own incident ---------------------------------------------------------------


def test_a_vantage_alone_down_opens_its_own_incident() -> None:
    rows = {"us": StoredState(up()), "ap": StoredState(up())}
    state = down(failing_since=at(60), since=at(60))
    actions = decide(state, events=[StatusChange(at(180), Status.UP, Status.DOWN)], rows=rows)
    opened = Open(
        NewIncident(1),
        IncidentKind.VANTAGE,
        "eu",
        at(60),
        NOW,
        ("eu",),
        CountErrors(at(60), NOW, ("eu",)),  # this vantage's failures only
    )
    assert not_saves(actions) == [opened]
    assert saves(actions)["eu"].open_incident == NewIncident(1)
    assert saves(actions)[GLOBAL].state.status is Status.UP


def test_a_vantage_incident_stays_open_while_alone() -> None:
    rows = {
        "eu": StoredState(down(), open_incident_id=3),
        "us": StoredState(up()),
        "ap": StoredState(up()),
    }
    actions = decide(down(), rows=rows, incidents=[incident(3, IncidentKind.VANTAGE, "eu")])
    assert not_saves(actions) == []
    assert saves(actions)["eu"].open_incident == 3


def test_a_vantage_incident_resolves_when_the_vantage_recovers() -> None:
    rows = {"eu": StoredState(down(), open_incident_id=3), "us": StoredState(up())}
    actions = decide(
        up(since=at(400)),
        events=[StatusChange(at(460), Status.DOWN, Status.UP)],
        rows=rows,
        incidents=[incident(3, IncidentKind.VANTAGE, "eu", started_at=at(60))],
    )
    assert not_saves(actions) == [Resolve(3, NOW, NOW, CountErrors(at(60), NOW, ("eu",)))]
    assert saves(actions)["eu"].open_incident is None


def test_the_providers_incident_supersedes_the_vantages_own() -> None:
    """us saw it first, alone; now eu agrees: the provider is DOWN, us's incident closes and
    eu opens none of its own."""
    rows = {"us": StoredState(down(), open_incident_id=3, config_incident_id=8)}
    actions = decide(
        down(failing_since=at(60)),
        events=[StatusChange(at(180), Status.UP, Status.DOWN)],
        rows=rows,
        incidents=[incident(3, IncidentKind.VANTAGE, "us", started_at=at(0))],
    )
    opened, superseded = not_saves(actions)
    assert isinstance(opened, Open)
    assert opened.kind is IncidentKind.DOWN
    assert superseded == Resolve(3, NOW, NOW, CountErrors(at(0), NOW, ("us",)))
    # us's row keeps its configuration incident; it holds no vantage incident any more.
    assert saves(actions)["us"] == Save("us", rows["us"].state, None, 8)
    assert saves(actions)["eu"].open_incident is None


def test_incidents_ended_or_unknown_are_not_resolved_again() -> None:
    rows = {"eu": StoredState(down(), open_incident_id=3), "us": StoredState(up())}
    ended = incident(3, IncidentKind.VANTAGE, "eu", ended_at=at(300))
    assert not_saves(decide(up(), rows=rows, incidents=[ended])) == []
    assert not_saves(decide(up(), rows=rows, incidents=[])) == []


# --- the monitor's own incident -------------------------------------------------------------


def test_a_mass_failure_opens_one_monitor_incident() -> None:
    actions = decide_health(
        "eu",
        connectivity_down=False,
        connectivity_note="",
        mass_failure=True,
        open_incidents=[],
        now=NOW,
    )
    assert actions == [
        Open(NewIncident(1), IncidentKind.MONITOR, "eu", NOW, NOW, ("eu",), {}, MASS_FAILURE_NOTE)
    ]


def test_a_failed_connectivity_check_names_its_reason() -> None:
    (opened,) = decide_health(
        "eu",
        connectivity_down=True,
        connectivity_note="http://127.0.0.1:9/: refused",
        mass_failure=True,
        open_incidents=[],
        now=NOW,
    )
    assert isinstance(opened, Open)
    assert opened.summary == "http://127.0.0.1:9/: refused"


def test_a_monitor_incident_open_already_is_kept() -> None:
    current = Incident(2, IncidentKind.MONITOR, None, "eu", T0, None, T0, ("eu",))
    actions = decide_health(
        "eu",
        connectivity_down=True,
        connectivity_note="x",
        mass_failure=False,
        open_incidents=[current],
        now=NOW,
    )
    assert actions == []


def test_the_monitor_incident_resolves_when_all_is_well() -> None:
    current = Incident(2, IncidentKind.MONITOR, None, "eu", T0, None, T0, ("eu",))
    actions = decide_health(
        "eu",
        connectivity_down=False,
        connectivity_note="",
        mass_failure=False,
        open_incidents=[current],
        now=NOW,
    )
    assert actions == [Resolve(2, NOW, NOW, None)]  # no error kinds: no target's probes
