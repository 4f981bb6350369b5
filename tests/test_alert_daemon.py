"""Alerting end to end: the monitor probes the simulator, the writer stores, the evaluator
decides, the sender delivers to a real webhook receiver. Every notification is counted.

Scenarios: an outage (DOWN, then resolved), a flapping provider, a rate-limited one, one that
only answers 401, an outage inside a maintenance window, and the monitor's own network cut
(with and without a connectivity check)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from monitor.clock import utc_now
from monitor.config import Config, parse_config
from monitor.runtime import Daemon, Pacing, build_daemon
from monitor.simulator import DEMO_MODEL, Farm, ProviderProfile, ServedModel, run_simulator
from monitor.storage.alerts import AlertStore
from monitor.storage.database import make_engine, upgrade
from tests.factories import config_doc, direct_target
from tests.receivers import WebhookReceiver, webhook_receiver
from tests.tcpproxy import TcpProxy

pytestmark = pytest.mark.slow  # each runs the daemon for seconds

KEY = "sk-alert-test-key-42"
INTERVAL_S = 0.3
FAST = Pacing(
    writer_flush_s=0.05, outbox_poll_s=0.2, connectivity_timeout_s=1, connectivity_fresh_s=0.2
)


def profile(name: str, **kw: Any) -> ProviderProfile:
    return ProviderProfile(
        name, name, (ServedModel(DEMO_MODEL),), ttft_ms=20, tps=400, output_tokens=8, **kw
    )


@dataclass
class Rig:
    daemon: Daemon
    receiver: WebhookReceiver

    @property
    def cfg(self) -> Config:
        return self.daemon.cfg

    @property
    def store(self) -> AlertStore:
        return self.daemon.alerting.store

    async def rounds(self, duration_s: float) -> None:
        """Burst rounds every INTERVAL_S for `duration_s`, as the scheduler would."""
        loop = asyncio.get_running_loop()
        end = loop.time() + duration_s
        slot = loop.time()
        while slot < end:
            await asyncio.sleep(max(0.0, slot - loop.time()))
            await self.daemon.run_round()
            slot += INTERVAL_S


@contextlib.asynccontextmanager
async def running(
    engine: AsyncEngine,
    tmp_path: Path,
    targets: Sequence[dict[str, Any]],
    *,
    alerts: dict[str, Any] | None = None,
    maintenance: Sequence[dict[str, Any]] = (),
) -> AsyncIterator[Rig]:
    """The daemon `provmon run` builds, in burst mode (the test runs the probe rounds; the
    connectivity check keeps its schedule), alerting to a real webhook receiver."""
    async with webhook_receiver() as rx:
        doc = config_doc(
            [{"workloads": ["small"], **t} for t in targets],
            spill=tmp_path / "spill.jsonl",
            vantage="test",
            timeouts={"connect_s": 1, "first_token_s": 1, "idle_s": 0.5, "total_s": 3},
            workloads={"small": {"input_tokens": 10, "max_tokens": 8}},
            schedule={"interval_s": 1, "jitter_s": 0},
            alerts={
                "channels": [
                    {"name": "hook", "type": "webhook", "url": rx.url},
                    {"name": "log", "type": "log"},
                ],
                **(alerts or {}),
            },
            maintenance=list(maintenance),
        )
        cfg = parse_config(doc, {"K": KEY, "BAD": "sk-wrong-key-000000"})
        # Rounds come faster than a config may ask for (intervals are >= 1 s): burst mode.
        cfg = dataclasses.replace(
            cfg, schedule=cfg.schedule.model_copy(update={"interval_s": INTERVAL_S})
        )
        async with build_daemon(cfg, engine=engine, pacing=FAST) as daemon:
            await daemon.start(burst=True)
            yield Rig(daemon, rx)


@contextlib.asynccontextmanager
async def sqlite_engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'alerts.db'}")
    await upgrade(engine)
    try:
        yield engine
    finally:
        await engine.dispose()


def direct(base_url: str, name: str, key_env: str = "K") -> dict[str, Any]:
    return direct_target(base_url, name, key_env=key_env)


async def test_outage_flapping_rate_limited_and_misconfigured(tmp_path: Path) -> None:
    flapping = tuple((0.5 + i * 0.6, 0.5 + i * 0.6 + 0.2) for i in range(12))
    farm = Farm(
        (
            profile("steady"),
            profile("outage", outages=((1.5, 3.5),)),
            profile("flapping", outages=flapping),
            profile("throttled", p_http_429=1.0),
            profile("muted", outages=((1.0, 3.0),)),
        ),
        api_key=KEY,
    )
    async with run_simulator(farm) as sim, sqlite_engine(tmp_path) as engine:
        targets = [direct(sim.direct_base_url(p.slug), p.name) for p in farm.profiles]
        targets.append(direct(sim.direct_base_url("steady"), "wrong-key", "BAD"))
        targets[-1]["provider_model"] = DEMO_MODEL
        now = utc_now()
        window = {
            "start": now.isoformat(),
            "end": (now.replace(year=now.year + 1)).isoformat(),
            "provider": "muted",
        }
        async with running(engine, tmp_path, targets, maintenance=[window]) as rig:
            await rig.rounds(5.5)
            await asyncio.sleep(0.5)
        rx = rig.receiver
        # Every notification, counted: exactly these, each once.
        by_alert = sorted(
            (p["commonLabels"]["alertname"], p["commonLabels"]["provider"], p["status"])
            for p in rx.payloads()
        )
        assert by_alert == [
            ("ProviderDown", "outage", "firing"),
            ("ProviderDown", "outage", "resolved"),
            ("ProviderMisconfigured", "wrong-key", "firing"),
        ]
        assert len({d.key for d in rx.deliveries}) == len(rx.deliveries)
        incidents = await rig.store.incidents()
        kinds = sorted((i.kind.value, i.target[1] if i.target else "") for i in incidents)
        assert kinds == [("config", "wrong-key"), ("down", "muted"), ("down", "outage")]
        down = next(i for i in incidents if i.target and i.target[1] == "outage")
        assert down.ended_at is not None
        assert set(down.error_kinds) == {"http.503"}
        assert 1.5 < (down.duration_s or 0) < 3.5
        muted_rows = [r for r in await rig.store.outbox() if r["status"] == "muted"]
        assert len(muted_rows) == 4  # firing and resolved, to both channels, muted


async def cut_network_scenario(tmp_path: Path, *, with_check: bool) -> WebhookReceiver:
    farm = Farm(tuple(profile(f"p{i}") for i in range(5)), api_key=KEY)
    async with run_simulator(farm) as sim, sqlite_engine(tmp_path) as engine:
        port = int(sim.base_url.rsplit(":", 1)[1])
        proxy = TcpProxy("127.0.0.1", port)
        await proxy.start()
        via = f"http://127.0.0.1:{proxy.port}"
        targets = [direct(f"{via}/{p.slug}/v1", p.name) for p in farm.profiles]
        alerts: dict[str, Any] = {}
        if with_check:
            alerts = {"connectivity_url": f"{via}/_sim/truth", "connectivity_every_s": 0.5}
        try:
            async with running(engine, tmp_path, targets, alerts=alerts) as rig:
                await rig.rounds(1.0)
                await proxy.cut()
                await rig.rounds(2.0)
                await proxy.restore()
                await rig.rounds(1.5)
                await asyncio.sleep(0.5)
        finally:
            await proxy.cut()
        states = await rig.store.states()
        assert all(s.state.status.value == "up" for s in states.values())
        (incident,) = await rig.store.incidents()
        assert incident.kind.value == "monitor"
        assert incident.ended_at is not None
        return rig.receiver


async def test_network_cut_with_a_connectivity_check(tmp_path: Path) -> None:
    rx = await cut_network_scenario(tmp_path, with_check=True)
    assert rx.summary() == [("MonitorConnectivity", "firing"), ("MonitorConnectivity", "resolved")]
    assert "connectivity check" in rx.payloads()[0]["commonAnnotations"]["description"]


async def test_network_cut_seen_as_a_mass_failure(tmp_path: Path) -> None:
    start = time.monotonic()
    rx = await cut_network_scenario(tmp_path, with_check=False)
    assert rx.summary() == [("MonitorConnectivity", "firing"), ("MonitorConnectivity", "resolved")]
    assert "nearly every target" in rx.payloads()[0]["commonAnnotations"]["description"]
    assert time.monotonic() - start < 20
