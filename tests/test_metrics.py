"""The Prometheus endpoint: names, labels and values a scrape has, checked by promtool, and a
real `provmon run` whose counters and histograms agree with the probes in its database."""

from __future__ import annotations

import dataclasses
import io
import sqlite3
import subprocess
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import orjson
import pytest

from monitor.alerts.channels import WebhookChannel
from monitor.alerts.payloads import trial_payload
from monitor.config import parse_config
from monitor.errors import ChannelError, ConfigError
from monitor.exporter.health import NotificationCounts
from monitor.exporter.model import Health, OutcomeWindows, ProbeSample, probe_line
from monitor.exporter.registry import Metrics
from monitor.exporter.server import Readiness, read_updates
from monitor.results import Outcome, ProbeResult
from monitor.simulator import DEMO_MODEL, Simulator
from tests.metrics_helpers import (
    RUN,
    dashboard_queries,
    env,
    families,
    get,
    missing_metrics,
    parse_samples,
    promtool,
    rule_queries,
    running,
    sim_config,
)
from tests.receivers import webhook_receiver

PER_TARGET = {"model", "provider", "route", "vantage", "workload"}


# --- pure parts ------------------------------------------------------------------------------


def test_outcome_windows_count_minutes_and_hours() -> None:
    w = OutcomeWindows()
    now = 1_800_000_000.0  # a multiple of 3600 plus nothing: the start of an hour
    w.add(now - 7200, False)  # two hours ago: only the day sees it
    w.add(now - 600, False)  # ten minutes ago: 30m and the day
    for s in (1, 2, 3):
        w.add(now + s, True)
    assert w.counts(300, now + 10) == (3, 0)
    assert w.counts(1800, now + 10) == (3, 1)
    assert w.counts(86400, now + 10) == (3, 2)
    assert w.ratio(1800, now + 10, min_samples=4) == pytest.approx(0.75)
    assert w.ratio(300, now + 10, min_samples=4) is None  # below the minimum sample
    # An hour later the minute windows are empty; the day still counts all five.
    assert w.counts(300, now + 3600) == (0, 0)
    assert w.counts(86400, now + 3600) == (3, 2)


def test_outcome_windows_forget_old_buckets() -> None:
    w = OutcomeWindows()
    for minute in range(200):
        w.add(minute * 60.0, True)
    assert w.counts(1800, 199 * 60.0) == (31, 0)
    assert len(w._minutes) <= 32
    for hour in range(60):
        w.add(hour * 3600.0 + 1e6, False)
    assert len(w._hours) <= 26


def test_probe_line_round_trip() -> None:
    r = ProbeResult(
        "m/x",
        "P",
        "direct",
        "v",
        "short",
        datetime(2026, 1, 1, tzinfo=UTC),
        Outcome.OK,
        ttft_ms=250.0,
        latency_ms=1000.0,
        decode_tps=40.0,
        e2e_tps=30.0,
        cost_usd=0.001,
        quality="schema_mismatch",
    )
    s = ProbeSample.from_line(probe_line(r))
    assert s.key == ("m/x", "P", "direct", "v", "short")
    assert (s.outcome, s.ttft_s, s.latency_s, s.decode_tps) == ("ok", 0.25, 1.0, 40.0)
    assert s.started_at_s == r.started_at.timestamp()
    assert (s.quality, s.verdict) == ("schema_mismatch", "schema_mismatch")
    plain = ProbeSample.from_line(probe_line(dataclasses.replace(r, quality=None)))
    assert (plain.quality, plain.verdict) == (None, None)


def test_only_ok_probes_have_a_verdict_to_count() -> None:
    at = 1_800_000_000.0
    assert sample("A", "ok", at, quality="ok").verdict == "ok"
    assert sample("A", "ok", at, quality="invalid_json").verdict == "invalid_json"
    assert sample("A", "stream_error", at, quality="invalid_json").verdict is None
    assert sample("A", "ok", at).verdict is None  # a plain workload


def test_the_metrics_process_reads_what_the_daemon_writes() -> None:
    """The lines as `MetricsSidecar.observe` writes them (orjson), read by `read_updates`."""
    m = Metrics("9.9.9", min_samples=1, failure_outcomes=["server_error"])
    at = datetime(2026, 1, 1, tzinfo=UTC)
    base = ProbeResult(DEMO_MODEL, "A", "direct", "v", "tools", at, Outcome.OK, ttft_ms=100.0)
    results = [
        base,
        dataclasses.replace(base, quality="ok"),
        dataclasses.replace(base, quality="ok"),
        dataclasses.replace(base, quality="no_tool_call"),
        dataclasses.replace(base, outcome=Outcome.SERVER_ERROR, ttft_ms=None),
    ]
    stream = io.BytesIO(b"".join(orjson.dumps(probe_line(r)) + b"\n" for r in results))
    read_updates(stream, m, Readiness())
    samples = parse_samples(m.render(None)[0].decode())
    verdicts = {
        dict(labels)["verdict"]: v
        for (name, labels), v in samples.items()
        if name == "provmon_quality_verdicts_total"
    }
    assert verdicts == {"ok": 2, "no_tool_call": 1}
    assert samples[("provmon_probes_total", _labels("tools", outcome="ok"))] == 4


@pytest.mark.parametrize(
    ("listen", "problem"),
    [
        ("9464", "is not HOST:PORT"),
        ("127.0.0.1:99999", "out of range"),
        ("127.0.0.1:", "is not HOST:PORT"),
        ("http://127.0.0.1:9464", "is not HOST:PORT"),
    ],
)
def test_metrics_listen_is_validated(listen: str, problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"metrics": {"listen": listen}}, {})
    assert any(p.startswith("metrics.listen") and problem in p for p in err.value.problems)


def test_metrics_section_is_optional() -> None:
    assert parse_config({}, {}).metrics is None
    cfg = parse_config({"metrics": {"listen": "[::1]:9464"}}, {})
    assert cfg.metrics is not None and cfg.metrics.address == ("::1", 9464)


# --- the registry ------------------------------------------------------------------------------


def sample(
    provider: str, outcome: str, at: float, quality: str | None = None, **values: float | None
) -> ProbeSample:
    return ProbeSample(
        (DEMO_MODEL, provider, "direct", "v1", "short"),
        outcome,
        values.get("ttft_s"),
        values.get("latency_s"),
        values.get("connect_s"),
        values.get("decode_tps"),
        values.get("e2e_tps"),
        values.get("cost_usd"),
        at,
        quality=quality,
    )


def _labels(workload: str, **more: str) -> frozenset[tuple[str, str]]:
    labels = {"model": DEMO_MODEL, "provider": "A", "route": "direct", "vantage": "v"}
    return frozenset((labels | {"workload": workload} | more).items())


def test_a_scrape_passes_promtool_and_has_every_series() -> None:
    m = Metrics("9.9.9", min_samples=2, failure_outcomes=["server_error", "timeout"])
    now = time.time()
    for i in range(3):
        m.probe(sample("A", "ok", now - i, ttft_s=0.2, latency_s=1.0, decode_tps=50, e2e_tps=40))
    m.probe(sample("A", "ok", now, ttft_s=0.3, latency_s=1.2, connect_s=0.002, cost_usd=0.01))
    m.probe(sample("B", "server_error", now))
    m.probe(sample("B", "rate_limited", now))
    for verdict in ("ok", "ok", "invalid_json"):
        m.probe(sample("C", "ok", now, quality=verdict, ttft_s=0.2))
    m.probe(sample("C", "timeout", now, quality="ok"))  # not an ok probe: no verdict counted
    m.alert_states({(DEMO_MODEL, "A", "direct"): "up", (DEMO_MODEL, "B", "direct"): "down"})
    m.database(True)
    m.health(Health(writer_queue_depth=7, budget_remaining_usd=1.5, notifications={"hook": {}}))
    body, content_type = m.render(None)
    text = body.decode()
    assert content_type.startswith("text/plain")
    check = promtool("check", "metrics", stdin=text)
    assert check.returncode == 0, check.stdout + check.stderr
    samples = parse_samples(text)

    def value(name: str, **labels: str) -> float | None:
        for (n, ls), v in samples.items():
            if n == name and set(labels.items()) <= ls:
                return v
        return None

    assert value("provmon_probes_total", provider="A", outcome="ok") == 4
    assert value("provmon_probes_total", provider="B", outcome="server_error") == 1
    assert value("provmon_probe_success", provider="A") == 1
    assert value("provmon_probe_success", provider="B") == 0
    assert value("provmon_probe_ttft_seconds_count", provider="A") == 4
    assert value("provmon_probe_ttft_seconds_bucket", provider="A", le="0.25") == 3
    assert value("provmon_probe_decode_tokens_per_second_count", provider="A") == 3
    assert value("provmon_probe_connect_seconds_count", provider="A") == 1
    assert value("provmon_probe_ttft_seconds_count", provider="B") is None  # ok probes only
    assert value("provmon_probe_cost_usd_total", provider="A") == pytest.approx(0.01)
    assert value("provmon_quality_verdicts_total", provider="C", verdict="ok") == 2
    assert value("provmon_quality_verdicts_total", provider="C", verdict="invalid_json") == 1
    assert value("provmon_quality_verdicts_total", provider="A") is None  # plain workloads
    assert value("provmon_uptime_ratio", provider="A", window="5m") == 1
    # B: one failure, one excluded (rate limited): below min_samples, so absent.
    assert value("provmon_uptime_ratio", provider="B", window="5m") is None
    assert value("provmon_target_state", provider="B", state="down") == 1
    assert value("provmon_target_state", provider="B", state="up") == 0
    assert value("provmon_writer_queue_depth") == 7
    assert value("provmon_budget_remaining_usd") == 1.5
    assert value("provmon_database_up") == 1
    assert value("provmon_build_info", version="9.9.9") == 1
    # Every per-target series carries the five labels.
    for (name, labels), _ in samples.items():
        if name.startswith(("provmon_probe", "provmon_uptime", "provmon_target", "provmon_q")):
            assert {k for k, _ in labels} >= PER_TARGET, name
    # OpenMetrics too, for a Prometheus that asks for it.
    om, om_type = m.render("application/openmetrics-text; version=1.0.0")
    assert om_type.startswith("application/openmetrics-text")
    assert om.decode().endswith("# EOF\n")


# --- a real daemon -----------------------------------------------------------------------------

PROVIDERS = ("plain", "buffered", "http-503", "http-429", "empty")
# Intervals that drift against each other, so quiet moments between probes come and go.
INTERVALS = {"plain": 3.0, "buffered": 3.3, "http-503": 1.3, "http-429": 3.7, "empty": 4.1}


def processes_with(token: str) -> list[int]:
    """Processes whose environment carries `token` (the daemon's and its children's)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if f"PROVMON_TEST_TOKEN={token}".encode() in (proc / "environ").read_bytes():
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


def db_counts(db: Path) -> tuple[Counter[tuple[str, str]], Counter[str]]:
    """Probes in the database per (provider, outcome), and ok probes per provider."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "select t.provider, p.outcome, count(*) from probes p "
            "join targets t on t.id = p.target_id group by t.provider, p.outcome"
        ).fetchall()
    by_outcome = Counter({(p, o): n for p, o, n in rows})
    ok = Counter({p: n for p, o, n in rows if o == "ok"})
    return by_outcome, ok


def db_verdicts(db: Path) -> Counter[tuple[str, str, str]]:
    """Quality verdicts of ok probes in the database per (provider, workload, verdict)."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "select t.provider, p.workload, p.quality, count(*) from probes p "
            "join targets t on t.id = p.target_id where p.outcome = 'ok' "
            "and p.quality is not null group by t.provider, p.workload, p.quality"
        ).fetchall()
    return Counter({(p, w, q): n for p, w, q, n in rows})


Counts = tuple[Counter[tuple[str, str]], Counter[str], Counter[tuple[str, str, str]]]


def scraped_counts(text: str) -> Counts:
    """Probes per (provider, outcome), TTFT counts per provider, quality verdicts per
    (provider, workload, verdict)."""
    probes: Counter[tuple[str, str]] = Counter()
    ttft: Counter[str] = Counter()
    verdicts: Counter[tuple[str, str, str]] = Counter()
    for (name, labels), v in parse_samples(text).items():
        ls = dict(labels)
        if name == "provmon_probes_total":
            probes[(ls["provider"], ls["outcome"])] += int(v)
        elif name == "provmon_probe_ttft_seconds_count":
            ttft[ls["provider"]] += int(v)
        elif name == "provmon_quality_verdicts_total":
            verdicts[(ls["provider"], ls["workload"], ls["verdict"])] += int(v)
    return probes, ttft, verdicts


@pytest.mark.timeout(120)
@pytest.mark.slow
@pytest.mark.subprocess
def test_a_running_daemon_counts_what_it_stores(threaded_sim: Simulator, tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    url = f"sqlite+aiosqlite:///{db}"
    cfg = sim_config(
        threaded_sim, url, tmp_path, PROVIDERS, interval_s=INTERVALS, tool_calls=("plain",)
    )
    token = uuid.uuid4().hex
    with running(cfg, extra_env={"PROVMON_TEST_TOKEN": token}) as daemon:
        base = daemon.metrics_url()
        assert get(f"{base}/healthz")[0] == 200
        deadline = time.monotonic() + 20
        while True:  # until the 503 target is DOWN, every target has probes, and a verdict
            _, text = get(f"{base}/metrics")
            probes, _, verdicts = scraped_counts(text)
            down = 'provider="http-503",route="direct",state="down"'
            have = all(any(p == k for k, _ in probes) for p in PROVIDERS) and bool(verdicts)
            if have and f"{down}" in text:
                line = next(x for x in text.splitlines() if down in x)
                if line.endswith(" 1.0"):
                    break
            assert time.monotonic() < deadline, text
            time.sleep(0.3)
        check = promtool("check", "metrics", stdin=text)
        assert check.returncode == 0, check.stdout + check.stderr
        assert get(f"{base}/readyz") == (200, "ready\n")
        # The dashboard and the example rules ask only for metrics a real scrape has.
        assert dashboard_queries() and rule_queries()
        assert missing_metrics(dashboard_queries() + rule_queries(), text) == set()
        for name in (
            "provmon_budget_remaining_usd",
            "provmon_uptime_ratio",
            "provmon_spill_records",
        ):
            assert name in families(text)
        # Counters against the database: a scrape, the writer's flush, the database, and a
        # second scrape; when no probe finished in between, the database holds exactly them
        # (the database is read twice: equal reads mean the writer was not behind).
        for _ in range(60):
            _, before = get(f"{base}/metrics")
            time.sleep(0.5)
            stored = (*db_counts(db), db_verdicts(db))
            _, after = get(f"{base}/metrics")
            if scraped_counts(before) == scraped_counts(after) and db_counts(db) == stored[:2]:
                break
        else:
            pytest.fail("no quiet moment between two scrapes in 60 tries")
        probes, ttft_counts, verdicts = scraped_counts(before)
        assert probes == stored[0]
        assert ttft_counts == stored[1]  # histogram counts = ok probes
        assert verdicts == stored[2]  # the quality verdicts of ok tool-call probes
        assert verdicts[("plain", "tools", "ok")] > 0
        assert {w for _, w, _ in verdicts} == {"tools"}  # none for the plain workload
        assert probes[("http-429", "rate_limited")] > 0
        connects = [
            v
            for (name, labels), v in parse_samples(before).items()
            if name == "provmon_probe_connect_seconds_count" and ("provider", "plain") in labels
        ]
        assert connects and connects[0] > 0  # the connection phases are measured
        assert probes[("empty", "empty_response")] > 0
        # Not migrated any more: /readyz says so, and the database is reported down.
        with sqlite3.connect(db) as conn:
            conn.execute("delete from alembic_version")
        deadline = time.monotonic() + 15
        while (status := get(f"{base}/readyz"))[0] != 503:
            assert time.monotonic() < deadline, status
            time.sleep(0.2)
        assert "provmon db upgrade" in status[1]
        assert "provmon_database_up 0.0" in get(f"{base}/metrics")[1]
        assert daemon.stop() == 0
    assert processes_with(token) == []  # the metrics process ended with the daemon


@pytest.mark.slow
@pytest.mark.subprocess
def test_metrics_listen_problems_are_one_line(threaded_sim: Simulator, tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    cfg = sim_config(threaded_sim, f"sqlite+aiosqlite:///{db}", tmp_path, ("plain",))
    bad = subprocess.run(
        [*RUN, "run", "-c", str(cfg), "--metrics-listen", "localhost:70000"],
        env=env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode == 2
    assert "out of range" in bad.stderr
    with running(cfg) as first:
        taken = first.metrics_url().rsplit(":", 1)[1]
        second = subprocess.run(
            [*RUN, "run", "-c", str(cfg), "--metrics-listen", f"127.0.0.1:{taken}"],
            env=env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1, second.stderr
        assert "metrics: cannot listen on 127.0.0.1" in second.stderr
        assert "Traceback" not in second.stderr
        assert first.stop() == 0


@pytest.mark.slow
@pytest.mark.subprocess
def test_provmon_config_names_the_config(threaded_sim: Simulator, tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    cfg = sim_config(threaded_sim, f"sqlite+aiosqlite:///{db}", tmp_path, ("plain",))
    subprocess.run([*RUN, "db", "upgrade", "-c", str(cfg)], check=True, env=env(), timeout=60)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    ok = subprocess.run(
        [*RUN, "check"],
        env=env(PROVMON_CONFIG=str(cfg)),
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    assert str(cfg) in ok.stdout
    # -c wins over the environment.
    other = tmp_path / "missing.toml"
    given = subprocess.run(
        [*RUN, "check", "-c", str(other)],
        env=env(PROVMON_CONFIG=str(cfg)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert given.returncode == 2 and str(other) in given.stderr


async def test_notifications_are_counted_per_channel_and_result(
    session: aiohttp.ClientSession,
) -> None:
    async with webhook_receiver() as rx:
        rx.fail = 1
        counts = NotificationCounts()
        wrapped = counts.wrap({"hook": WebhookChannel("hook", session, rx.url, timeout_s=5)})
        assert counts.snapshot() == {"hook": {"sent": 0, "failed": 0}}
        payload = trial_payload("hook", datetime(2026, 1, 1, tzinfo=UTC), "v")
        with pytest.raises(ChannelError):
            await wrapped["hook"].send(payload)  # the receiver answers 503 once
        await wrapped["hook"].send(payload)
        assert counts.snapshot() == {"hook": {"sent": 1, "failed": 1}}
        assert len(rx.deliveries) == 1
