"""Output never stalls measurements: `provmon probe --json` into a pipe nobody reads for 10 s
records no false timeout; the timeout flags bound an ad-hoc probe."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.output import LineWriter
from monitor.simulator import DEMO_MODEL, Simulator
from tests.conftest import SIM_THREAD_KEY

ROOT = Path(__file__).resolve().parent.parent
PROBES = 120


def test_json_output_into_a_pipe_nobody_reads_records_no_false_timeout(
    threaded_sim: Simulator, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SIM_KEY": SIM_THREAD_KEY,
    }
    cmd = [
        sys.executable,
        "-m",
        "monitor",
        "probe",
        "--base-url",
        threaded_sim.direct_base_url("plain"),
        "--model",
        DEMO_MODEL,
        "--api-key-env",
        "SIM_KEY",
        "--first-token-timeout",
        "2",
        "--idle-timeout",
        "0.5",
        "--timeout",
        "5",
        "--count",
        str(PROBES),
        "--concurrency",
        "60",
        "--json",
    ]
    with subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=tmp_path
    ) as child:
        # Nobody reads: after ~64 KiB the pipe is full and every write blocks.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            served = [t for t in threaded_sim.farm.truth if t.provider == "plain"]
            if len(served) >= PROBES and all(t.closed_by for t in served):
                break
            time.sleep(0.2)
        served_while_blocked = len([t for t in threaded_sim.farm.truth if t.closed_by])
        assert child.stdout is not None
        out = child.stdout.read()
        assert child.wait(30) == 0, out[-500:]
    results = [json.loads(line) for line in out.decode().splitlines()]
    assert len(results) == PROBES
    assert served_while_blocked == PROBES  # the probes ran on while output waited
    assert len(out) > 65536  # more than a pipe holds: writes did block
    assert [r["outcome"] for r in results] == ["ok"] * PROBES
    assert all(r["ttft_ms"] < 1000 for r in results)


def test_line_writer_keeps_order_and_never_blocks_the_caller() -> None:
    r, w = os.pipe()
    with os.fdopen(w, "w") as stream:
        writer = LineWriter(stream).start()
        start = time.monotonic()
        for i in range(20_000):  # far more than a pipe holds
            writer.write(f"line {i}")
        assert time.monotonic() - start < 1.0
        chunks: list[bytes] = []

        def drain() -> None:
            while data := os.read(r, 65536):
                chunks.append(data)

        reader = threading.Thread(target=drain)
        reader.start()
        writer.close()
    reader.join(10)
    os.close(r)
    lines = b"".join(chunks).decode().splitlines()
    assert lines == [f"line {i}" for i in range(20_000)]


def test_timeout_flags_bound_a_hanging_provider(
    threaded_sim: Simulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # no provmon.toml: the ad-hoc target alone
    monkeypatch.setenv("SIM_KEY_FLAGS", SIM_THREAD_KEY)
    start = time.monotonic()
    code = main(
        [
            "probe",
            "--base-url",
            threaded_sim.direct_base_url("hang"),
            "--model",
            DEMO_MODEL,
            "--api-key-env",
            "SIM_KEY_FLAGS",
            "--timeout",
            "1",
            "--json",
        ]
    )
    elapsed = time.monotonic() - start
    assert code == 1
    [line] = capsys.readouterr().out.splitlines()
    r = json.loads(line)
    assert (r["outcome"], r["error_kind"]) == ("timeout", "timeout.total")
    assert elapsed < 3.0
    flags = ["--first-token-timeout", "9", "--timeout", "2"]
    bad = main(["probe", "--base-url", "http://x/v1", "--model", "m", *flags])
    assert bad == 2
