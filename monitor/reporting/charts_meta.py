"""Chart names and titles, shared by the renderers without importing matplotlib."""

from __future__ import annotations

CHART_TITLES = {
    "performance": "Time to first token and decode speed over time",
    "distributions": "Distributions of time to first token and decode speed",
    "uptime": "Uptime per day and per hour",
}
