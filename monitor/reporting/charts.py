"""Report charts as PNG bytes. The only module that imports matplotlib; it uses `Figure`
objects on the Agg canvas, never pyplot's global state (safe in a long-running daemon)."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from datetime import datetime

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LinearSegmentedColormap
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
from matplotlib.figure import Figure

from monitor.reporting.model import ModelReport, Point

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563")
UPTIME_CMAP = LinearSegmentedColormap.from_list(
    "uptime", [(0.0, "#b91c1c"), (0.9, "#f59e0b"), (0.99, "#a3e635"), (1.0, "#16a34a")]
)


def _figure(width: float = 8.0, height: float = 3.4) -> Figure:
    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _time_axis(ax: Axes) -> None:
    locator = AutoDateLocator()  # type: ignore[no-untyped-call]
    ax.xaxis_date()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]


def line_chart(
    series: Mapping[str, Sequence[Point]], title: str, ylabel: str, *, log_y: bool = False
) -> bytes | None:
    """One line per provider over time; None when there is nothing to draw."""
    if not any(series.values()):
        return None
    fig = _figure()
    ax = fig.add_subplot()
    for i, (label, points) in enumerate(sorted(series.items())):
        if not points:
            continue
        ax.plot(
            [date2num(p.at) for p in points],  # type: ignore[no-untyped-call]
            [p.value for p in points],
            label=label,
            color=PALETTE[i % len(PALETTE)],
            marker="o" if len(points) < 30 else None,
            markersize=3,
            linewidth=1.4,
        )
    if log_y:
        ax.set_yscale("log")
    ax.set_title(title, loc="left", fontsize=11)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    _time_axis(ax)
    ax.legend(fontsize=8, loc="best", frameon=False)
    return _png(fig)


def cdf_chart(
    cdfs: Mapping[str, Sequence[tuple[float, float]]], title: str, xlabel: str, *, log_x: bool
) -> bytes | None:
    """Cumulative distributions: how many probes were at or below each value."""
    if not any(cdfs.values()):
        return None
    fig = _figure()
    ax = fig.add_subplot()
    for i, (label, points) in enumerate(sorted(cdfs.items())):
        if not points:
            continue
        ax.step(
            [v for v, _ in points],
            [100 * c for _, c in points],
            where="post",
            label=label,
            color=PALETTE[i % len(PALETTE)],
            linewidth=1.4,
        )
    if log_x:
        ax.set_xscale("log")
    for y in (50, 90, 99):
        ax.axhline(y, color="#9ca3af", linewidth=0.6, linestyle=":")
    ax.set_ylim(0, 100)
    ax.set_title(title, loc="left", fontsize=11)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("% of ok probes ≤ x")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower right", frameon=False)
    return _png(fig)


def uptime_strip(series: Mapping[str, Sequence[Point]], title: str, bin_label: str) -> bytes | None:
    """One row per provider, one cell per bin, coloured by uptime (grey: no data)."""
    labels = sorted(k for k, v in series.items() if v)
    if not labels:
        return None
    times: list[datetime] = sorted({p.at for k in labels for p in series[k]})
    index = {t: i for i, t in enumerate(times)}
    grid = [[float("nan")] * len(times) for _ in labels]
    for row, label in enumerate(labels):
        for p in series[label]:
            grid[row][index[p.at]] = p.value / 100.0
    fig = _figure(8.0, 0.8 + 0.24 * len(labels))
    ax = fig.add_subplot()
    cmap = UPTIME_CMAP.with_extremes(bad="#e5e7eb")
    ax.imshow(grid, aspect="auto", cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    step = max(1, len(times) // 8)
    ticks = list(range(0, len(times), step))
    fmt = "%m-%d" if bin_label == "day" else ("%m-%d %H:%M" if len(times) > 24 else "%H:%M:%S")
    ax.set_xticks(ticks, [times[i].strftime(fmt) for i in ticks], fontsize=8)
    ax.set_title(title, loc="left", fontsize=11)
    return _png(fig)


def report_charts(report: ModelReport) -> dict[str, bytes]:
    """Every chart of a model report, by file stem; charts with no data are left out."""
    s = report.series
    bin_label = "hour" if report.bin_s == 3600 else f"{report.bin_s}s bin"
    charts = {
        "ttft_over_time": line_chart(
            s.ttft_p50_ms, f"Time to first token, p50 per {bin_label}", "ms"
        ),
        "decode_over_time": line_chart(
            s.decode_p50_tps, f"Decode speed, p50 per {bin_label}", "tokens/s"
        ),
        "ttft_distribution": cdf_chart(
            s.ttft_cdf, "Time to first token, distribution", "ms", log_x=True
        ),
        "decode_distribution": cdf_chart(
            s.decode_cdf, "Decode speed, distribution", "tokens/s", log_x=False
        ),
        "uptime_by_day": (
            uptime_strip(s.uptime_daily, "Uptime per day", "day")
            if (report.end - report.start).days >= 2
            else None
        ),
        "uptime_by_bin": uptime_strip(s.uptime_hourly, f"Uptime per {bin_label}", bin_label),
    }
    return {name: png for name, png in charts.items() if png is not None}
