"""The connectivity check: a failing probe is blamed on the monitor only by a check that ran
after the probe started, and the failing probes of one round share one check."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from monitor.alerts.connectivity import ConnectivityCheck
from tests.tcpproxy import TcpProxy


@contextlib.asynccontextmanager
async def check_target() -> AsyncIterator[tuple[str, list[float], TcpProxy]]:
    """A URL that answers 200 and records when, behind a proxy the test can cut."""
    hits: list[float] = []

    async def handle(_request: web.Request) -> web.Response:
        hits.append(time.monotonic())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/ping", handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    proxy = TcpProxy("127.0.0.1", runner.addresses[0][1])
    await proxy.start()
    try:
        yield f"http://127.0.0.1:{proxy.port}/ping", hits, proxy
    finally:
        await proxy.cut()
        await runner.cleanup()


async def test_a_check_from_before_the_failure_is_not_reused(
    session: aiohttp.ClientSession,
) -> None:
    changes: list[bool] = []
    async with check_target() as (url, hits, proxy):
        check = ConnectivityCheck(
            session, url, timeout_s=2, fresh_s=30, on_change=lambda ok, _: changes.append(ok)
        )
        assert await check.check() is True and len(hits) == 1
        before = time.monotonic()
        assert await check.reachable(before - 1) is True  # it ran after that probe started
        assert len(hits) == 1
        await proxy.cut()  # the network goes; a probe started now fails
        probe_started = time.monotonic()
        # Fresh (well within fresh_s), but older than the failure: asked again.
        assert await check.reachable(probe_started) is False
        assert changes == [False]
        await proxy.restore()
        assert await check.reachable(time.monotonic()) is True
        assert changes == [False, True]
        assert len(hits) == 2


async def test_the_failing_probes_of_a_round_share_one_check(
    session: aiohttp.ClientSession,
) -> None:
    async with check_target() as (url, hits, _proxy):
        check = ConnectivityCheck(session, url, timeout_s=2, fresh_s=30)
        started = time.monotonic()
        answers = await asyncio.gather(*(check.reachable(started) for _ in range(20)))
        assert answers == [True] * 20
        assert len(hits) == 1
        assert await check.reachable(started) is True  # that check started after them
        assert len(hits) == 1
        # Without `since`: a result within fresh_s is enough.
        assert await check.reachable() is True and len(hits) == 1


async def test_a_result_older_than_fresh_s_is_not_reused(session: aiohttp.ClientSession) -> None:
    async with check_target() as (url, hits, _proxy):
        check = ConnectivityCheck(session, url, timeout_s=2, fresh_s=0.2)
        long_ago = time.monotonic() - 60  # a probe that hung for a minute, then failed
        assert await check.reachable(long_ago) is True and len(hits) == 1
        await asyncio.sleep(0.3)
        assert await check.reachable(long_ago) is True and len(hits) == 2
