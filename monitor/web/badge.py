"""Shields-style SVG badges: `uptime | 99.8%` or `ttft p50 | 350 ms` for one target. Pure."""

from __future__ import annotations

from html import escape

GREEN, YELLOW_GREEN, YELLOW, ORANGE, RED, GREY, BLUE = (
    "#4c1",
    "#a4a61d",
    "#dfb317",
    "#fe7d37",
    "#e05d44",
    "#9f9f9f",
    "#007ec6",
)
LABEL_COLOUR = "#555"
_NARROW = set("fijlrt1.,:;|!' ")
_WIDE = set("mwMW%@")


def text_width(text: str) -> int:
    """Roughly the width of `text` in 11 px Verdana, the badge font."""
    width = 0.0
    for ch in text:
        width += 4.0 if ch in _NARROW else 10.0 if ch in _WIDE else 7.0
    return round(width)


def uptime_colour(pct: float | None) -> str:
    if pct is None:
        return GREY
    if pct >= 99.5:
        return GREEN
    if pct >= 98:
        return YELLOW_GREEN
    if pct >= 95:
        return YELLOW
    if pct >= 90:
        return ORANGE
    return RED


def ttft_colour(ms: float | None) -> str:
    if ms is None:
        return GREY
    if ms < 1000:
        return GREEN
    if ms < 3000:
        return YELLOW
    return RED


def badge_svg(label: str, value: str, colour: str) -> str:
    """A flat badge: `label` on grey, `value` on `colour`; both escaped."""
    lw, vw = text_width(label) + 10, text_width(value) + 10
    total = lw + vw
    lab, val = escape(label), escape(value)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20" role="img" '
        f'aria-label="{lab}: {val}"><title>{lab}: {val}</title>'
        f'<rect width="{lw}" height="20" fill="{LABEL_COLOUR}"/>'
        f'<rect x="{lw}" width="{vw}" height="20" fill="{escape(colour)}"/>'
        '<g fill="#fff" text-anchor="middle" '
        'font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11">'
        f'<text x="{lw / 2:.1f}" y="14">{lab}</text>'
        f'<text x="{lw + vw / 2:.1f}" y="14">{val}</text></g></svg>'
    )


def uptime_badge(pct: float | None) -> str:
    return badge_svg("uptime 1d", "no data" if pct is None else f"{pct:.1f}%", uptime_colour(pct))


def ttft_badge(ms: float | None) -> str:
    return badge_svg("ttft p50", "no data" if ms is None else f"{ms:.0f} ms", ttft_colour(ms))
