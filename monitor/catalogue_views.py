"""Catalogue changes as terminal text (`provmon catalogue`): a table, or JSON lines. Pure."""

from __future__ import annotations

import json
from collections.abc import Sequence

from monitor.catalogue.diff import StoredEvent
from monitor.terminal import render, timestamp_text

CATALOGUE_HEADERS = ("id", "seen (UTC)", "model", "provider", "endpoint", "change", "what")


def catalogue_rows(events: Sequence[StoredEvent]) -> list[list[str]]:
    return [
        [
            str(s.id),
            timestamp_text(s.event.at),
            s.event.model,
            s.event.provider,
            s.event.endpoint,
            s.event.kind.value,
            s.event.describe().partition(": ")[2],
        ]
        for s in events
    ]


def catalogue_text(events: Sequence[StoredEvent], *, as_json: bool) -> str:
    """The table, or one JSON object per change (its id and `CatalogueEvent.to_json`)."""
    if as_json:
        return "".join(json.dumps({"id": s.id} | s.event.to_json()) + "\n" for s in events)
    if not events:
        return "no catalogue changes recorded\n"
    return render(CATALOGUE_HEADERS, catalogue_rows(events), len(CATALOGUE_HEADERS)) + "\n"
