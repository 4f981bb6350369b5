"""`provmon run` killed with SIGKILL while a notification waits in the outbox: the restarted
daemon sends it, once; the resolved notice follows, once."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import sys
import time
from pathlib import Path

import pytest

from monitor.simulator import DEMO_MODEL, Farm, ProviderProfile, ServedModel, run_simulator
from tests.factories import TINY, config_doc, direct_target, write_config
from tests.receivers import webhook_receiver

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]

KEY = "sk-restart-test-key-7"


def outbox_rows(db: Path) -> list[tuple[str, str]]:
    try:
        with sqlite3.connect(db) as conn:
            return list(conn.execute("select transition, status from outbox order by id"))
    except sqlite3.OperationalError:  # not created yet
        return []


async def wait_for(predicate: object, timeout_s: float, what: str) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


# Probes every second (the shortest interval a config may ask for): the outage lasts 15 s so
# that three failures fit after a slow start on a loaded machine.
@pytest.mark.timeout(150)
async def test_kill_9_between_write_and_send_loses_and_repeats_nothing(tmp_path: Path) -> None:
    farm = Farm(
        (
            ProviderProfile(
                "Down", "down", (ServedModel(DEMO_MODEL),), ttft_ms=20, tps=400,
                output_tokens=8, outages=((0.0, 15.0),),
            ),
        ),
        api_key=KEY,
    )  # fmt: skip
    db = tmp_path / "p.db"
    async with run_simulator(farm) as sim, webhook_receiver() as rx:
        rx.fail = 10**6  # the receiver is broken: notifications wait in the outbox
        doc = config_doc(
            [direct_target(sim.direct_base_url("down"), "Down", key_env="K", workloads=["tiny"])],
            database=db,
            spill=tmp_path / "spill.jsonl",
            vantage="proc",
            timeouts={"first_token_s": 2, "total_s": 5},
            workloads={"tiny": TINY},
            schedule={"interval_s": 1, "jitter_s": 0.05, "drain_s": 2},
            alerts={
                "retry_base_s": 0.2,
                "retry_max_attempts": 1000,
                "channels": [{"name": "hook", "type": "webhook", "url": rx.url, "timeout_s": 2}],
            },
        )
        cfg = write_config(tmp_path / "provmon.toml", doc)
        env = {"K": KEY, "PATH": "/usr/bin:/bin"}
        run = [sys.executable, "-m", "monitor"]
        upgrade = await asyncio.create_subprocess_exec(
            *run, "db", "upgrade", "-c", str(cfg), env=env, stdout=asyncio.subprocess.DEVNULL
        )
        assert await upgrade.wait() == 0
        cmd = [*run, "run", "-c", str(cfg)]
        first = await asyncio.create_subprocess_exec(
            *cmd, env=env, stderr=asyncio.subprocess.DEVNULL
        )
        second = None
        try:
            await wait_for(lambda: outbox_rows(db) == [("firing", "pending")], 30, "firing")
            first.kill()  # SIGKILL: between writing the notification and sending it
            await first.wait()
            assert rx.deliveries == []
            rx.fail = 0
            second = await asyncio.create_subprocess_exec(
                *cmd, env=env, stderr=asyncio.subprocess.DEVNULL
            )
            await rx.wait_for(1, 15)
            await rx.wait_for(2, 40)  # the outage ends: resolved
            second.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(second.wait(), 15) == 0
        finally:
            for proc in (first, second):
                if proc is not None and proc.returncode is None:
                    proc.kill()
                    await proc.wait()
    assert rx.summary() == [("ProviderDown", "firing"), ("ProviderDown", "resolved")]
    assert len({d.key for d in rx.deliveries}) == 2
    assert outbox_rows(db) == [("firing", "sent"), ("resolved", "sent")]
