"""Helpers for the metrics tests: a running `provmon run`, scraping, promtool, the text format."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from monitor.simulator import DEMO_MODEL, Simulator
from tests.conftest import IN_CI, SIM_THREAD_KEY

RUN = [sys.executable, "-m", "monitor"]
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

Labels = frozenset[tuple[str, str]]


def tool(name: str) -> str:
    """The path of a Prometheus tool; in CI it must be there (.ci/run installs it)."""
    path = shutil.which(name)
    if path is None:
        if IN_CI:
            pytest.fail(f"{name} is required in CI (.ci/run installs Debian's prometheus)")
        pytest.skip(f"{name} not installed (apt-get install prometheus)")
    return path


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("promtool"), *args], input=stdin, capture_output=True, text=True, timeout=60
    )


def parse_samples(text: str) -> dict[tuple[str, Labels], float]:
    """The samples of a text-format scrape: (name, labels) -> value."""
    out: dict[tuple[str, Labels], float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m is not None, f"not a sample line: {line!r}"
        labels = frozenset(LABEL.findall(m[3] or ""))
        out[(m[1], labels)] = float(m[4])
    return out


def families(text: str) -> set[str]:
    """Every metric family and sample name a scrape has."""
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            names.add(line.split()[2])
        elif line and not line.startswith("#"):
            names.add(line.split("{", 1)[0].split(" ", 1)[0])
    return names


DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
METRIC_NAME = re.compile(r"\b(provmon_[a-z0-9_]+)")


def dashboard_queries() -> list[str]:
    """Every PromQL expression of deploy/grafana/provmon.json (panels and variables)."""
    doc = json.loads((DEPLOY / "grafana" / "provmon.json").read_text())
    exprs = [t["expr"] for p in doc["panels"] for t in p.get("targets", [])]
    for var in doc["templating"]["list"]:
        query = var.get("query")
        if isinstance(query, dict):
            exprs.append(query["query"])
    return exprs


def rule_queries() -> list[str]:
    import yaml

    doc = yaml.safe_load((DEPLOY / "alerts.yml").read_text())
    return [r["expr"] for g in doc["groups"] for r in g["rules"]]


def missing_metrics(exprs: list[str], scrape: str) -> set[str]:
    """Metric names the expressions use that the scrape has no family or sample for."""
    have = families(scrape)
    missing = set()
    for expr in exprs:
        for name in METRIC_NAME.findall(expr):
            base = re.sub(r"_(bucket|count|sum)$", "", name)
            if name not in have and base not in have:
                missing.add(name)
    return missing


def get(url: str, timeout_s: float = 10.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def sim_config(
    sim: Simulator,
    db_url: str,
    tmp_path: Path,
    providers: tuple[str, ...],
    *,
    metrics: bool = True,
    interval_s: float | dict[str, float] = 1.0,
    extra: str = "",
    tool_calls: tuple[str, ...] = (),
) -> Path:
    """`tool_calls`: providers probed with the `tools` workload (a tool_call quality probe)
    beside `tiny`."""
    targets = "".join(
        f"""
[[targets]]
route = "direct"
model = "{DEMO_MODEL}"
provider = "{p}"
base_url = "{sim.direct_base_url(p)}"
api_key_env = "SIM_KEY"
workloads = {'["tiny", "tools"]' if p in tool_calls else '["tiny"]'}
interval_s = {interval_s.get(p, 1.0) if isinstance(interval_s, dict) else interval_s}
"""
        for p in providers
    )
    text = f"""
vantage = "test-vantage"
{extra}
[timeouts]
first_token_s = 2
idle_s = 1
total_s = 5
[workloads.tiny]
input_tokens = 10
max_tokens = 5
[workloads.tools]
kind = "tool_call"
input_tokens = 10
max_tokens = 100
[uptime]
min_samples = 2
[database]
url = "{db_url}"
spill_path = "{tmp_path / "spill.jsonl"}"
[schedule]
budget_usd_per_day = 5
jitter_s = 0.05
drain_s = 5
status_every_s = 1
{"[metrics]" if metrics else ""}
{'listen = "127.0.0.1:0"' if metrics else ""}
{targets}"""
    path = tmp_path / "provmon.toml"
    path.write_text(text)
    return path


def env(**more: str) -> dict[str, str]:
    base = {"SIM_KEY": SIM_THREAD_KEY, "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    if "PYTHONPATH" in os.environ:
        base["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return base | more


@dataclass
class Daemon:
    proc: subprocess.Popen[str]
    log: Path

    def lines(self) -> list[dict[str, object]]:
        out = []
        for line in self.log.read_text().splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out

    def metrics_url(self, timeout_s: float = 30.0) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for entry in self.lines():
                m = re.search(r"metrics on (http://\S+)/metrics", str(entry.get("message", "")))
                if m:
                    return m[1]
            assert self.proc.poll() is None, self.log.read_text()
            time.sleep(0.1)
        raise AssertionError("the daemon never said where its metrics are")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


@contextlib.contextmanager
def running(
    cfg: Path, *args: str, extra_env: dict[str, str] | None = None, upgrade: bool = True
) -> Iterator[Daemon]:
    """`provmon db upgrade` then `provmon run` (JSON logs to a file); killed on the way out."""
    e = env(**(extra_env or {}))
    if upgrade:
        subprocess.run([*RUN, "db", "upgrade", "-c", str(cfg)], check=True, env=e, timeout=60)
    log = cfg.with_name("run.log")
    with (
        log.open("w") as err,
        subprocess.Popen(
            [*RUN, "--log-format", "json", "run", "-c", str(cfg), *args],
            env=e,
            stderr=err,
            stdout=subprocess.DEVNULL,
            text=True,
        ) as proc,
    ):
        daemon = Daemon(proc, log)
        try:
            yield daemon
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
