"""deploy/: the Prometheus config and rules pass promtool (and the rules' own unit tests), the
dashboard is well formed, compose names files that exist, the systemd unit verifies, the
example config is valid."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from monitor.config import load_config
from tests.metrics_helpers import DEPLOY, dashboard_queries, promtool


def test_prometheus_config_and_rules_pass_promtool() -> None:
    config = promtool("check", "config", str(DEPLOY / "prometheus.yml"))
    assert config.returncode == 0, config.stdout + config.stderr
    rules = promtool("check", "rules", str(DEPLOY / "alerts.yml"))
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert "10 rules found" in rules.stdout


def test_the_rules_fire_when_they_should() -> None:
    """deploy/alerts.test.yml: a target down 5 minutes pages, not before; the database, the
    spill and a silent monitor."""
    result = promtool("test", "rules", str(DEPLOY / "alerts.test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_dashboard_is_well_formed() -> None:
    doc = json.loads((DEPLOY / "grafana" / "provmon.json").read_text())
    assert doc["uid"] == "provmon"
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    titles = " ".join(p["title"] for p in doc["panels"])
    for words in ("Uptime", "Time to first token", "Decode speed", "State", "outcomes", "Cost"):
        assert words in titles
    queries = dashboard_queries()
    assert any("histogram_quantile(0.9" in q and "ttft_seconds_bucket" in q for q in queries)
    variables = {v["name"] for v in doc["templating"]["list"]}
    assert variables == {"datasource", "model"}
    for panel in doc["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert panel["targets"], panel["title"]


def test_compose_mounts_files_that_exist() -> None:
    doc = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert set(doc["services"]) == {"postgres", "simulator", "provmon", "prometheus", "grafana"}
    for name, service in doc["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source}"
        build = service.get("build")
        if build:
            assert (DEPLOY / build["context"] / build["dockerfile"]).exists()
    provmon = doc["services"]["provmon"]
    assert provmon["environment"]["PROVMON_CONFIG"] == "/etc/provmon/provmon.toml"
    assert all(
        p.startswith("127.0.0.1:") for s in doc["services"].values() for p in s.get("ports", [])
    )


def test_the_example_config_is_valid() -> None:
    url = "postgresql+asyncpg://provmon:provmon@postgres:5432/provmon"
    cfg = load_config(DEPLOY / "provmon.toml", {"PROVMON_DATABASE_URL": url})
    assert cfg.metrics is not None and cfg.metrics.address == ("0.0.0.0", 9464)
    assert cfg.database_url.reveal() == url
    scrape = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    assert scrape["scrape_configs"][0]["static_configs"][0]["targets"] == ["provmon:9464"]


def test_the_systemd_unit_verifies(tmp_path: Path) -> None:
    text = (DEPLOY / "provmon.service").read_text()
    for line in ("Type=notify", "WatchdogSec=", "DynamicUser=yes", "ProtectSystem=strict"):
        assert line in text
    assert "NoNewPrivileges=yes" in text and "StateDirectory=provmon" in text
    assert "Environment=PROVMON_CONFIG=/etc/provmon/provmon.toml" in text
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not installed")
    # The unit as installed, with provmon where this machine has it.
    unit = tmp_path / "provmon.service"
    unit.write_text(text.replace("/usr/local/bin/provmon", f"{sys.executable} -m monitor"))
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    problems = [
        line for line in (result.stdout + result.stderr).splitlines() if "provmon.service" in line
    ]
    assert problems == [], problems
