"""Notification payloads, pure: Alertmanager's webhook JSON, and title + text for Apprise and
the log, derived from it.

Each payload carries `provmon.idempotency_key` (also sent as the `Idempotency-Key` header): the
same notification delivered twice (possible after a crash between sending and recording it)
carries the same key, so a receiver can drop the copy.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from monitor.alert_model import Incident, IncidentKind

ZERO_TIME = "0001-01-01T00:00:00Z"
"""Alertmanager's `endsAt` for an alert that has not ended."""

ALERT_NAMES = {
    IncidentKind.DOWN: "ProviderDown",
    IncidentKind.DEGRADED: "ProviderDegraded",
    IncidentKind.CONFIG: "ProviderMisconfigured",
    IncidentKind.VANTAGE: "VantageCannotReachProvider",
    IncidentKind.MONITOR: "MonitorConnectivity",
}
SEVERITY = {
    IncidentKind.DOWN: "critical",
    IncidentKind.DEGRADED: "warning",
    IncidentKind.CONFIG: "warning",
    IncidentKind.VANTAGE: "warning",
    IncidentKind.MONITOR: "critical",
}


def rfc3339(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def labels_of(incident: Incident) -> dict[str, str]:
    labels = {
        "alertname": ALERT_NAMES[incident.kind],
        "severity": SEVERITY[incident.kind],
        "source": "provmon",
    }
    if incident.target is not None:
        model, provider, route = incident.target
        labels |= {
            "model": model,
            "provider": provider,
            "route": route,
            "target": f"{model}|{provider}|{route}",
        }
    if incident.vantage is not None:
        labels["vantage"] = incident.vantage
    return labels


def fingerprint(labels: dict[str, str]) -> str:
    """Stable per alert (same labels, same fingerprint), as Alertmanager's is."""
    text = json.dumps(labels, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def kinds_text(error_kinds: dict[str, int]) -> str:
    ranked = sorted(error_kinds.items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{k}×{n}" for k, n in ranked)


def _what(incident: Incident) -> str:
    if incident.target is None:
        return f"provmon at vantage {incident.vantage}"
    model, provider, route = incident.target
    return f"{provider} ({route}) serving {model}"


def describe(incident: Incident, transition: str) -> tuple[str, str]:
    """(summary, description) in plain words."""
    what = _what(incident)
    kind = incident.kind
    resolved = transition == "resolved"
    if kind is IncidentKind.DOWN:
        summary = f"{what} is {'back UP' if resolved else 'DOWN'}"
    elif kind is IncidentKind.DEGRADED:
        summary = f"{what} is {'no longer degraded' if resolved else 'DEGRADED'}"
    elif kind is IncidentKind.CONFIG:
        summary = (
            f"{what} answers again"
            if resolved
            else f"{what} answers only client errors: check the key, payment or model name"
        )
    elif kind is IncidentKind.VANTAGE:
        summary = (
            f"vantage {incident.vantage} reaches {what} again"
            if resolved
            else f"{what} fails from vantage {incident.vantage} only: "
            "that vantage's problem, not the provider's"
        )
    else:
        summary = (
            f"{what} has its connectivity back"
            if resolved
            else f"{what} lost its connectivity: probe failures are its own, "
            "target states are frozen"
        )
    details = [f"since {rfc3339(incident.started_at)}"]
    if incident.ended_at is not None:
        details.append(f"until {rfc3339(incident.ended_at)}")
        if incident.duration_s is not None:
            details.append(f"({incident.duration_s:.0f} s)")
    if incident.error_kinds:
        details.append(f"errors: {kinds_text(incident.error_kinds)}")
    if incident.vantages:
        details.append(f"vantages: {', '.join(incident.vantages)}")
    if incident.summary:
        details.append(incident.summary)
    if transition.startswith("reminder"):
        details.append("(reminder: still open)")
    return summary, "; ".join(details)


def alertmanager_payload(incident: Incident, transition: str, receiver: str) -> dict[str, Any]:
    """The notification for `incident` at `transition` ("firing", "resolved", "reminder:N"),
    shaped like Alertmanager's webhook payload (version 4)."""
    labels = labels_of(incident)
    status = "resolved" if transition == "resolved" else "firing"
    summary, description = describe(incident, transition)
    annotations = {"summary": summary, "description": description}
    if incident.error_kinds:
        annotations["error_kinds"] = kinds_text(incident.error_kinds)
    if incident.vantages:
        annotations["vantages"] = ",".join(incident.vantages)
    fp = fingerprint(labels)
    ends = incident.ended_at if status == "resolved" else None
    alert = {
        "status": status,
        "labels": labels,
        "annotations": annotations,
        "startsAt": rfc3339(incident.started_at),
        "endsAt": rfc3339(ends) if ends is not None else ZERO_TIME,
        "generatorURL": "",
        "fingerprint": fp,
    }
    return {
        "version": "4",
        "groupKey": f"{{}}:{{alertname={labels['alertname']!r}, fingerprint={fp!r}}}",
        "truncatedAlerts": 0,
        "status": status,
        "receiver": receiver,
        "groupLabels": {"alertname": labels["alertname"]},
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": "",
        "alerts": [alert],
        "provmon": {
            "idempotency_key": f"{fp}-{incident.id}-{transition}",
            "incident_id": incident.id,
            "incident_kind": incident.kind.value,
            "transition": transition,
        },
    }


def trial_payload(receiver: str, now: datetime, vantage: str) -> dict[str, Any]:
    """What `provmon alerts test` sends: a firing alert that says it is a test."""
    labels = {
        "alertname": "ProvmonTest",
        "severity": "info",
        "source": "provmon",
        "vantage": vantage,
    }
    annotations = {
        "summary": f"provmon test notification from vantage {vantage}",
        "description": "If you can read this, the channel works.",
    }
    fp = fingerprint(labels)
    return {
        "version": "4",
        "groupKey": f"{{}}:{{alertname='ProvmonTest', fingerprint={fp!r}}}",
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": receiver,
        "groupLabels": {"alertname": "ProvmonTest"},
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": "",
        "alerts": [
            {
                "status": "firing",
                "labels": labels,
                "annotations": annotations,
                "startsAt": rfc3339(now),
                "endsAt": ZERO_TIME,
                "generatorURL": "",
                "fingerprint": fp,
            }
        ],
        "provmon": {"idempotency_key": f"{fp}-test-{rfc3339(now)}", "transition": "test"},
    }


def title_and_body(payload: dict[str, Any]) -> tuple[str, str]:
    """Plain text for chat, email and the log: a title line and a short body."""
    alert = payload["alerts"][0]
    status = str(payload["status"]).upper()
    transition = str(payload.get("provmon", {}).get("transition", ""))
    if transition.startswith("reminder"):
        status = "STILL FIRING"
    title = f"[{status}] {alert['labels']['alertname']}: {alert['annotations']['summary']}"
    body = alert["annotations"].get("description", "")
    return title, body


def idempotency_key(payload: dict[str, Any]) -> str:
    return str(payload.get("provmon", {}).get("idempotency_key", ""))
