"""Data for the web tests: probes of a few targets written through the real store, with the
real alert evaluator run after every round (so states and incidents are the daemon's); and
the server over them, with small HTTP helpers."""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from monitor.alerts.evaluator import Evaluator
from monitor.clock import utc_now
from monitor.config import Config, load_config
from monitor.reporting.job import accounting
from monitor.results import Outcome, ProbeResult
from monitor.storage.alerts import AlertStore
from monitor.storage.database import Engine, make_engine, upgrade
from monitor.storage.store import Store
from monitor.web.security import Listen
from monitor.web.server import running
from monitor.web.site import site_from_config
from tests.factories import result

MODEL = "acme/model-1"
OTHER_MODEL = "acme/model-2"
HOSTILE = "<img src=x onerror=alert(1)>\"'&<script>alert(2)</script>"
PROVIDERS = ("Alpha", "Beta", HOSTILE)
ROUNDS = 40
"""Rounds one minute apart; the last ends 30 s before `now`, so no probe sits within 30 s of
the 5- and 30-minute window edges while a test runs."""
QUALITY_WORKLOADS = {"Alpha": ("tools", "json"), HOSTILE: ("json",)}
"""Quality workloads probed beside `short` (Beta and Gamma have none: their shares are null)."""


def config_text(db_url: str) -> str:
    lines = [
        'vantage = "web-test"',
        "[database]",
        f'url = "{db_url}"',
        "[schedule]",
        "interval_s = 60",
        "jitter_s = 1",
        "[workloads.tools]",
        'kind = "tool_call"',
        "input_tokens = 10",
        "max_tokens = 100",
        "[workloads.json]",
        'kind = "structured"',
        "input_tokens = 10",
        "max_tokens = 100",
    ]
    targets = [(MODEL, p) for p in PROVIDERS] + [(OTHER_MODEL, "Gamma")]
    for model, provider in targets:
        escaped = provider.replace("\\", "\\\\").replace('"', '\\"')
        lines += [
            "[[targets]]",
            'route = "direct"',
            f'model = "{model}"',
            f'provider = "{escaped}"',
            'base_url = "http://127.0.0.1:9/v1"',
            "context_length = 32768",
            "input_price_per_mtok = 0.5",
            "output_price_per_mtok = 0.75",
            f"workloads = {list(('short', *QUALITY_WORKLOADS.get(provider, ())))!r}",
        ]
    return "\n".join(lines) + "\n"


def write_config(tmp_path: Path, db_url: str) -> tuple[Path, Config]:
    path = tmp_path / "provmon.toml"
    path.write_text(config_text(db_url), encoding="utf-8")
    return path, load_config(path, {})


@dataclass(frozen=True, slots=True)
class Written:
    probes: list[ProbeResult]
    round_times: list[datetime]


def _quality(workload: str, i: int) -> str:
    """A verdict for round `i`: tool calls break 1 in 5 times, structured answers 1 in 8."""
    if workload == "tools":
        return "invalid_json" if i % 5 == 2 else "ok"
    return "schema_mismatch" if i % 8 == 5 else "ok"


def _outcome(provider: str, model: str, i: int) -> Outcome:
    if provider == "Beta" and 10 <= i < 18:
        return Outcome.SERVER_ERROR  # an outage, resolved
    if model == OTHER_MODEL and i >= ROUNDS - 4:
        return Outcome.TIMEOUT  # still down
    if provider == "Alpha" and i % 9 == 4:
        return Outcome.RATE_LIMITED
    return Outcome.OK


async def write_probes(engine: Engine, cfg: Config, now: datetime) -> Written:
    """Three days of sparse history, then ROUNDS rounds, each stored and evaluated."""
    store = Store(engine)
    rng = random.Random(5)
    probes: list[ProbeResult] = []
    history = []
    for day in (2, 3):
        for k in range(6):
            at = now - timedelta(days=day, minutes=k)
            history.append(result(model=MODEL, provider="Alpha", started_at=at, vantage="web-test"))
    history.append(
        result(
            model=MODEL,
            provider="Beta",
            started_at=now - timedelta(days=2, hours=1),
            vantage="web-test",
            outcome=Outcome.SERVER_ERROR,
            error_kind="http.502",
        )
    )
    await store.insert_probes([(f"h{n:031d}", r) for n, r in enumerate(history)])
    probes += history
    clock = [now]
    evaluator = Evaluator(cfg, AlertStore(engine), now=lambda: clock[0])
    rounds = [now - timedelta(seconds=30 + 60 * (ROUNDS - 1 - i)) for i in range(ROUNDS)]
    for i, at in enumerate(rounds):
        batch = []
        for t, workload in ((target, w) for target in cfg.targets for w in target.workloads):
            outcome = _outcome(t.provider, t.model, i)
            speed = {"Alpha": 1.0, "Beta": 0.7}.get(t.provider, 0.5)
            kind = {Outcome.SERVER_ERROR: "http.503", Outcome.TIMEOUT: "timeout.ttft"}
            kind[Outcome.RATE_LIMITED] = "http.429"
            values = {
                "model": t.model,
                "provider": t.provider,
                "route": t.route,
                "vantage": cfg.vantage,
                "started_at": at + timedelta(milliseconds=rng.randint(0, 900)),
                "outcome": outcome,
            }
            if outcome is Outcome.OK:
                values |= {
                    "ttft_ms": rng.uniform(150, 450) / speed,
                    "latency_ms": rng.uniform(900, 1400) / speed,
                    "decode_tps": rng.uniform(80, 120) * speed,
                    "e2e_tps": rng.uniform(60, 90) * speed,
                }
                if workload != "short":
                    values["quality"] = _quality(workload, i)
            else:
                values["error_kind"] = kind[outcome]
            batch.append(ProbeResult(workload=workload, **values))
        await store.insert_probes([(f"r{i:03d}{n:028d}", r) for n, r in enumerate(batch)])
        probes += batch
        clock[0] = at + timedelta(seconds=2)
        await evaluator.evaluate()
    return Written(probes, rounds)


@dataclass
class Served:
    url: str
    cfg: Config
    config_path: Path
    written: Written
    now: datetime


@contextlib.asynccontextmanager
async def serving(tmp_path: Path, token: str | None = None) -> AsyncIterator[Served]:
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'web.db'}"
    path, cfg = write_config(tmp_path, db_url)
    engine = make_engine(db_url)
    await upgrade(engine)
    now = utc_now()
    written = await write_probes(engine, cfg, now)
    site = site_from_config(cfg, accounting(cfg))
    try:
        async with running(engine, site, Listen("127.0.0.1", 0), token=token) as url:
            yield Served(url, cfg, path, written, now)
    finally:
        await engine.dispose()


async def get(url: str, **kwargs: Any) -> tuple[int, dict[str, str], str]:
    async with (
        aiohttp.ClientSession(trust_env=False) as session,
        session.get(url, **kwargs) as resp,
    ):
        return resp.status, dict(resp.headers), await resp.text()


async def get_json(url: str) -> Any:
    status, _, body = await get(url)
    assert status == 200, body
    return json.loads(body)
