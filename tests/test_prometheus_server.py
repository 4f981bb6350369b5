"""A real Prometheus (Debian's package) scraping a running `provmon run` against the simulator:
the series have the labels the issue lists, the probe counters equal the probes stored in the
database, the TTFT histogram counts equal the ok probes, and the example rules evaluate."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.simulator import Simulator
from tests.metrics_helpers import DEPLOY, get, running, sim_config, tool
from tests.test_metrics import db_counts

pytestmark = [pytest.mark.slow, pytest.mark.subprocess, pytest.mark.timeout(150)]

LABELS = {"model", "provider", "route", "vantage", "workload"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def prometheus(tmp_path: Path, target: str) -> Iterator[str]:
    """Prometheus on loopback scraping `target` twice a second, with the example rules."""
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        json.dumps(
            {
                "global": {"scrape_interval": "500ms", "evaluation_interval": "1s"},
                "rule_files": [str(DEPLOY / "alerts.yml")],
                "scrape_configs": [
                    {"job_name": "provmon", "static_configs": [{"targets": [target]}]}
                ],
            }
        )
    )
    binary = tool("prometheus")  # skips before anything is opened
    log = (tmp_path / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError):
                if get(f"{base}/-/ready", 2)[0] == 200:
                    break
            assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()
            assert time.monotonic() < deadline, "Prometheus never got ready"
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


def query(base: str, promql: str) -> list[dict[str, object]]:
    status, body = get(f"{base}/api/v1/query?query={urllib.parse.quote(promql)}")
    assert status == 200, body
    doc = json.loads(body)
    assert doc["status"] == "success", doc
    result: list[dict[str, object]] = doc["data"]["result"]
    return result


def by_labels(result: list[dict[str, object]], *names: str) -> Counter[tuple[str, ...]]:
    out: Counter[tuple[str, ...]] = Counter()
    for series in result:
        metric = series["metric"]
        value = series["value"]
        assert isinstance(metric, dict) and isinstance(value, list)
        out[tuple(metric[n] for n in names)] += int(float(value[1]))
    return out


def test_prometheus_scrapes_a_running_daemon(threaded_sim: Simulator, tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    providers = ("plain", "http-503")
    cfg = sim_config(
        threaded_sim,
        f"sqlite+aiosqlite:///{db}",
        tmp_path,
        providers,
        interval_s={"plain": 6.0, "http-503": 7.0},
    )
    with running(cfg) as daemon:
        target = daemon.metrics_url().removeprefix("http://")
        with prometheus(tmp_path, target) as prom:
            deadline = time.monotonic() + 60
            while len(query(prom, "provmon_probes_total")) < 2:
                assert time.monotonic() < deadline, "no probe series in Prometheus"
                time.sleep(0.5)
            for series in query(prom, "provmon_probes_total"):
                metric = series["metric"]
                assert isinstance(metric, dict)
                assert set(metric) >= LABELS | {"outcome", "job", "instance"}
                assert metric["vantage"] == "test-vantage"
            assert query(prom, 'up{job="provmon"}')[0]["value"][1] == "1"  # type: ignore[index]
            # When Prometheus shows the same counts twice, 1.5 s (three scrapes) apart, and the
            # database does too, they are one moment's: they must be equal.
            for _ in range(40):
                before = by_labels(query(prom, "provmon_probes_total"), "provider", "outcome")
                ok_before = by_labels(query(prom, "provmon_probe_ttft_seconds_count"), "provider")
                stored, stored_ok = db_counts(db)
                time.sleep(1.5)
                after = by_labels(query(prom, "provmon_probes_total"), "provider", "outcome")
                if before == after and db_counts(db) == (stored, stored_ok):
                    break
            else:
                pytest.fail("no quiet moment in 40 tries")
            assert before == stored
            assert ok_before == Counter({(p,): n for p, n in stored_ok.items()})
            assert before[("http-503", "server_error")] > 0
            # The example rules load and evaluate against real series without errors.
            _, body = get(f"{prom}/api/v1/rules")
            groups = json.loads(body)["data"]["groups"]
            rules = [r for g in groups for r in g["rules"]]
            assert len(rules) == 10
            assert all(r["health"] in ("ok", "unknown") for r in rules), rules
            deadline = time.monotonic() + 30
            while not all(r["health"] == "ok" for r in rules):
                assert time.monotonic() < deadline, rules
                time.sleep(0.5)
                rules = [
                    r
                    for g in json.loads(get(f"{prom}/api/v1/rules")[1])["data"]["groups"]
                    for r in g["rules"]
                ]
            assert query(
                prom, "histogram_quantile(0.5, rate(provmon_probe_ttft_seconds_bucket[1m]))"
            )
        assert daemon.stop() == 0
