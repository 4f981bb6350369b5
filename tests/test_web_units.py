"""The web package's pure parts (listen addresses, credentials, badges, percentiles, bars) and
its history cache; and that the pure modules import neither aiohttp nor SQLAlchemy."""

from __future__ import annotations

import asyncio
import base64
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from monitor.aggregate import DEFAULT_ACCOUNTING
from monitor.errors import StoreUnavailable
from monitor.maintenance import Window
from monitor.web.badge import badge_svg, text_width, ttft_badge, uptime_badge
from monitor.web.cache import SettledCache
from monitor.web.history import bucket_start, day_tallies, uptime_bars
from monitor.web.security import authorized, exposure_problem, is_loopback, parse_listen
from monitor.web.views import api_status, percentiles

NOW = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)
KEY = ("acme/m", "Alpha", "direct")


def test_listen_addresses() -> None:
    assert parse_listen("127.0.0.1:8787").loopback
    assert parse_listen("[::1]:9000").url() == "http://[::1]:9000"
    assert parse_listen("localhost:80").loopback
    assert not parse_listen("0.0.0.0:8787").loopback
    assert not parse_listen("192.168.1.5:8787").loopback
    assert not is_loopback("example.com")
    for bad in ("8787", "host:port", "::1:8787", "127.0.0.1:70000", ":8787"):
        with pytest.raises(ValueError, match=r"HOST:PORT|out of range"):
            parse_listen(bad)


def test_exposure_needs_a_token_or_explicit_anonymous() -> None:
    public = parse_listen("0.0.0.0:8787")
    problem = exposure_problem(public, has_token=False, allow_anonymous=False)
    assert problem is not None and "auth_token_env" in problem and "allow_anonymous" in problem
    assert exposure_problem(public, has_token=True, allow_anonymous=False) is None
    assert exposure_problem(public, has_token=False, allow_anonymous=True) is None
    assert exposure_problem(parse_listen("127.0.0.1:1"), False, False) is None


def test_credentials() -> None:
    token = "s3cret"
    assert authorized(None, None)
    assert not authorized(None, token)
    assert authorized("Bearer s3cret", token)
    assert not authorized("Bearer s3cre", token)
    assert not authorized("Token s3cret", token)
    basic = base64.b64encode(b"anyone:s3cret").decode()
    assert authorized(f"Basic {basic}", token)
    assert not authorized("Basic " + base64.b64encode(b"s3cret:").decode(), token)
    assert not authorized("Basic !!!", token)


def test_badges_escape_and_size() -> None:
    svg = badge_svg("<b>", "a&b", "#fff")
    assert "<b>" not in svg and "&lt;b&gt;" in svg and "a&amp;b" in svg
    assert text_width("mmm") > text_width("iii")
    assert "99.9%" in uptime_badge(99.94) and "#4c1" in uptime_badge(99.94)
    assert "#e05d44" in uptime_badge(80.0) and "no data" in uptime_badge(None)
    assert "350 ms" in ttft_badge(350.2)


def test_percentiles_point_at_the_slow_side() -> None:
    values = [float(v) for v in range(1, 101)]
    times = percentiles("ttft_ms", values)
    speeds = percentiles("e2e_tps", values)
    assert times is not None and speeds is not None
    assert times["p90"] == pytest.approx(90.1) and times["p99"] == pytest.approx(99.01)
    assert speeds["p90"] == pytest.approx(10.9) and speeds["p99"] == pytest.approx(1.99)
    assert speeds["p50"] == times["p50"]
    assert percentiles("ttft_ms", [None]) is None
    assert [api_status(s) for s in ("up", "down", "degraded", "mixed", "unknown")] == [
        "up",
        "down",
        "degraded",
        "unknown",
        "unknown",
    ]


def test_buckets_align_to_the_epoch() -> None:
    assert bucket_start(NOW, 6 * 3600) == datetime(2026, 11, 26, 6, tzinfo=UTC)
    assert bucket_start(NOW, 1200) == datetime(2026, 11, 26, 9, 20, tzinfo=UTC)


def test_uptime_bars_settled_days_recent_hours_and_maintenance() -> None:
    hour = datetime(2026, 11, 26, 8, tzinfo=UTC)
    recent = {
        KEY: {
            hour: Counter({"ok": 9, "server_error": 1, "rate_limited": 2}),
            hour + timedelta(hours=1): Counter({"ok": 5, "client_error": 1}),
        }
    }
    old_day = datetime(2026, 11, 24, tzinfo=UTC)
    settled = day_tallies(
        {KEY: {old_day + timedelta(hours=3): Counter({"timeout": 4})}}, DEFAULT_ACCOUNTING
    )
    windows = [Window(hour + timedelta(minutes=10), hour + timedelta(minutes=20))]
    midnight = datetime(2026, 11, 26, tzinfo=UTC)
    (tb,) = uptime_bars(
        [KEY], settled, midnight, recent, [], NOW, DEFAULT_ACCOUNTING, days=3, windows=windows
    )
    assert [b.start for b in tb.days] == [old_day, old_day + timedelta(days=1), midnight]
    assert tb.days[0].failed == 4 and tb.days[0].uptime_pct == 0.0
    assert tb.days[1].uptime_pct is None  # no data is not downtime
    eight, nine = tb.hours[-2], tb.hours[-1]
    assert eight.maintenance and eight.uptime_pct is None and eight.ok == 0  # excluded
    assert nine.ok == 5 and nine.other == 1 and nine.uptime_pct == 100.0
    assert tb.days[2].maintenance and tb.days[2].ok == 5  # the maintenance hour left out
    assert tb.uptime_period == pytest.approx(100 * 5 / 9)


async def test_cache_serves_settled_part_and_refreshes_behind() -> None:
    clock = [0.0]
    cache = SettledCache(max_age_s=60, clock=lambda: clock[0])
    calls: list[tuple[datetime, datetime]] = []

    async def compute(a: datetime, b: datetime) -> int:
        calls.append((a, b))
        return len(calls)

    t0, t1, t2 = NOW, NOW + timedelta(hours=1), NOW + timedelta(hours=2)
    assert await cache.get("k", t0, t1, compute) == (t1, 1)  # computed, waited for
    assert await cache.get("k", t0, t1, compute) == (t1, 1)  # served
    assert len(calls) == 1
    # the range moved on: the old part is served (with its own end), a refresh runs behind
    assert await cache.get("k", t0, t2, compute) == (t1, 1)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert calls[-1] == (t0, t2)
    assert await cache.get("k", t0, t2, compute) == (t2, 2)
    clock[0] = 61.0  # too old: served once more, refreshed behind
    assert await cache.get("k", t0, t2, compute) == (t2, 2)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert await cache.get("k", t0, t2, compute) == (t2, 3)
    await cache.close()


async def test_cache_does_not_keep_failures() -> None:
    cache = SettledCache()
    fail = [True]

    async def compute(a: datetime, b: datetime) -> str:
        if fail[0]:
            raise StoreUnavailable("down")
        return "ok"

    with pytest.raises(StoreUnavailable):
        await cache.get("k", NOW, NOW, compute)
    fail[0] = False
    assert await cache.get("k", NOW, NOW, compute) == (NOW, "ok")
    await cache.close()


def test_pure_modules_import_neither_aiohttp_nor_sqlalchemy() -> None:
    pure = ("site", "views", "history", "pages", "badge", "security", "cache")
    code = (
        "import sys\n"
        + "".join(f"import monitor.web.{m}\n" for m in pure)
        + "print(sorted(m for m in ('aiohttp', 'sqlalchemy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
