"""The live pages' queries and reads on SQLite and PostgreSQL (same bodies), and that the
history cache changes no answer."""

from __future__ import annotations

import tomllib
from collections import Counter
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from monitor.clock import utc_now
from monitor.config import Config, parse_config
from monitor.reporting.job import accounting
from monitor.storage.reports import rollups_between
from monitor.storage.store import Store
from monitor.storage.web import (
    hourly_outcomes,
    incidents_since,
    open_incident_counts,
    readiness,
    recent_samples,
)
from monitor.web import read
from monitor.web.cache import SettledCache
from monitor.web.site import site_from_config
from tests.conftest import Db
from tests.factories import result
from tests.webdata import MODEL, OTHER_MODEL, config_text, write_probes


def web_config() -> Config:
    return parse_config(tomllib.loads(config_text("sqlite+aiosqlite:///unused.db")), {})


async def test_queries(migrated: AsyncEngine) -> None:
    cfg = web_config()
    now = utc_now()
    written = await write_probes(migrated, cfg, now)
    since = now - timedelta(minutes=30)
    recent = await recent_samples(migrated, since, now + timedelta(days=1), MODEL)
    expected = [p for p in written.probes if p.model == MODEL and p.started_at >= since]
    assert sorted((p.provider, p.started_at, p.outcome, p.ttft_ms) for p in recent) == sorted(
        (p.provider, p.started_at, p.outcome, p.ttft_ms) for p in expected
    )
    hourly = await hourly_outcomes(migrated, now - timedelta(days=4), now + timedelta(hours=1))
    stored = await Store(migrated).rollups()
    want: dict[tuple[tuple[str, str, str], object], Counter[str]] = {}
    for (key, _v, _w, hour), r in stored.items():
        want.setdefault((key, hour), Counter()).update(r.outcomes)
    got = {(key, hour): c for key, hours in hourly.items() for hour, c in hours.items()}
    assert got == want
    for start in (now - timedelta(days=4), now - timedelta(hours=2)):  # the tail's join
        end = now + timedelta(days=1)
        for model in (None, MODEL):
            assert await hourly_outcomes(
                migrated, start, end, model, recent=True
            ) == await hourly_outcomes(migrated, start, end, model)
            assert await rollups_between(
                migrated, start, end, model, recent=True
            ) == await rollups_between(migrated, start, end, model)
    assert sum(c["timeout"] for c in got.values()) == 4
    found = await incidents_since(migrated, now - timedelta(days=1))
    assert [(i.target, i.ended_at is None) for i in found] == [
        ((OTHER_MODEL, "Gamma", "direct"), True),  # newest first
        ((MODEL, "Beta", "direct"), False),
    ]
    assert found[1].error_kinds == {"http.503": 8}
    assert [i.target for i in await incidents_since(migrated, now, MODEL)] == []
    assert await open_incident_counts(migrated) == {OTHER_MODEL: 1}
    assert await readiness(migrated) is None


async def test_readiness_of_an_empty_database(db: Db) -> None:
    engine = db.engine()
    try:
        problem = await readiness(engine)
        assert problem is not None and "provmon db upgrade" in problem
    finally:
        await engine.dispose()


async def test_reads_with_and_without_the_cache_agree(migrated: AsyncEngine) -> None:
    cfg = web_config()
    site = site_from_config(cfg, accounting(cfg))
    now = utc_now()
    written = await write_probes(migrated, cfg, now)
    cache = SettledCache()
    try:
        for _ in range(2):  # computed, then served from the cache
            for window in ("1h", "24h", "7d", "30d"):
                for metric in ("ttft_ms", "e2e_tps"):
                    plain = await read.model_series(migrated, site, MODEL, metric, window, now)
                    cached = await read.model_series(
                        migrated, site, MODEL, metric, window, now, cache
                    )
                    assert cached == plain
            plain_bars, plain_inc = await read.model_uptime(migrated, site, MODEL, now, 30)
            bars, inc = await read.model_uptime(migrated, site, MODEL, now, 30, cache)
            assert [b.to_json() for b in bars] == [b.to_json() for b in plain_bars]
            assert inc == plain_inc
            assert await read.models_index(migrated, site, now, cache) == await read.models_index(
                migrated, site, now
            )
            live = await read.model_live(migrated, site, MODEL, now, cache)
            plain_live = await read.model_live(migrated, site, MODEL, now)
            assert live.endpoints(site, now) == plain_live.endpoints(site, now)
        assert cache.computed > 0 and cache.served > 0
        # a probe stored after the cache was filled shows: the recent part is read every time
        later = now + timedelta(seconds=20)
        before = await read.model_live(migrated, site, OTHER_MODEL, later, cache)
        probe = result(
            model=OTHER_MODEL,
            provider="Gamma",
            started_at=now + timedelta(seconds=10),
            vantage=cfg.vantage,
        )
        await Store(migrated).insert_probes([("x" * 32, probe)])
        after = await read.model_live(migrated, site, OTHER_MODEL, later, cache)
        assert after.statuses[0].windows["1d"].probes == (
            before.statuses[0].windows["1d"].probes + 1
        )
        assert after.statuses[0].last_probe_at == probe.started_at
        assert written.round_times[-1] < probe.started_at
    finally:
        await cache.close()


async def test_the_day_keeps_each_workloads_quality_verdicts(migrated: AsyncEngine) -> None:
    """Settled hours are merged per target and workload, so their verdicts keep their kind."""
    cfg = web_config()
    site = site_from_config(cfg, accounting(cfg))
    now = utc_now()
    settled, recent = now - timedelta(hours=3), now - timedelta(minutes=10)
    verdicts = [
        (settled, "tools", ("ok", "ok", "ok", "invalid_json")),
        (settled, "json", ("schema_mismatch", "ok")),
        (recent, "tools", ("no_tool_call",)),
    ]
    probes = [
        result(model=MODEL, workload=w, started_at=at, vantage=cfg.vantage, quality=q)
        for at, w, qs in verdicts
        for q in qs
    ]
    probes.append(result(model=MODEL, started_at=recent, vantage=cfg.vantage))  # plain
    await Store(migrated).insert_probes([(f"q{n:031d}", r) for n, r in enumerate(probes)])
    cache = SettledCache()
    try:
        for using in (None, cache, cache):  # read, computed into the cache, served from it
            live = await read.model_live(migrated, site, MODEL, now, using)
            (alpha,) = [s for s in live.statuses if s.provider == "Alpha"]
            day, w30 = alpha.windows["1d"], alpha.windows["30m"]
            assert (day.tool_call_error_pct, day.structured_error_pct) == (40.0, 50.0)
            assert (w30.tool_call_error_pct, w30.structured_error_pct) == (100.0, None)
            (beta,) = [s for s in live.statuses if s.provider == "Beta"]
            assert beta.windows["1d"].tool_call_error_pct is None
        assert cache.served > 0
    finally:
        await cache.close()
