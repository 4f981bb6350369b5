"""`provmon simulate` as a user runs it: a separate process that serves until SIGTERM."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import urllib.request

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]


def test_simulate_serves_until_sigterm() -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "monitor", "simulate", "--port", "0", "--scenario", "quirks"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline()
            match = re.search(r"on (http://127\.0\.0\.1:\d+)", first)
            assert match, first
            base = match.group(1)
            with urllib.request.urlopen(f"{base}/api/v1/models", timeout=5) as resp:
                models = json.load(resp)
            assert any(m["id"] == "microsoft/wizardlm-2-8x22b" for m in models["data"])
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
