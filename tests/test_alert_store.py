"""Alert evaluation, incidents and the outbox on SQLite and PostgreSQL (same bodies), with a
fake clock: outages, configuration alerts, mass failures, quorum across vantages, reminders,
maintenance windows, retries with backoff, leases, and two senders sharing one outbox."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import itertools
import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from monitor import app
from monitor.alert_model import MASS_FAILURE_KIND, IncidentKind, OutboxStatus, Status
from monitor.alerts.delivery import OutboxSender, backoff_s
from monitor.alerts.evaluator import Evaluator
from monitor.config import Config, Secret, parse_config
from monitor.errors import ChannelError
from monitor.results import Outcome, ProbeResult
from monitor.storage.alerts import AlertStore
from monitor.storage.database import make_engine, upgrade
from monitor.storage.store import Store
from tests.conftest import Db
from tests.factories import T0, result

TARGET = ("acme/model-1", "Alpha", "direct")
_ids = itertools.count()


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def alert_config(
    vantage: str = "here", providers: Sequence[str] = ("Alpha",), **alerts: Any
) -> Config:
    targets = [
        {
            "route": "direct",
            "model": "acme/model-1",
            "provider": p,
            "base_url": "http://127.0.0.1:9/v1",
        }
        for p in providers
    ]
    alerts.setdefault(
        "channels",
        [
            {"name": "hook", "type": "webhook", "url": "http://127.0.0.1:9/hook"},
            {"name": "log", "type": "log"},
        ],
    )
    doc: dict[str, Any] = {
        "vantage": vantage,
        "targets": targets,
        "alerts": alerts,
        "schedule": {"interval_s": 60, "jitter_s": 0},
    }
    if "maintenance" in alerts:
        doc["maintenance"] = alerts.pop("maintenance")
    return parse_config(doc, {})


class Rig:
    """One monitor's alerting over a database, driven by hand with a fake clock."""

    def __init__(self, engine: AsyncEngine, cfg: Config, clock: Clock) -> None:
        self.cfg = cfg
        self.clock = clock
        self.probes = Store(engine)
        self.store = AlertStore(engine)
        self.evaluator = Evaluator(cfg, self.store, now=clock)

    async def probe(
        self, t: float, outcome: Outcome = Outcome.OK, provider: str = "Alpha", **kw: Any
    ) -> None:
        """Store a probe started at T0 + t, then evaluate at t + 1 s."""
        kinds = {
            Outcome.SERVER_ERROR: "http.503",
            Outcome.CLIENT_ERROR: "http.401",
            Outcome.TIMEOUT: "timeout.ttft",
        }
        r = result(
            started_at=T0 + timedelta(seconds=t),
            outcome=outcome,
            error_kind=kinds.get(outcome),
            vantage=self.cfg.vantage,
            provider=provider,
            **kw,
        )
        await self.probes.insert_probes([(f"p{next(_ids):031d}", r)])
        self.clock.now = T0 + timedelta(seconds=t + 1)
        await self.evaluator.evaluate()

    async def outbox(self) -> list[tuple[str, str, str]]:
        return [(r["transition"], r["channel"], r["status"]) for r in await self.store.outbox()]


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


async def test_outage_incident_and_outbox(migrated: AsyncEngine, clock: Clock) -> None:
    rig = Rig(migrated, alert_config(), clock)
    await rig.probe(0)
    for t in (60, 120):
        await rig.probe(t, Outcome.SERVER_ERROR)
    assert await rig.outbox() == []
    await rig.probe(180, Outcome.TIMEOUT)
    assert await rig.outbox() == [("firing", "hook", "pending"), ("firing", "log", "pending")]
    (incident,) = await rig.store.incidents(open_only=True)
    assert incident.kind is IncidentKind.DOWN
    assert incident.target == TARGET
    assert incident.started_at == T0 + timedelta(seconds=60)  # the first failing probe
    assert incident.detected_at == T0 + timedelta(seconds=181)
    assert incident.error_kinds == {"http.503": 2, "timeout.ttft": 1}
    assert incident.vantages == ("here",)
    # Evaluating again finds nothing new: nothing is written twice.
    await rig.evaluator.evaluate()
    assert len(await rig.outbox()) == 2
    await rig.probe(240, Outcome.SERVER_ERROR)
    await rig.probe(300)
    await rig.probe(360)
    rows = await rig.outbox()
    assert rows[2:] == [("resolved", "hook", "pending"), ("resolved", "log", "pending")]
    (closed,) = await rig.store.incidents()
    assert closed.ended_at == T0 + timedelta(seconds=300)  # the first ok probe
    assert closed.duration_s == 240
    assert closed.error_kinds == {"http.503": 3, "timeout.ttft": 1}
    payload = (await rig.store.outbox())[2]["payload"]
    assert payload["status"] == "resolved"
    assert payload["alerts"][0]["endsAt"] == "2026-11-16T00:05:00Z"
    states = await rig.store.states()
    assert states[(TARGET, "here")].state.status is Status.UP
    assert states[(TARGET, "*")].state.status is Status.UP


async def test_client_errors_raise_one_config_alert(migrated: AsyncEngine, clock: Clock) -> None:
    rig = Rig(migrated, alert_config(), clock)
    for t in range(0, 600, 60):
        await rig.probe(t, Outcome.CLIENT_ERROR, http_status=401)
    (incident,) = await rig.store.incidents()
    assert incident.kind is IncidentKind.CONFIG
    assert incident.vantage == "here"
    assert [r[0] for r in await rig.outbox()] == ["firing", "firing"]
    await rig.probe(600)
    (incident,) = await rig.store.incidents()
    assert incident.ended_at is not None
    assert incident.error_kinds == {"http.401": 8}  # from the third, which opened it
    states = await rig.store.states()
    assert states[(TARGET, "*")].state.status is Status.UP  # never DOWN


async def test_mass_failure_freezes_states_and_fixes_rollups(
    migrated: AsyncEngine, clock: Clock
) -> None:
    providers = [f"P{i}" for i in range(5)]
    cfg = alert_config(providers=providers, channels=[{"name": "log", "type": "log"}])
    rig = Rig(migrated, cfg, clock)
    for round_no in range(4):
        for i, p in enumerate(providers):
            t = round_no * 60 + i * 10
            await rig.probe(t, Outcome.OK if t < 100 else Outcome.SERVER_ERROR, provider=p)
    incidents = await rig.store.incidents()
    assert [i.kind for i in incidents] == [IncidentKind.MONITOR]  # one alert, not five
    states = await rig.store.states()
    assert all(s.state.status is Status.UP for s in states.values())
    assert all(s.state.failures == 0 for s in states.values())
    rollups = await rig.probes.rollups()
    outcomes: dict[str, int] = {}
    kinds: dict[str, int] = {}
    for r in rollups.values():
        for k, n in r.outcomes.items():
            outcomes[k] = outcomes.get(k, 0) + n
        for k, n in r.error_kinds.items():
            kinds[k] = kinds.get(k, 0) + n
    assert outcomes == {"ok": 9, "monitor_error": 11}
    assert kinds == {MASS_FAILURE_KIND: 11}
    # The network is back: the monitor incident resolves, no target alert at all.
    for i, p in enumerate(providers):
        await rig.probe(240 + i * 10, provider=p)
    (incident,) = await rig.store.incidents()
    assert incident.ended_at is not None
    assert [r[0] for r in await rig.outbox()] == ["firing", "resolved"]


async def test_maintenance_mutes_then_releases(migrated: AsyncEngine, clock: Clock) -> None:
    window = {"start": T0.isoformat(), "end": (T0 + timedelta(seconds=400)).isoformat()}
    cfg = alert_config(maintenance=[{**window, "provider": "Alpha"}], repeat_interval_s=600)
    rig = Rig(migrated, cfg, clock)
    for t in (0, 60, 120):
        await rig.probe(t, Outcome.SERVER_ERROR)
    assert await rig.outbox() == [("firing", "hook", "muted"), ("firing", "log", "muted")]
    clock.now = T0 + timedelta(seconds=300)
    assert await rig.evaluator.remind() == 0  # still in the window
    clock.now = T0 + timedelta(seconds=401)
    assert await rig.evaluator.remind() == 2  # still DOWN after it: now they hear
    assert await rig.outbox() == [("firing", "hook", "pending"), ("firing", "log", "pending")]


async def test_resolved_inside_maintenance_stays_muted(migrated: AsyncEngine, clock: Clock) -> None:
    window = {"start": T0.isoformat(), "end": (T0 + timedelta(hours=1)).isoformat()}
    rig = Rig(migrated, alert_config(maintenance=[window]), clock)
    for t, outcome in enumerate([Outcome.SERVER_ERROR] * 3 + [Outcome.OK] * 2):
        await rig.probe(t * 60, outcome)
    assert {status for _, _, status in await rig.outbox()} == {"muted"}
    assert len(await rig.outbox()) == 4


async def test_reminders_while_down(migrated: AsyncEngine, clock: Clock) -> None:
    cfg = alert_config(repeat_interval_s=600)
    rig = Rig(migrated, cfg, clock)
    other = Evaluator(cfg, rig.store, now=clock)  # a second monitor sharing the database
    for t in (0, 60, 120):
        await rig.probe(t, Outcome.SERVER_ERROR)
    clock.now = T0 + timedelta(seconds=121 + 599)
    assert await rig.evaluator.remind() == 0
    clock.now = T0 + timedelta(seconds=121 + 600)
    assert await rig.evaluator.remind() == 2
    assert await other.remind() == 0  # the outbox key admits each reminder once
    clock.now = T0 + timedelta(seconds=121 + 1900)
    assert await rig.evaluator.remind() == 2
    transitions = [r[0] for r in await rig.outbox()]
    assert transitions == ["firing"] * 2 + ["reminder:1"] * 2 + ["reminder:3"] * 2


class Recorder:
    """A channel that records what it is sent, failing the first `fail` sends."""

    def __init__(self, name: str, fail: int = 0, delay_s: float = 0.0) -> None:
        self.name = name
        self.fail = fail
        self.delay_s = delay_s
        self.sent: list[dict[str, Any]] = []

    async def send(self, payload: dict[str, Any]) -> None:
        await asyncio.sleep(self.delay_s)
        if self.fail > 0:
            self.fail -= 1
            raise ChannelError("HTTP 503: try later")
        self.sent.append(payload)


async def outage(rig: Rig) -> None:
    for t in (0, 60, 120):
        await rig.probe(t, Outcome.SERVER_ERROR)


async def test_retries_with_backoff_then_gives_up(migrated: AsyncEngine, clock: Clock) -> None:
    cfg = alert_config(retry_base_s=5, retry_max_attempts=3)
    rig = Rig(migrated, cfg, clock)
    await outage(rig)
    hook, log_ch = Recorder("hook", fail=10), Recorder("log", fail=1)
    sender = OutboxSender(rig.store, {"hook": hook, "log": log_ch}, cfg.alerts, "me", now=clock)
    assert await sender.run_once() == 2
    rows = {r["channel"]: r for r in await rig.store.outbox()}
    assert rows["hook"]["status"] == "pending"
    assert rows["hook"]["attempts"] == 1
    assert rows["hook"]["next_attempt_at"] == clock.now + timedelta(seconds=5)
    assert await sender.run_once() == 0  # not due yet
    clock.now += timedelta(seconds=5)
    assert await sender.run_once() == 2
    assert len(log_ch.sent) == 1
    rows = {r["channel"]: r for r in await rig.store.outbox()}
    assert rows["log"]["status"] == "sent"
    assert rows["hook"]["next_attempt_at"] == clock.now + timedelta(seconds=10)
    clock.now += timedelta(seconds=10)
    assert await sender.run_once() == 1
    rows = {r["channel"]: r for r in await rig.store.outbox()}
    assert (rows["hook"]["status"], rows["hook"]["attempts"]) == ("failed", 3)
    assert "503" in rows["hook"]["last_error"]
    assert [backoff_s(n, 5) for n in (1, 2, 3, 20)] == [5, 10, 20, 3600]


async def test_resolved_waits_for_its_firing(migrated: AsyncEngine, clock: Clock) -> None:
    cfg = alert_config(channels=[{"name": "log", "type": "log"}], retry_base_s=600)
    rig = Rig(migrated, cfg, clock)
    await outage(rig)
    log_ch = Recorder("log", fail=1)
    sender = OutboxSender(rig.store, {"log": log_ch}, cfg.alerts, "me", now=clock)
    await sender.run_once()  # firing fails, retried in 600 s
    await rig.probe(180)
    await rig.probe(240)  # resolved is written, due now, but its firing is not out yet
    assert await sender.run_once() == 0
    clock.now += timedelta(seconds=600)
    await sender.run_once()
    await sender.run_once()
    assert [p["status"] for p in log_ch.sent] == ["firing", "resolved"]


async def test_a_dead_senders_claim_is_taken_after_the_lease(
    migrated: AsyncEngine, clock: Clock
) -> None:
    cfg = alert_config(channels=[{"name": "log", "type": "log"}])
    rig = Rig(migrated, cfg, clock)
    await outage(rig)
    claimed = await rig.store.claim_outbox("dead", clock.now, lease_s=60)
    assert len(claimed) == 1  # then the claimer died before sending
    log_ch = Recorder("log")
    sender = OutboxSender(rig.store, {"log": log_ch}, cfg.alerts, "alive", now=clock)
    assert await sender.run_once() == 0
    clock.now += timedelta(seconds=sender.lease_s + 1)
    assert await sender.run_once() == 1
    assert len(log_ch.sent) == 1
    # The dead claimer's late report is refused: its claim is gone.
    assert not await rig.store.finish(claimed[0].id, "dead", OutboxStatus.SENT, clock.now)


async def test_two_senders_never_send_the_same_row(pg_db: Db, clock: Clock) -> None:
    a, b = pg_db.engine(), pg_db.engine()
    try:
        await upgrade(a)
        cfg = alert_config(
            providers=[f"P{i}" for i in range(6)],
            channels=[{"name": "log", "type": "log"}],
            mass_failure_min_targets=100,
        )
        rig = Rig(a, cfg, clock)
        for i in range(6):
            for t in (0, 60, 120):
                await rig.probe(t + i, Outcome.SERVER_ERROR, provider=f"P{i}")
        ch_a, ch_b = Recorder("log", delay_s=0.05), Recorder("log", delay_s=0.05)
        s_a = OutboxSender(AlertStore(a), {"log": ch_a}, cfg.alerts, "a", now=clock)
        s_b = OutboxSender(AlertStore(b), {"log": ch_b}, cfg.alerts, "b", now=clock)

        async def drain(sender: OutboxSender) -> None:
            while await sender.run_once():
                pass

        await asyncio.gather(drain(s_a), drain(s_b))
        keys = [p["provmon"]["idempotency_key"] for p in ch_a.sent + ch_b.sent]
        assert len(keys) == 6
        assert len(set(keys)) == 6
    finally:
        await a.dispose()
        await b.dispose()


async def test_quorum_across_vantages(pg_db: Db, clock: Clock) -> None:
    """Three monitors share a PostgreSQL: one vantage failing alone is its own problem; when a
    second agrees, the provider is DOWN, once."""
    engines = [pg_db.engine() for _ in range(3)]
    try:
        await upgrade(engines[0])
        rigs = {
            v: Rig(e, alert_config(vantage=v, channels=[{"name": "log", "type": "log"}]), clock)
            for v, e in zip(("eu", "us", "ap"), engines, strict=True)
        }
        for t in (0, 60, 120, 180):
            await asyncio.gather(
                rigs["eu"].probe(t, Outcome.SERVER_ERROR),
                rigs["us"].probe(t + 1),
                rigs["ap"].probe(t + 2),
            )
        incidents = await rigs["eu"].store.incidents()
        assert [(i.kind, i.vantage) for i in incidents] == [(IncidentKind.VANTAGE, "eu")]
        for t in (240, 300, 360):
            await asyncio.gather(
                rigs["eu"].probe(t, Outcome.SERVER_ERROR),
                rigs["us"].probe(t + 1, Outcome.SERVER_ERROR),
                rigs["ap"].probe(t + 2),
            )
        incidents = await rigs["eu"].store.incidents()
        kinds = [(i.kind, i.vantage, i.ended_at is None) for i in incidents]
        assert (IncidentKind.DOWN, None, True) in kinds
        assert sum(1 for k in kinds if k[0] is IncidentKind.DOWN) == 1
        down = next(i for i in incidents if i.kind is IncidentKind.DOWN)
        assert set(down.vantages) == {"eu", "us"}
        # eu's own incident was superseded by the provider's.
        assert (IncidentKind.VANTAGE, "eu", False) in kinds
        outbox = await rigs["eu"].store.outbox()
        firing = [r for r in outbox if r["transition"] == "firing"]
        assert len({(r["incident_id"], r["channel"]) for r in firing}) == len(firing)
    finally:
        for e in engines:
            await e.dispose()


async def test_incidents_command(tmp_path: Path, clock: Clock) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'i.db'}"
    engine = make_engine(url)
    try:
        await upgrade(engine)
        cfg = alert_config(providers=["Alpha", "Beta"])
        cfg = dataclasses.replace(cfg, database_url=Secret(url))
        rig = Rig(engine, cfg, clock)
        for t in (0, 60, 120):
            await rig.probe(t, Outcome.SERVER_ERROR)
        for t in (180, 240):
            await rig.probe(t)
        for t in (300, 360, 420):
            await rig.probe(t, Outcome.TIMEOUT, provider="Beta")
    finally:
        await engine.dispose()
    out = io.StringIO()
    assert await app.incidents(cfg, out) == 0
    lines = out.getvalue().splitlines()
    assert lines[0].split()[:4] == ["id", "kind", "provider", "route"]
    assert "Alpha" in lines[1] and "2026-11-16 00:03:00" in lines[1] and "3m00s" in lines[1]
    assert "Beta" in lines[2] and "open" in lines[2] and "timeout.ttft×3" in lines[2]
    out = io.StringIO()
    await app.incidents(cfg, out, open_only=True, as_json=True)
    (doc,) = [json.loads(line) for line in out.getvalue().splitlines()]
    assert (doc["provider"], doc["kind"], doc["ended_at"]) == ("Beta", "down", None)
    out = io.StringIO()
    await app.incidents(cfg, out, since=T0 + timedelta(days=1), as_json=True)
    assert out.getvalue().splitlines() == [json.dumps(doc)]  # the open one still counts


@pytest.mark.slow
async def test_a_target_far_behind_does_not_starve_the_others(tmp_path: Path) -> None:
    """One target probed every 6 h, 19 every minute: after 300 minutes three of the busy ones
    fail three times and must go DOWN, however far behind the slow one's mark is."""
    import uuid
    from datetime import UTC, datetime

    from monitor.alerts.evaluator import Evaluator
    from monitor.config import parse_config
    from monitor.storage.alerts import AlertStore
    from monitor.storage.database import make_engine, upgrade
    from monitor.storage.store import Store

    targets: list[dict[str, object]] = [
        {"route": "direct", "model": "m", "provider": f"P{i}", "base_url": "http://x/v1"}
        for i in range(20)
    ]
    targets[0]["interval_s"] = 6 * 3600
    cfg = parse_config(
        {
            "vantage": "here",
            "targets": targets,
            "database": {"url": f"sqlite+aiosqlite:///{tmp_path}/db.sqlite"},
        },
        {},
    )
    engine = make_engine(cfg.database_url.reveal())
    await upgrade(engine)
    store = Store(engine)
    now = datetime.now(UTC)
    clock = [now - timedelta(hours=5)]
    evaluator = Evaluator(cfg, AlertStore(engine), now=lambda: clock[0])

    def probe(provider: str, at: datetime, **kw: object) -> tuple[str, ProbeResult]:
        return uuid.uuid4().hex, result(
            model="m", provider=provider, vantage="here", started_at=at, **kw
        )

    await store.insert_probes([probe("P0", now - timedelta(hours=5))])
    await evaluator.evaluate()
    for m in range(300, 0, -1):
        at = now - timedelta(minutes=m)
        await store.insert_probes([probe(f"P{i}", at) for i in range(1, 20)])
        if m % 10 == 0:
            clock[0] = at + timedelta(seconds=1)
            await evaluator.evaluate()
    for k in range(3):
        at = now + timedelta(seconds=k)
        await store.insert_probes(
            [
                probe(f"P{i}", at, outcome=Outcome.SERVER_ERROR, error_kind="http.503")
                for i in (1, 2, 3)
            ]
            + [probe(f"P{i}", at) for i in range(4, 20)]
        )
    clock[0] = now + timedelta(seconds=10)
    await evaluator.evaluate()
    assert len(await AlertStore(engine).incidents(open_only=True)) == 3
    await engine.dispose()


async def test_slow_sends_never_let_a_second_monitor_send_the_same_row(tmp_path: Path) -> None:
    """Eight notifications, each taking 9 s to send: by the seventh the first ones' claim is
    older than the 60 s lease, and another monitor's sender looks for abandoned rows."""
    from datetime import UTC

    from monitor.alert_model import IncidentKind, OutboxStatus

    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path}/db.sqlite")
    await upgrade(engine)
    store = AlertStore(engine)
    t0 = datetime(2026, 11, 20, tzinfo=UTC)
    async with store.unit() as u:
        for i in range(8):
            inc = await u.incidents.open(IncidentKind.MONITOR, None, f"v{i}", t0, t0)
            payload = {"status": "firing", "alerts": [{"labels": {}, "annotations": {}}]}
            await u.outbox.add(inc.id, "firing", "oncall", payload, OutboxStatus.PENDING, t0)
    clock = [t0]
    sent: list[str] = []

    class SlowWebhook:
        name = "oncall"
        timeout_s = 10.0

        def __init__(self, who: str) -> None:
            self.who = who

        async def send(self, payload: dict[str, Any]) -> None:
            clock[0] += timedelta(seconds=9)
            sent.append(self.who)
            if self.who == "A" and len(sent) == 7:
                await b.run_once()

    cfg = parse_config(
        {"alerts": {"channels": [{"name": "oncall", "type": "webhook", "url": "http://h/x"}]}}, {}
    )
    a = OutboxSender(store, {"oncall": SlowWebhook("A")}, cfg.alerts, "A", now=lambda: clock[0])  # type: ignore[dict-item]
    b = OutboxSender(store, {"oncall": SlowWebhook("B")}, cfg.alerts, "B", now=lambda: clock[0])  # type: ignore[dict-item]
    await a.run_once()
    assert len(sent) == 8
    await engine.dispose()
