"""Catalogue changes as a terminal table and as JSON lines (`provmon catalogue`). Pure."""

from __future__ import annotations

import json
from collections.abc import Sequence

from monitor.catalogue.diff import StoredEvent

CATALOGUE_HEADERS = ("id", "seen (UTC)", "model", "provider", "endpoint", "change", "what")


def catalogue_rows(events: Sequence[StoredEvent]) -> list[list[str]]:
    return [
        [
            str(s.id),
            s.event.at.strftime("%Y-%m-%d %H:%M:%S"),
            s.event.model,
            s.event.provider,
            s.event.endpoint,
            s.event.kind.value,
            s.event.describe().partition(": ")[2],
        ]
        for s in events
    ]


def catalogue_json_lines(events: Sequence[StoredEvent]) -> list[str]:
    """One JSON object per change: its id and `CatalogueEvent.to_json`."""
    return [json.dumps({"id": s.id} | s.event.to_json()) for s in events]
