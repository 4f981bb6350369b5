"""Everything provmon prints for a person at a terminal: tables, status lines, report and demo
blocks. One number format for a missing value (`dash`) and one for durations (`duration_text`).
Pure: commands pass in what to show and write the text where it belongs."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from monitor.aggregate import DEFAULT_ACCOUNTING, uptime_pct
from monitor.alert_model import Incident
from monitor.alerts.payloads import kinds_text
from monitor.config import Config
from monitor.reporting.model import ModelReport
from monitor.results import Outcome, ProbeResult
from monitor.rollup import Rollup
from monitor.stats import summarize
from monitor.status import TargetStatus

MISSING = "-"


def dash(value: float | None, spec: str = ".0f") -> str:
    """A number as `spec`, or "-" when there is none."""
    return MISSING if value is None else format(value, spec)


def duration_text(seconds: float) -> str:
    """90s, 2m05s, 2h05m: short, and sortable by eye within a column."""
    s = round(seconds)
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def timestamp_text(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%d %H:%M:%S")


def render(headers: Sequence[str], rows: Iterable[Sequence[str]], text_columns: int = 1) -> str:
    """The first `text_columns` columns left-aligned, numbers right-aligned."""
    table = [list(headers), *[list(r) for r in rows]]
    widths = [max(len(r[i]) for r in table) for i in range(len(headers))]
    lines = []
    for row in table:
        cells = [
            c.ljust(w) if i < text_columns or not _numeric(c) else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _numeric(cell: str) -> bool:
    return bool(cell) and (cell[0].isdigit() or cell == MISSING or cell[0] in "$.")


# --- probes (`provmon probe`) ----------------------------------------------------------------

PROBE_HEADERS = (
    "provider",
    "route",
    "workload",
    "outcome",
    "error_kind",
    "ttft_ms",
    "latency_ms",
    "tokens",
    "decode_tps",
    "e2e_tps",
)


def probe_row(r: ProbeResult) -> list[str]:
    return [
        r.provider,
        r.route,
        r.workload,
        r.outcome.value,
        r.error_kind or "",
        dash(r.ttft_ms),
        dash(r.latency_ms),
        dash(r.output_tokens, "d"),
        dash(r.decode_tps, ".1f"),
        dash(r.e2e_tps, ".1f"),
    ]


PROBE_WIDTHS = (18, 10, 9, 16, 22, 8, 10, 6, 10, 8)


def fixed_line(cells: Sequence[str], widths: Sequence[int] = PROBE_WIDTHS) -> str:
    """One row of a table printed as it grows: fixed widths, text cut to fit."""
    out = []
    for i, (cell, w) in enumerate(zip(cells, widths, strict=True)):
        cell = cell if len(cell) <= w else cell[: w - 1] + "…"
        out.append(cell.ljust(w) if i < 5 else cell.rjust(w))
    return "  ".join(out).rstrip()


def probe_header() -> str:
    return fixed_line(PROBE_HEADERS)


def probe_line(r: ProbeResult, *, as_json: bool) -> str:
    """One probe as it finishes: a table row, or (`--json`) one JSON object."""
    return json.dumps(r.to_json()) if as_json else fixed_line(probe_row(r))


COMPARISON_HEADERS = (
    "provider",
    "route",
    "probes",
    "uptime%",
    "rate_ltd%",
    "ttft_p50",
    "ttft_p90",
    "decode_p50",
    "e2e_p50",
    "cost_usd",
    "errors",
)


def comparison_rows(results: Iterable[ProbeResult]) -> list[list[str]]:
    """One row per (provider, route), fastest median TTFT first."""
    groups: dict[tuple[str, str], list[ProbeResult]] = defaultdict(list)
    for r in results:
        groups[(r.provider, r.route)].append(r)
    rows: list[tuple[float, list[str]]] = []
    for (provider, route), rs in groups.items():
        ok = [r for r in rs if r.outcome is Outcome.OK]
        ttft = summarize(r.ttft_ms for r in ok)
        decode = summarize(r.decode_tps for r in ok)
        e2e = summarize(r.e2e_tps for r in ok)
        outcomes = Counter(r.outcome.value for r in rs)
        uptime = uptime_pct(Rollup(n=len(rs), outcomes=outcomes), DEFAULT_ACCOUNTING)
        limited = sum(r.outcome is Outcome.RATE_LIMITED for r in rs)
        kinds: dict[str, int] = defaultdict(int)
        for r in rs:
            if r.outcome is not Outcome.OK and r.outcome is not Outcome.RATE_LIMITED:
                kinds[r.error_kind or r.outcome.value] += 1
        errors = ", ".join(f"{k}×{n}" for k, n in sorted(kinds.items(), key=lambda kv: -kv[1]))
        cost = sum(r.cost_usd or 0.0 for r in rs)
        row = [
            provider,
            route,
            str(len(rs)),
            dash(uptime, ".1f"),
            dash(100.0 * limited / len(rs), ".0f"),
            dash(ttft.p50 if ttft else None),
            dash(ttft.p90 if ttft else None),
            dash(decode.p50 if decode else None, ".1f"),
            dash(e2e.p50 if e2e else None, ".1f"),
            f"{cost:.6f}",
            errors,
        ]
        rows.append((ttft.p50 if ttft else float("inf"), row))
    return [row for _, row in sorted(rows, key=lambda x: x[0])]


def comparison_table(results: Iterable[ProbeResult]) -> str:
    return render(COMPARISON_HEADERS, comparison_rows(results))


# --- reports (`provmon report`, the demo) ----------------------------------------------------

Written = Sequence[tuple[ModelReport, Mapping[str, Path]]]


def report_table(report: ModelReport) -> str:
    """A report's providers table for the terminal."""
    rows = []
    for r in report.rows:
        kinds = ", ".join(
            f"{k}×{n}" for k, n in r.error_kinds.items() if not k.startswith("http.429")
        )
        rows.append(
            [
                r.provider,
                r.route,
                str(r.probes),
                dash(r.uptime_pct, ".1f"),
                dash(r.rate_limited_pct, ".0f"),
                dash(r.ttft_ms.p50 if r.ttft_ms else None),
                dash(r.ttft_ms.p90 if r.ttft_ms else None),
                dash(r.decode_tps.p50 if r.decode_tps else None, ".1f"),
                dash(r.e2e_tps.p50 if r.e2e_tps else None, ".1f"),
                f"{r.cost_usd:.6f}",
                kinds,
            ]
        )
    return render(COMPARISON_HEADERS, rows, text_columns=2)


def files_text(files: Mapping[str, Path]) -> str:
    return "".join(f"  {fmt:<4} {path}\n" for fmt, path in files.items())


def reports_written_text(written: Written, period_label: str) -> str:
    """`provmon report`: each model's report and where its files are."""
    if not written:
        return f"no probes in {period_label}: no report written\n"
    out = []
    for rep, files in written:
        note = " (frozen)" if rep.frozen else ""
        out.append(f"{rep.model} {rep.period}{note}: {len(rep.rows)} provider rows\n")
        out.append(files_text(files))
    return "".join(out)


# --- status (`provmon status`) ---------------------------------------------------------------

STATUS_WINDOWS = ("5m", "30m", "1d")


def status_text(statuses: Sequence[TargetStatus], summary: Mapping[str, Any]) -> str:
    """Per target its state and per window uptime %, p50 TTFT and p50 decode speed; then a
    line per model."""
    headers = ["model", "provider", "route", "state"]
    for name in STATUS_WINDOWS:
        headers += [f"up%{name}", f"ttft{name}", f"tps{name}"]
    rows = []
    for st in statuses:
        row = [st.model, st.provider, st.route, st.state]
        for name in STATUS_WINDOWS:
            w = st.windows[name]
            row += [dash(w.uptime_pct, ".1f"), dash(w.ttft_p50_ms), dash(w.decode_p50_tps, ".1f")]
        rows.append(row)
    lines = [render(headers, rows, text_columns=4), ""]
    for model, m in summary.items():
        day = m["1d"]
        lines.append(
            f"{model}: {m['targets']} targets, {m['down']} down; last day {day['probes']} probes, "
            f"best uptime {dash(day['best_uptime_pct'], '.1f')}%, "
            f"best p50 TTFT {dash(day['best_ttft_p50_ms'])} ms"
        )
    return "\n".join(lines) + "\n"


def status_json(statuses: Sequence[TargetStatus], summary: Mapping[str, Any]) -> str:
    doc = {"targets": [dataclasses.asdict(s) for s in statuses], "models": summary}
    return json.dumps(doc, default=str, indent=2) + "\n"


# --- incidents (`provmon incidents`) ---------------------------------------------------------

INCIDENT_HEADERS = (
    "id",
    "kind",
    "provider",
    "route",
    "model",
    "vantages",
    "started (UTC)",
    "ended (UTC)",
    "duration",
    "error kinds",
)


def incident_rows(incidents: Sequence[Incident], now: datetime) -> list[list[str]]:
    rows = []
    for i in incidents:
        model, provider, route = i.target or (MISSING, "(monitor)", MISSING)
        end = i.ended_at or now
        duration = duration_text((end - i.started_at).total_seconds())
        rows.append(
            [
                str(i.id),
                i.kind.value,
                provider,
                route,
                model,
                ",".join(i.vantages) or (i.vantage or MISSING),
                timestamp_text(i.started_at),
                timestamp_text(i.ended_at) if i.ended_at else "open",
                duration if i.ended_at else f"{duration}+",
                kinds_text(i.error_kinds) or MISSING,
            ]
        )
    return rows


def incidents_text(incidents: Sequence[Incident], now: datetime, *, as_json: bool) -> str:
    if as_json:
        return "".join(json.dumps(i.to_json()) + "\n" for i in incidents)
    if not incidents:
        return "no incidents\n"
    return render(INCIDENT_HEADERS, incident_rows(incidents, now), text_columns=8) + "\n"


# --- one-liners of `check`, `db upgrade`, `alerts test` --------------------------------------


def config_summary(cfg: Config) -> str:
    models = {t.model for t in cfg.targets}
    providers = {t.provider for t in cfg.targets}
    return (
        f"config ok: {cfg.source}: vantage {cfg.vantage!r}, {len(cfg.targets)} targets "
        f"({len(models)} models, {len(providers)} providers), "
        f"workloads: {', '.join(sorted(cfg.workloads))}\n"
    )


def upgrade_text(before: str | None, after: str | None) -> str:
    if before == after:
        return f"database already at revision {after}\n"
    return f"database upgraded from {before or 'empty'} to revision {after}\n"


def channel_result(name: str, problem: Exception | None) -> str:
    return f"{name}: sent\n" if problem is None else f"{name}: FAILED: {problem}\n"


# --- `provmon simulate` and `provmon demo` ---------------------------------------------------


def simulator_text(
    scenario: str,
    base_url: str,
    openrouter_url: str,
    model_ids: Sequence[str],
    providers: Sequence[tuple[str, str]],
) -> str:
    """Where the simulator serves: the front and each provider's (name, base URL)."""
    lines = [
        f"simulator ({scenario}) on {base_url}\n",
        f"  OpenRouter-like front: {openrouter_url}  (models: {', '.join(model_ids)})\n",
        *(f"  {name:<24} {url}\n" for name, url in providers),
        "Ctrl-C or SIGTERM stops it.\n",
    ]
    return "".join(lines)


def demo_intro(
    base_url: str,
    model: str,
    providers: int,
    targets: int,
    interval_s: float,
    duration_s: float,
    db_path: Path,
) -> str:
    return (
        f"provmon demo: simulator on {base_url} serving {model} from "
        f"{providers} providers (fast, cheap-but-slow, flaky with an outage, "
        f"rate-limited);\n  probing each directly and through the OpenRouter-like front "
        f"({targets} targets) every {interval_s:g}s for {duration_s:g}s "
        f"into {db_path}\n  progress: provider uptime% direct/openrouter, best p50 TTFT, "
        "share of 429s\n"
    )


def demo_progress(elapsed_s: float, total_s: float, statuses: Sequence[TargetStatus]) -> str:
    """One line: per provider, uptime direct/openrouter, p50 TTFT and the 429 share so far."""
    parts = []
    for provider in dict.fromkeys(st.provider for st in statuses):
        mine = [st.windows["5m"] for st in statuses if st.provider == provider]
        mine = [w for w in mine if w.probes]
        if not mine:
            continue
        ups = "/".join(dash(w.uptime_pct) for w in mine)
        ttfts = [w.ttft_p50_ms for w in mine if w.ttft_p50_ms is not None]
        ttft = f" {min(ttfts):.0f}ms" if ttfts else ""
        limited = sum(w.rate_limited for w in mine)
        probes = sum(w.probes for w in mine)
        note = f" {100 * limited / probes:.0f}%429" if limited else ""
        parts.append(f"{provider} {ups}%{ttft}{note}")
    bar = "#" * int(20 * elapsed_s / total_s)
    return f"  [{bar:<20}] {elapsed_s:3.0f}s  " + " | ".join(parts) + "\n"


def demo_results(written: Written, db_path: Path) -> str:
    """Each model's providers table and report files, then how to read them."""
    out = []
    for rep, files in written:
        out.append(f"\n{rep.model}, {len(rep.rows)} provider rows:\n\n")
        out.append(report_table(rep) + "\n")
        out.append("\nreport written:\n")
        out.append(files_text(files))
    out.append(
        "\nuptime% = ok / (ok + failures); rate-limited probes are excluded and shown apart.\n"
        f"Open the HTML report in a browser. The probes stay in {db_path}.\n"
    )
    return "".join(out)
