"""The web process (`provmon run`'s sidecar) and the [web] config: it serves from a child
process, says why when it cannot listen, stops on stop() and when its parent is killed."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import aiohttp
import pytest

from monitor.clock import utc_now
from monitor.config import parse_config
from monitor.errors import ConfigError, UsageError
from monitor.storage.database import make_engine, upgrade
from monitor.web.process import WebProcess
from monitor.web.security import Listen
from tests.webdata import MODEL, write_config, write_probes


def test_web_config_guards_other_addresses() -> None:
    with pytest.raises(ConfigError, match=r"web: 0\.0\.0\.0 is not a loopback address"):
        parse_config({"web": {"listen": "0.0.0.0:8787"}}, {})
    with pytest.raises(ConfigError, match=r"web: 'here' is not HOST:PORT"):
        parse_config({"web": {"listen": "here"}}, {})
    with pytest.raises(ConfigError, match=r"web.auth_token_env: environment variable WEB_T"):
        parse_config({"web": {"listen": "0.0.0.0:1", "auth_token_env": "WEB_T"}}, {})
    cfg = parse_config({"web": {"listen": "0.0.0.0:1", "auth_token_env": "WEB_T"}}, {"WEB_T": "x1"})
    assert cfg.web_token is not None and cfg.web_token.reveal() == "x1"
    assert "x1" not in repr(cfg)
    anonymous = parse_config({"web": {"listen": "[::]:1", "allow_anonymous": True}}, {})
    assert anonymous.web_token is None
    assert parse_config({}, {}).web.listen is None


async def test_serves_from_a_child_process_and_stops(tmp_path: Path) -> None:
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'web.db'}"
    _, cfg = write_config(tmp_path, db_url)
    engine = make_engine(db_url)
    await upgrade(engine)
    await write_probes(engine, cfg, utc_now())
    await engine.dispose()
    web = WebProcess(cfg, Listen("127.0.0.1", 0))
    await web.start()
    try:
        assert web.url is not None and web._proc is not None
        assert web._proc.pid != os.getpid()
        async with aiohttp.ClientSession(trust_env=False) as session:
            async with session.get(f"{web.url}/models/{MODEL}") as resp:
                assert resp.status == 200
                assert f"Providers for {MODEL}" in await resp.text()
            async with session.get(f"{web.url}/readyz") as resp:
                assert resp.status == 200
        proc = web._proc
    finally:
        await web.stop()
    assert not proc.is_alive()
    assert proc.exitcode == 0


async def test_says_why_it_cannot_listen(tmp_path: Path) -> None:
    _, cfg = write_config(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'web.db'}")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        web = WebProcess(cfg, Listen("127.0.0.1", port))
        with pytest.raises(UsageError, match=f"cannot serve on 127.0.0.1:{port}"):
            await web.start()
    assert web._proc is None


def running(pid: int) -> bool:
    """The process exists and is not a zombie (an orphan's exit may wait for a reaper)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def test_ends_when_its_parent_is_killed(tmp_path: Path) -> None:
    _, cfg = write_config(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'web.db'}")
    parent = textwrap.dedent(
        f"""
        import asyncio, json
        from pathlib import Path
        from monitor.config import load_config
        from monitor.web.process import WebProcess
        from monitor.web.security import Listen

        async def main():
            web = WebProcess(load_config(Path({str(tmp_path / "provmon.toml")!r}), {{}}),
                             Listen("127.0.0.1", 0))
            await web.start()
            print(json.dumps({{"pid": web._proc.pid, "url": web.url}}), flush=True)
            await asyncio.sleep(60)

        asyncio.run(main())
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", parent], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        child = json.loads(proc.stdout.readline())
        assert running(child["pid"])
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if not running(child["pid"]):
                break
            time.sleep(0.1)
        else:
            os.kill(child["pid"], signal.SIGKILL)
            raise AssertionError("the web process outlived its killed parent")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
    assert cfg.web.listen is None
