"""Writes a rendered report to disk: one folder per period and model under the reports dir."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from monitor.reporting.model import ModelReport
from monitor.reporting.render import render_csv, render_html, render_json, render_markdown

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def slug(text: str) -> str:
    """A file-name-safe form of a model id or period label (`a/b:c` → `a__b_c`)."""
    return _UNSAFE.sub("_", text.replace("/", "__")).strip("._") or "model"


def _write(path: Path, data: str | bytes) -> None:
    """Write atomically: a reader never sees half a report."""
    tmp = path.with_name(path.name + ".tmp")
    if isinstance(data, str):
        tmp.write_text(data, encoding="utf-8")
    else:
        tmp.write_bytes(data)
    os.replace(tmp, path)


def write_report(
    report: ModelReport, charts: Mapping[str, bytes], out_dir: Path, formats: Iterable[str]
) -> dict[str, Path]:
    """Write the report in each format; returns the path of each file written."""
    folder = out_dir / slug(report.period) / slug(report.model)
    folder.mkdir(parents=True, exist_ok=True)
    formats = list(formats)
    written: dict[str, Path] = {}
    if "html" in formats:
        written["html"] = folder / "report.html"
        _write(written["html"], render_html(report, charts))
    if "md" in formats:
        chart_dir = folder / "charts"
        chart_dir.mkdir(exist_ok=True)
        files = {}
        for name, png in charts.items():
            _write(chart_dir / f"{name}.png", png)
            files[name] = f"charts/{name}.png"
        written["md"] = folder / "report.md"
        _write(written["md"], render_markdown(report, files))
    if "csv" in formats:
        written["csv"] = folder / "providers.csv"
        _write(written["csv"], render_csv(report))
    if "json" in formats:
        written["json"] = folder / "report.json"
        _write(written["json"], render_json(report))
    return written
