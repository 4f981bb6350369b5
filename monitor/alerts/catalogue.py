"""The notification of a catalogue change, pure: Alertmanager's webhook JSON, like an incident's.

One per change (`monitor.catalogue.CatalogueEvent`), alertname `CatalogueChange`, severity
`info`. A change is a moment, not a state: it is sent once and never resolved. Its idempotency
key carries the event's id, so a copy sent again after a crash is recognisable.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from monitor.alerts.payloads import ZERO_TIME, fingerprint, rfc3339
from monitor.catalogue.diff import CatalogueEvent

ALERT_NAME = "CatalogueChange"


def catalogue_payload(
    event_id: int, event: CatalogueEvent, receiver: str, vantage: str
) -> dict[str, Any]:
    labels = {
        "alertname": ALERT_NAME,
        "severity": "info",
        "source": "provmon",
        "model": event.model,
        "provider": event.provider,
        "endpoint": event.endpoint,
        "change": event.kind.value,
        "vantage": vantage,
    }
    annotations = {
        "summary": f"{event.model}: {event.describe()}",
        "description": (
            f"OpenRouter's endpoints listing changed (seen at {rfc3339(event.at)}): "
            f"before {json.dumps(event.before, sort_keys=True)}, "
            f"after {json.dumps(event.after, sort_keys=True)}"
        ),
    }
    fp = fingerprint(labels | {"event": str(event_id)})
    alert = {
        "status": "firing",
        "labels": labels,
        "annotations": annotations,
        "startsAt": rfc3339(event.at),
        "endsAt": ZERO_TIME,
        "generatorURL": "",
        "fingerprint": fp,
    }
    transition = f"catalogue:{event_id}"
    return {
        "version": "4",
        "groupKey": f"{{}}:{{alertname={ALERT_NAME!r}, fingerprint={fp!r}}}",
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": receiver,
        "groupLabels": {"alertname": ALERT_NAME},
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": "",
        "alerts": [alert],
        "provmon": {
            "idempotency_key": f"{fp}-{transition}",
            "catalogue_event_id": event_id,
            "catalogue_event": event.to_json(),
            "transition": transition,
        },
    }


Rows = Callable[[int, CatalogueEvent], list[tuple[str, dict[str, Any]]]]


def catalogue_notifications(channels: Sequence[str], vantage: str) -> Rows:
    """(event id, event) → its outbox rows: one (channel, payload) per channel."""

    def rows(event_id: int, event: CatalogueEvent) -> list[tuple[str, dict[str, Any]]]:
        return [(name, catalogue_payload(event_id, event, name, vantage)) for name in channels]

    return rows
