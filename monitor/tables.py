"""Plain-text tables for the terminal: one row per probe, or a per-provider comparison."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

from monitor.aggregate import DEFAULT_ACCOUNTING, uptime_pct
from monitor.reporting.model import ModelReport
from monitor.results import Outcome, ProbeResult
from monitor.rollup import Rollup
from monitor.stats import summarize


def _fmt(value: float | None, spec: str = ".0f") -> str:
    return "-" if value is None else format(value, spec)


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
    return bool(cell) and (cell[0].isdigit() or cell == "-" or cell[0] in "$.")


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
        _fmt(r.ttft_ms),
        _fmt(r.latency_ms),
        _fmt(r.output_tokens, "d") if r.output_tokens is not None else "-",
        _fmt(r.decode_tps, ".1f"),
        _fmt(r.e2e_tps, ".1f"),
    ]


PROBE_WIDTHS = (18, 10, 9, 16, 22, 8, 10, 6, 10, 8)


def fixed_line(cells: Sequence[str], widths: Sequence[int] = PROBE_WIDTHS) -> str:
    """One row of a table printed as it grows: fixed widths, text cut to fit."""
    out = []
    for i, (cell, w) in enumerate(zip(cells, widths, strict=True)):
        cell = cell if len(cell) <= w else cell[: w - 1] + "…"
        out.append(cell.ljust(w) if i < 5 else cell.rjust(w))
    return "  ".join(out).rstrip()


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
            _fmt(uptime, ".1f"),
            _fmt(100.0 * limited / len(rs), ".0f"),
            _fmt(ttft.p50 if ttft else None),
            _fmt(ttft.p90 if ttft else None),
            _fmt(decode.p50 if decode else None, ".1f"),
            _fmt(e2e.p50 if e2e else None, ".1f"),
            f"{cost:.6f}",
            errors,
        ]
        rows.append((ttft.p50 if ttft else float("inf"), row))
    return [row for _, row in sorted(rows, key=lambda x: x[0])]


def comparison_table(results: Iterable[ProbeResult]) -> str:
    return render(COMPARISON_HEADERS, comparison_rows(results))


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
                _fmt(r.uptime_pct, ".1f"),
                _fmt(r.rate_limited_pct, ".0f"),
                _fmt(r.ttft_ms.p50 if r.ttft_ms else None),
                _fmt(r.ttft_ms.p90 if r.ttft_ms else None),
                _fmt(r.decode_tps.p50 if r.decode_tps else None, ".1f"),
                _fmt(r.e2e_tps.p50 if r.e2e_tps else None, ".1f"),
                f"{r.cost_usd:.6f}",
                kinds,
            ]
        )
    return render(COMPARISON_HEADERS, rows, text_columns=2)
