"""The live pages from the command line, run as a user runs them: `provmon serve`, `provmon run`
with `[web] listen` (the pages from a process of their own), `provmon demo --keep-serving`."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import IO, Any

import pytest

from monitor.cli import main
from monitor.simulator import DEMO_MODEL, Simulator
from tests.conftest import SIM_THREAD_KEY
from tests.factories import TINY, config_doc, direct_target, toml_text, write_config

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]
URL = re.compile(r"(http://127\.0\.0\.1:\d+)")
PROVMON = [sys.executable, "-m", "monitor"]


def env(**extra: str) -> dict[str, str]:
    keep = {k: os.environ[k] for k in ("PATH", "PYTHONPATH", "HOME") if k in os.environ}
    return keep | extra


def fetch(url: str) -> tuple[int, str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=10) as resp:
        return resp.status, resp.read().decode()


def wait_for_line(stream: IO[str], pattern: re.Pattern[str], timeout_s: float) -> re.Match[str]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            raise AssertionError("the output ended before the expected line")
        found = pattern.search(line)
        if found:
            return found
    raise AssertionError(f"no line matching {pattern.pattern} within {timeout_s:g} s")


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> int:
    proc.send_signal(sig)
    try:
        return proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_serve(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    cfg = write_config(tmp_path / "provmon.toml", config_doc(database=db))
    subprocess.run([*PROVMON, "db", "upgrade", "-c", str(cfg)], check=True, env=env(), timeout=60)
    command = [*PROVMON, "serve", "-c", str(cfg), "--listen", "127.0.0.1:0"]
    with subprocess.Popen(command, env=env(), stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        url = wait_for_line(proc.stdout, URL, 30).group(1)
        status, body = fetch(f"{url}/")
        assert status == 200 and "Monitored models" in body
        assert json.loads(fetch(f"{url}/readyz")[1])["status"] == "ready"
        assert stop(proc) == 0


def test_serve_refuses_another_address_without_a_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path / "provmon.toml", config_doc(database=tmp_path / "s.db"))
    assert main(["serve", "-c", str(cfg), "--listen", "0.0.0.0:0"]) == 2
    err = capsys.readouterr().err
    assert "0.0.0.0 is not a loopback address" in err and "auth_token_env" in err


def test_run_serves_the_pages_from_its_own_process(threaded_sim: Simulator, tmp_path: Path) -> None:
    targets = [
        direct_target(threaded_sim.direct_base_url(p), p, key_env="K", workloads=["tiny"])
        for p in ("plain", "comments")
    ]
    doc: dict[str, Any] = config_doc(
        targets,
        database=tmp_path / "r.db",
        spill=tmp_path / "spill.jsonl",
        workloads={"tiny": TINY},
        schedule={"interval_s": 1, "jitter_s": 0.05, "drain_s": 5},
        web={"listen": "127.0.0.1:0"},
    )
    cfg = tmp_path / "provmon.toml"
    cfg.write_text(toml_text(doc), encoding="utf-8")
    run_env = env(K=SIM_THREAD_KEY)
    subprocess.run([*PROVMON, "db", "upgrade", "-c", str(cfg)], check=True, env=run_env)
    command = [*PROVMON, "run", "-c", str(cfg)]
    with subprocess.Popen(command, env=run_env, stderr=subprocess.PIPE, text=True) as proc:
        assert proc.stderr is not None
        url = wait_for_line(proc.stderr, re.compile(r"web: serving (http://\S+)"), 60).group(1)
        health = json.loads(fetch(f"{url}/healthz")[1])
        assert health["pid"] != proc.pid  # not in the probe loop's process
        deadline = time.monotonic() + 20
        while "plain" not in fetch(f"{url}/models/{DEMO_MODEL}")[1]:
            assert time.monotonic() < deadline, "no probe on the page"
            time.sleep(0.5)
        assert stop(proc) == 0
    with pytest.raises(ProcessLookupError):
        os.kill(health["pid"], 0)  # the web process went with it


def test_demo_keeps_serving(tmp_path: Path) -> None:
    command = [*PROVMON, "demo", "--duration", "4", "--interval", "1", "--dir", str(tmp_path)]
    command += ["--listen", "127.0.0.1:0", "--keep-serving"]
    with subprocess.Popen(command, env=env(), stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        page = wait_for_line(proc.stdout, re.compile(r"live page: (\S+)"), 60).group(1)
        wait_for_line(proc.stdout, re.compile(r"The live page stays up"), 120)
        status, body = fetch(page)
        assert status == 200 and f"Providers for {DEMO_MODEL}" in body and "Flaky" in body
        assert stop(proc, signal.SIGINT) == 0
