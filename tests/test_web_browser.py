"""The model page in a real browser: Debian's headless Chromium driven by Playwright, over data
measured from the simulator (the demo's providers plus one with a hostile name).

Skipped, with the reason, only when Chromium or Playwright is missing and CI is not set; in
CI (.ci/run installs both) a missing browser is a failure. Set PROVMON_SCREENSHOT=path.png to
keep the screenshot (README's docs/model-page.png is made that way).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from monitor.demo import demo_config
from monitor.reporting.job import accounting
from monitor.runtime import build_daemon
from monitor.simulator import DEMO_MODEL, Farm, demo_farm, run_simulator
from monitor.storage.database import connected, make_engine, upgrade
from monitor.web.security import Listen
from monitor.web.server import running
from monitor.web.site import site_from_config
from tests.conftest import IN_CI
from tests.webdata import HOSTILE

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ROUNDS = 8


def _missing() -> str | None:
    if not Path(CHROMIUM).exists():
        return "chromium is not installed (apt-get install chromium)"
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    return None


def _require_browser() -> None:
    problem = _missing()
    if problem is not None:
        if IN_CI:
            pytest.fail(f"the browser test must run in CI: {problem}")
        pytest.skip(problem)


def farm() -> Farm:
    """The demo's market (five endpoints of four providers) and one provider whose name is an
    injection attempt."""
    base = demo_farm(seed=4, outage_start_s=3.0, outage_duration_s=5.0)
    hostile = dataclasses.replace(base.profiles[0], name=HOSTILE, slug="hostile")
    return Farm((*base.profiles, hostile), seed=4, api_key=base.api_key)


@dataclasses.dataclass
class Page:
    url: str
    api: str


@pytest.fixture
async def measured(tmp_path: Path) -> AsyncIterator[Page]:
    """ROUNDS rounds of the demo's targets by the daemon build (burst mode: alerting and the
    writer as `provmon run` has them), one reading of OpenRouter's listing, then the server."""
    _require_browser()
    async with run_simulator(farm()) as sim:
        cfg = demo_config(
            sim,
            sim.farm,
            db_path=tmp_path / "browser.db",
            interval_s=5,
            reports_dir=tmp_path / "reports",
        )
        async with connected(cfg.database_url.reveal(), migrated=False) as engine:
            await upgrade(engine)
        async with build_daemon(cfg) as daemon:
            await daemon.start(burst=True)
            for _ in range(ROUNDS):
                await daemon.run_round()
            await daemon.catalogue.poll()
        engine = make_engine(cfg.database_url.reveal())
        site = site_from_config(cfg, accounting(cfg), refresh_s=2)
        try:
            async with running(engine, site, Listen("127.0.0.1", 0)) as url:
                yield Page(f"{url}/models/{DEMO_MODEL}", f"{url}/api/v1/models/{DEMO_MODEL}")
        finally:
            await engine.dispose()


async def until(page: Any, expression: str, timeout_s: float = 10.0) -> None:
    """Poll `expression` in the page until true. (Playwright's wait_for_function evaluates a
    string inside the page, which the page's Content-Security-Policy rightly refuses.)"""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await page.evaluate(expression):
        if loop.time() > deadline:
            raise AssertionError(f"not true within {timeout_s:g} s: {expression}")
        await asyncio.sleep(0.1)


async def endpoints(api: str) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession(trust_env=False) as s, s.get(f"{api}/endpoints") as r:
        assert r.status == 200
        doc = json.loads(await r.text())
    return list(doc["data"]["endpoints"])


async def test_model_page_in_chromium(measured: Page, tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    problems: list[str] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM)
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on(
                "console",
                lambda m: (
                    problems.append(f"console {m.type}: {m.text}")
                    if m.type in ("error", "warning")
                    else None
                ),
            )
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("dialog", lambda d: problems.append(f"a dialog opened: {d.message}"))
            await page.goto(measured.url)
            await until(page, "document.querySelectorAll('figure.chart[data-drawn]').length === 3")
            headings = await page.locator("h2").all_inner_texts()
            assert headings == [
                f"Providers for {DEMO_MODEL}",
                f"Performance for {DEMO_MODEL}",
                f"Uptime stats for {DEMO_MODEL}",
                "Incidents",
            ]
            eps = await endpoints(measured.api)
            assert len(eps) == 12  # six endpoints, each probed directly and through the front
            body = page.locator("#providers-body tr")
            assert await body.count() == len(eps)
            for i, ep in enumerate(eps):
                row = body.nth(i)
                assert await row.locator("td.provider").inner_text() == ep["provider_name"]
                up = await row.locator('[data-field="uptime_last_30m"]').inner_text()
                assert up == (
                    "–" if ep["uptime_last_30m"] is None else f"{ep['uptime_last_30m']:.1f}%"
                )
                ttft = (ep["latency_last_30m"] or {}).get("p50")
                cell = await row.locator('[data-field="latency_last_30m.p50"]').inner_text()
                assert cell == ("–" if ttft is None else f"{ttft:,.0f} ms")
            for fig in await page.locator("figure.chart").all():
                assert int(await fig.get_attribute("data-drawn") or 0) > 0
                assert await fig.locator("svg path.line").count() > 0
                d = await fig.locator("svg path.line").first.get_attribute("d")
                assert d is not None and "L" in d
            assert await page.locator("#uptime-body svg.bars rect").count() == 12 * (24 + 30)
            turbo = body.filter(has_text="Swiftly/turbo").filter(has_text="openrouter")
            assert "swiftly/turbo · fp8" in await turbo.inner_text()  # from OpenRouter's listing
            # the percentile switch redraws; the live refresh updates the stamp within 10 s
            await page.locator('button[data-pct="p90"]').click()
            assert (
                await page.locator('button[data-pct="p90"]').get_attribute("aria-pressed") == "true"
            )
            before = await page.locator("#updated").inner_text()
            stamp = "document.getElementById('updated').textContent"
            await until(page, f"{stamp} !== {json.dumps(before)}", timeout_s=10.0)
            assert await body.count() == len(eps)
            shot = tmp_path / "model-page.png"
            await page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 50_000
            keep = os.environ.get("PROVMON_SCREENSHOT")
            if keep:
                shutil.copy(shot, keep)
            # without JavaScript: the same tables, the controls hidden, a note where charts go
            plain = await browser.new_page(java_script_enabled=False)
            await plain.goto(measured.url)
            assert await plain.locator("#providers-body tr").count() == len(eps)
            assert await plain.locator("#incidents-body tr").count() >= 1
            assert not await plain.locator("#perf-controls").is_visible()
            assert "need JavaScript" in await plain.locator("#performance").inner_text()
        finally:
            await browser.close()
    assert problems == []
