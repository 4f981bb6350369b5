"""Incidents as a terminal table (`provmon incidents`). Pure."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from monitor.alert_model import Incident
from monitor.alerts.payloads import kinds_text

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


def duration_text(seconds: float) -> str:
    s = round(seconds)
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _ts(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%d %H:%M:%S")


def incident_rows(incidents: Sequence[Incident], now: datetime) -> list[list[str]]:
    rows = []
    for i in incidents:
        model, provider, route = i.target or ("-", "(monitor)", "-")
        end = i.ended_at or now
        duration = duration_text((end - i.started_at).total_seconds())
        rows.append(
            [
                str(i.id),
                i.kind.value,
                provider,
                route,
                model,
                ",".join(i.vantages) or (i.vantage or "-"),
                _ts(i.started_at),
                _ts(i.ended_at) if i.ended_at else "open",
                duration if i.ended_at else f"{duration}+",
                kinds_text(i.error_kinds) or "-",
            ]
        )
    return rows
