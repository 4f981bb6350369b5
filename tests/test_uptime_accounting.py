"""`[uptime] failure_outcomes` takes any outcome but ok, and a change reaches every count: the
report's uptime, failures and accounting sentences, and `provmon status` windows."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from monitor.clock import utc_now
from monitor.config import Config, parse_config
from monitor.errors import ConfigError
from monitor.reporting.job import accounting, build_reports
from monitor.reporting.periods import span_period
from monitor.results import Outcome, ProbeResult
from monitor.status import target_status
from monitor.storage.reports import rollups_between, status_samples
from monitor.storage.store import Store
from tests.factories import result

# OpenRouter-like: every failure provmon counts, plus the 4xx that are not the caller's.
OPENROUTER_LIKE = [
    "server_error",
    "timeout",
    "connection_error",
    "stream_error",
    "empty_response",
    "client_error",
]


def mix(now_minus: timedelta) -> list[ProbeResult]:
    """80 ok, 10 client errors (a 403), 5 server errors, 5 rate limited, 20 s apart."""
    kinds = (
        [(Outcome.OK, None)] * 80
        + [(Outcome.CLIENT_ERROR, "http.403")] * 10
        + [(Outcome.SERVER_ERROR, "http.502")] * 5
        + [(Outcome.RATE_LIMITED, "http.429")] * 5
    )
    start = utc_now() - now_minus
    return [
        result(started_at=start + timedelta(seconds=20 * i), outcome=o, error_kind=k)
        for i, (o, k) in enumerate(kinds)
    ]


def config(tmp_path: Path, failures: list[str] | None = None) -> Config:
    uptime: dict[str, object] = {"min_samples": 1}
    if failures is not None:
        uptime["failure_outcomes"] = failures
    return parse_config({"reports": {"out_dir": str(tmp_path)}, "uptime": uptime}, {})


@pytest.mark.parametrize("outcome", [o.value for o in Outcome if o is not Outcome.OK])
def test_any_outcome_but_ok_may_count_as_a_failure(outcome: str) -> None:
    cfg = parse_config({"uptime": {"failure_outcomes": [outcome]}}, {})
    acct = accounting(cfg)
    assert acct.failure_outcomes == {outcome}
    assert outcome not in acct.excluded_outcomes
    assert "ok" not in acct.excluded_outcomes


@pytest.mark.parametrize(
    ("value", "problem"), [(["ok"], "ok is a success"), (["bogus"], "uptime.failure_outcomes")]
)
def test_ok_and_unknown_outcomes_are_refused(value: list[str], problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"uptime": {"failure_outcomes": value}}, {})
    assert problem in str(caught.value)


async def test_client_errors_as_failures_end_to_end(migrated: AsyncEngine, tmp_path: Path) -> None:
    probes = mix(timedelta(minutes=40))
    await Store(migrated).insert_probes([(f"{i:032x}", p) for i, p in enumerate(probes)])
    now = utc_now()
    period = span_period(now - timedelta(hours=1), now)
    counted = {}
    for name, failures in (("default", None), ("openrouter", OPENROUTER_LIKE)):
        cfg = config(tmp_path, failures)
        (report,) = await build_reports(migrated, cfg, period, now)
        (row,) = report.rows
        counted[name] = (row.uptime_pct, row.failures, report.accounting)
        recent = await status_samples(migrated, now - timedelta(minutes=30), now)
        day = await rollups_between(migrated, now - timedelta(days=1), now)
        (s,) = target_status([probes[0].target_key], recent, day, {}, now, accounting(cfg))
        in_30m = [p for p in probes if p.started_at >= now - timedelta(minutes=30)]
        ok = sum(p.outcome is Outcome.OK for p in in_30m)
        bad = sum(p.outcome.value in (failures or ["server_error"]) for p in in_30m)
        assert s.windows["30m"].uptime_pct == pytest.approx(100 * ok / (ok + bad))
        assert s.windows["1d"].uptime_pct == pytest.approx(row.uptime_pct)
    uptime, failures_n, lines = counted["default"]
    assert (uptime, failures_n) == (pytest.approx(100 * 80 / 85), 5)
    assert "rate_limited, client_error, monitor_error probes are excluded (shown apart)" in lines
    uptime, failures_n, lines = counted["openrouter"]
    assert (uptime, failures_n) == (pytest.approx(100 * 80 / 95), 15)
    assert any("client_error" in line and "failures are" in line for line in lines)
    assert "rate_limited, monitor_error probes are excluded (shown apart)" in lines
