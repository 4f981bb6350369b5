"""Report charts as PNG bytes. The only module that imports matplotlib; it uses `Figure`
objects on the Agg canvas, never pyplot's global state (safe in a long-running daemon).

Three figures per model: performance over time, distributions, uptime. Drawing costs about
0.1 s a figure, so `make_reports` runs this in a worker process, off the daemon's event loop.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from datetime import datetime

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LinearSegmentedColormap
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
from matplotlib.figure import Figure

from monitor.reporting.model import ModelReport, Point

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563")
STYLES = ("-", "--", ":", "-.")
UPTIME_CMAP = LinearSegmentedColormap.from_list(
    "uptime", [(0.0, "#b91c1c"), (0.9, "#f59e0b"), (0.99, "#a3e635"), (1.0, "#16a34a")]
).with_extremes(bad="#e5e7eb")


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _style(i: int) -> dict[str, object]:
    return {"color": PALETTE[i % len(PALETTE)], "linestyle": STYLES[(i // len(PALETTE)) % 4]}


def _time_axis(ax: Axes) -> None:
    locator = AutoDateLocator()  # type: ignore[no-untyped-call]
    ax.xaxis_date()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]


def _lines(ax: Axes, series: Mapping[str, Sequence[Point]], labels: list[str]) -> None:
    for i, label in enumerate(labels):
        points = series.get(label, [])
        if points:
            ax.plot(
                [date2num(p.at) for p in points],  # type: ignore[no-untyped-call]
                [p.value for p in points],
                label=label,
                marker="o" if len(points) < 30 else None,
                markersize=3,
                linewidth=1.3,
                **_style(i),  # type: ignore[arg-type]
            )
    ax.grid(True, alpha=0.3)
    _time_axis(ax)


def _steps(ax: Axes, cdfs: Mapping[str, Sequence[tuple[float, float]]], labels: list[str]) -> None:
    for i, label in enumerate(labels):
        points = cdfs.get(label, [])
        if points:
            ax.step(
                [v for v, _ in points],
                [100 * c for _, c in points],
                where="post",
                label=label,
                linewidth=1.3,
                **_style(i),  # type: ignore[arg-type]
            )
    for y in (50, 90, 99):
        ax.axhline(y, color="#9ca3af", linewidth=0.6, linestyle=":")
    ax.set_ylim(0, 100)
    ax.set_ylabel("% of ok probes ≤ x")
    ax.grid(True, alpha=0.3)


def _pair(left_title: str, right_title: str, labels: list[str]) -> tuple[Figure, Axes, Axes]:
    legend_rows = math.ceil(len(labels) / 3)
    height = 3.4 + 0.17 * legend_rows
    fig = _figure(11.0, height)
    # Room at the bottom for tick labels (~0.5 in) and the legend rows (~0.17 in each).
    bottom = (0.55 + 0.17 * legend_rows) / height
    fig.subplots_adjust(left=0.07, right=0.98, top=1 - 0.3 / height, bottom=bottom, wspace=0.22)
    left, right = fig.subplots(1, 2)
    left.set_title(left_title, loc="left", fontsize=10)
    right.set_title(right_title, loc="left", fontsize=10)
    return fig, left, right


def _legend(fig: Figure, ax: Axes, count: int) -> None:
    handles, names = ax.get_legend_handles_labels()
    if handles:
        fig.legend(
            handles, names, loc="lower center", ncols=min(3, count), fontsize=8, frameon=False
        )


def performance_chart(report: ModelReport) -> bytes | None:
    s = report.series
    labels = sorted(set(s.ttft_p50_ms) | set(s.decode_p50_tps))
    if not any(s.ttft_p50_ms.values()) and not any(s.decode_p50_tps.values()):
        return None
    bin_label = "hour" if report.bin_s == 3600 else f"{report.bin_s} s"
    fig, left, right = _pair(
        f"Time to first token, p50 per {bin_label} (ms)",
        f"Decode speed, p50 per {bin_label} (tokens/s)",
        labels,
    )
    _lines(left, s.ttft_p50_ms, labels)
    _lines(right, s.decode_p50_tps, labels)
    _legend(fig, left, len(labels))
    return _png(fig)


def distribution_chart(report: ModelReport) -> bytes | None:
    s = report.series
    labels = sorted(set(s.ttft_cdf) | set(s.decode_cdf))
    if not any(s.ttft_cdf.values()) and not any(s.decode_cdf.values()):
        return None
    fig, left, right = _pair(
        "Time to first token (ms, log scale)", "Decode speed (tokens/s)", labels
    )
    _steps(left, s.ttft_cdf, labels)
    left.set_xscale("log")
    _steps(right, s.decode_cdf, labels)
    _legend(fig, left, len(labels))
    return _png(fig)


def _strip(
    ax: Axes, series: Mapping[str, Sequence[Point]], labels: list[str], fmt: str, title: str
) -> None:
    times: list[datetime] = sorted({p.at for k in labels for p in series.get(k, [])})
    index = {t: i for i, t in enumerate(times)}
    grid = [[math.nan] * max(1, len(times)) for _ in labels]
    for row, label in enumerate(labels):
        for p in series.get(label, []):
            grid[row][index[p.at]] = p.value / 100.0
    ax.imshow(grid, aspect="auto", cmap=UPTIME_CMAP, vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    step = max(1, len(times) // 6)
    ticks = list(range(0, len(times), step))
    ax.set_xticks(ticks, [times[i].strftime(fmt) for i in ticks], fontsize=8)
    ax.set_title(title, loc="left", fontsize=10)


def uptime_chart(report: ModelReport) -> bytes | None:
    """Rows per provider, cells per day (periods of two days or more) and per bin."""
    s = report.series
    labels = sorted(k for k, v in s.uptime_hourly.items() if v)
    if not labels:
        return None
    with_days = (report.end - report.start).days >= 2 and any(s.uptime_daily.values())
    strips = 2 if with_days else 1
    height = 0.5 + strips * (0.55 + 0.22 * len(labels))
    fig = _figure(11.0, height)
    fig.subplots_adjust(
        left=0.2, right=0.98, top=1 - 0.35 / height, bottom=0.3 / height, hspace=0.6
    )
    axes = fig.subplots(strips, 1, squeeze=False)[:, 0]
    bin_label = "hour" if report.bin_s == 3600 else f"{report.bin_s} s"
    if with_days:
        _strip(axes[0], s.uptime_daily, labels, "%a %m-%d", "Uptime per day (grey: no data)")
    fmt = "%m-%d %H:%M" if report.bin_s >= 3600 else "%H:%M:%S"
    _strip(axes[-1], s.uptime_hourly, labels, fmt, f"Uptime per {bin_label} (grey: no data)")
    return _png(fig)


def report_charts(report: ModelReport) -> dict[str, bytes]:
    """Every chart of a model report, by file stem; charts with no data are left out."""
    charts = {
        "performance": performance_chart(report),
        "distributions": distribution_chart(report),
        "uptime": uptime_chart(report),
    }
    return {name: png for name, png in charts.items() if png is not None}
