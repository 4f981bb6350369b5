"""Quality error shares in reports: the table, providers.csv and report.json carry
tool_call_error_pct / structured_error_pct per row, computed from the rollups' verdict counts;
quality failures lower uptime only with `[uptime] quality_counts`."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from datetime import timedelta

import pytest

from monitor.aggregate import Accounting
from monitor.config import parse_config
from monitor.reporting.build import build_model_report
from monitor.reporting.job import accounting
from monitor.reporting.model import report_from_json
from monitor.reporting.periods import parse_week
from monitor.reporting.render import render_csv, render_json, render_markdown
from monitor.results import Outcome, ProbeResult
from monitor.rollup import fold
from tests.factories import result

W47 = parse_week("2026-W47")
AFTER = W47.end + timedelta(days=2)
ACCT = Accounting(frozenset({"server_error", "timeout"}), min_samples=1)
KINDS = {"tools": "tool_call", "json": "structured", "short": "plain"}


def probes() -> list[ProbeResult]:
    out = []
    # tools: 20 ok probes, 5 broken (25 %), plus 2 timeouts (no quality)
    verdicts = ["ok"] * 15 + ["invalid_json"] * 2 + ["unknown_tool", "schema_mismatch"]
    verdicts += ["no_tool_call"]
    for i, q in enumerate(verdicts):
        out.append(result(workload="tools", quality=q, started_at=W47.start + timedelta(hours=i)))
    for i in range(2):
        at = W47.start + timedelta(hours=30 + i)
        out.append(result(workload="tools", outcome=Outcome.TIMEOUT, started_at=at))
    # json: 10 ok probes, 1 broken (10 %)
    for i in range(10):
        q = "no_structured_output" if i == 0 else "ok"
        out.append(result(workload="json", quality=q, started_at=W47.start + timedelta(hours=i)))
    for i in range(4):
        out.append(result(workload="short", started_at=W47.start + timedelta(hours=i)))
    return out


def report(acct: Accounting = ACCT):  # type: ignore[no-untyped-def]
    return build_model_report(
        "acme/model-1", W47, fold(probes()), acct=acct, now=AFTER, kinds=KINDS
    )


def test_rows_carry_their_quality_error_share() -> None:
    rows = {r.workload: r for r in report().rows}
    assert rows["tools"].tool_call_error_pct == pytest.approx(25.0)
    assert rows["tools"].structured_error_pct is None
    assert rows["json"].structured_error_pct == pytest.approx(10.0)
    assert rows["json"].tool_call_error_pct is None
    assert rows["short"].tool_call_error_pct is None
    assert rows["short"].structured_error_pct is None
    # quality failures do not count against uptime by default: 20 ok, 2 timeouts
    assert rows["tools"].uptime_pct == pytest.approx(100 * 20 / 22)
    assert rows["json"].uptime_pct == pytest.approx(100.0)


def test_quality_counts_makes_them_failures() -> None:
    rows = {r.workload: r for r in report(dataclasses.replace(ACCT, quality_counts=True)).rows}
    assert rows["tools"].uptime_pct == pytest.approx(100 * 15 / 22)
    assert rows["json"].uptime_pct == pytest.approx(90.0)
    assert rows["short"].uptime_pct == pytest.approx(100.0)


def test_every_format_carries_the_columns() -> None:
    rep = report()
    by_workload = {r["workload"]: r for r in csv.DictReader(io.StringIO(render_csv(rep)))}
    assert float(by_workload["tools"]["tool_call_error_pct"]) == pytest.approx(25.0)
    assert by_workload["tools"]["structured_error_pct"] == ""
    assert float(by_workload["json"]["structured_error_pct"]) == pytest.approx(10.0)
    data = json.loads(render_json(rep))
    jrows = {r["workload"]: r for r in data["rows"]}
    assert jrows["tools"]["tool_call_error_pct"] == pytest.approx(25.0)
    assert jrows["json"]["structured_error_pct"] == pytest.approx(10.0)
    assert jrows["short"]["tool_call_error_pct"] is None
    again = report_from_json(data)  # a frozen report reads back
    assert {r.workload: r.tool_call_error_pct for r in again.rows}["tools"] == pytest.approx(25.0)
    md = render_markdown(rep, {})
    assert "quality errors %" in md
    assert "25.0" in md


def test_config_switch() -> None:
    doc = {"uptime": {"quality_counts": True}}
    assert accounting(parse_config(doc, {})).quality_counts
    assert not accounting(parse_config({}, {})).quality_counts
    desc = " ".join(dataclasses.replace(ACCT, quality_counts=True).describe())
    assert "structured answer is broken is a failure" in desc
