"""Peak memory of one probe against runaway streams, in a fresh process: the probe keeps counts,
not text, and the byte cap ends the stream (issue: ≤ 150 MB peak RSS)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.hostile import hostile_process

ROOT = Path(__file__).resolve().parent.parent
PEAK_RSS_MB = 150

PROBE = """
import asyncio, sys
from monitor.config import parse_config
from monitor.probing.client import Prober
from monitor.probing.session import probe_session

def peak_mb():
    # VmHWM: this process's own peak (ru_maxrss can carry the parent's across exec on Linux)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024

async def main(base_url):
    doc = {
        "timeouts": {"connect_s": 5, "first_token_s": 20, "idle_s": 20, "total_s": 20},
        "workloads": {"w": {"input_tokens": 20, "max_tokens": 20}},
        "targets": [{"route": "direct", "model": "m", "provider": "p", "base_url": base_url,
                     "workloads": ["w"]}],
    }
    cfg = parse_config(doc, {})
    async with probe_session() as session:
        prober = Prober(session, timeouts=cfg.timeouts, vantage="t", settings=cfg.probe)
        before = peak_mb()
        r = await prober.probe(cfg.targets[0], cfg.workloads["w"])
    print(r.outcome.value, r.error_kind, before, peak_mb())

asyncio.run(main(sys.argv[1]))
"""


@pytest.mark.parametrize("name", ["big-chunks", "endless", "gzip-bomb"])
def test_peak_rss_of_one_probe_against_a_runaway_stream(name: str) -> None:
    with hostile_process() as url:
        out = subprocess.run(
            [sys.executable, "-c", PROBE, f"{url}/{name}/v1"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
            timeout=60,
            check=True,
        ).stdout.split()
    outcome, kind, before_mb, peak_mb = out[0], out[1], int(out[2]), int(out[3])
    assert (outcome, kind) in (("stream_error", "stream.too_large"), ("timeout", "timeout.total"))
    assert peak_mb <= PEAK_RSS_MB, (before_mb, peak_mb)
