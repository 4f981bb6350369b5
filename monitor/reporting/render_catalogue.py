"""The report's OpenRouter sections, in HTML and Markdown: OpenRouter's published figures beside
provmon's, and the changes in OpenRouter's endpoints listing. Provider text is escaped."""

from __future__ import annotations

import html
from collections.abc import Callable

from monitor.reporting.model import ModelReport, PublishedFigure

PUBLISHED_TITLE = "OpenRouter's published figures"
CHANGES_TITLE = "Catalogue changes"

PUBLISHED_INTRO = (
    "What OpenRouter's endpoints API published of each endpoint for the 30 minutes before each "
    "of provmon's readings in the period (mean uptime, median of the p50s), beside provmon's "
    "numbers for the target that pins it, with 95 % confidence intervals (Wilson's for uptime, "
    "order statistics for medians). OpenRouter measures from its side, over everyone's "
    "requests: its latency is the time to first token at OpenRouter, without the network "
    "between you and OpenRouter, so provmon's TTFT is expected to be higher. A figure is "
    "flagged where OpenRouter's lies outside provmon's interval."
)
PUBLISHED_HEADERS = (
    "provider",
    "workload",
    "endpoint",
    "readings",
    "uptime % OpenRouter",
    "uptime % provmon [95 % CI]",
    "TTFT p50 ms OpenRouter",
    "TTFT p50 ms provmon [95 % CI]",
    "tok/s p50 OpenRouter",
    "decode p50 tok/s provmon [95 % CI]",
)
CHANGES_HEADERS = ("seen (UTC)", "provider", "endpoint", "change", "what")


def _published(f: PublishedFigure | None, spec: str) -> str:
    return "–" if f is None else format(f.published, spec)


def _measured(f: PublishedFigure | None, spec: str) -> str:
    if f is None or f.measured is None:
        return "–"
    text = f"{format(f.measured, spec)} [{format(f.ci_low, spec)}, {format(f.ci_high, spec)}]"
    return text + (" ≠" if f.disagrees else "")


def published_cells(report: ModelReport) -> list[list[str]]:
    rows = []
    for p in report.published:
        rows.append(
            [
                p.provider,
                p.workload,
                p.endpoint,
                str(p.polls),
                _published(p.uptime_pct, ".2f"),
                _measured(p.uptime_pct, ".2f"),
                _published(p.ttft_p50_ms, ".0f"),
                _measured(p.ttft_p50_ms, ".0f"),
                _published(p.decode_p50_tps, ".1f"),
                _measured(p.decode_p50_tps, ".1f"),
            ]
        )
    return rows


def change_cells(report: ModelReport) -> list[list[str]]:
    return [
        [f"{c.at:%Y-%m-%d %H:%M}", c.provider, c.endpoint, c.kind.replace("_", " "), c.summary]
        for c in report.catalogue_changes
    ]


def _no_published(report: ModelReport) -> str:
    if not report.catalogue_polls:
        return "No readings of OpenRouter's endpoints listing in this period."
    return "No OpenRouter target of this model pins an endpoint the listing shows."


def _no_changes(report: ModelReport) -> str:
    if not report.catalogue_polls:
        return "No readings of OpenRouter's endpoints listing in this period."
    return (
        f"No change in OpenRouter's endpoints listing ({report.catalogue_polls} readings "
        "in this period)."
    )


def _td(i: int, text: str, text_cols: int, tag: str = "td") -> str:
    classes = (["t"] if i < text_cols else []) + (["flag"] if text.endswith("≠") else [])
    cls = f' class="{" ".join(classes)}"' if classes else ""
    return f"<{tag}{cls}>{html.escape(text)}</{tag}>"


def _table_html(headers: tuple[str, ...], rows: list[list[str]], text_cols: int) -> str:
    head = "".join(_td(i, h, text_cols, "th") for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(_td(i, c, text_cols) for i, c in enumerate(r)) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def sections_html(report: ModelReport) -> list[str]:
    e = html.escape
    out = [f"<h2>{e(PUBLISHED_TITLE)}</h2>"]
    if report.published:
        out.append(f"<p class=sub>{e(PUBLISHED_INTRO)}</p>")
        out.append(_table_html(PUBLISHED_HEADERS, published_cells(report), 3))
    else:
        out.append(f"<p>{e(_no_published(report))}</p>")
    out.append(f"<h2>{e(CHANGES_TITLE)}</h2>")
    if report.catalogue_changes:
        out.append(_table_html(CHANGES_HEADERS, change_cells(report), 5))
    else:
        out.append(f"<p>{e(_no_changes(report))}</p>")
    return out


def sections_md(report: ModelReport, escape: Callable[[str], str]) -> list[str]:
    """The two sections in Markdown; `escape` is the report's Markdown escaping."""

    def table(headers: tuple[str, ...], rows: list[list[str]]) -> list[str]:
        def cell(text: str) -> str:
            return f"**{escape(text)}**" if text.endswith("≠") else escape(text)

        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(":--" for _ in headers) + "|"]
        return lines + ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]

    out = ["", f"## {PUBLISHED_TITLE}", ""]
    if report.published:
        out += [escape(PUBLISHED_INTRO), ""]
        out += table(PUBLISHED_HEADERS, published_cells(report))
    else:
        out.append(_no_published(report))
    out += ["", f"## {CHANGES_TITLE}", ""]
    if report.catalogue_changes:
        out += table(CHANGES_HEADERS, change_cells(report))
    else:
        out.append(_no_changes(report))
    return out
