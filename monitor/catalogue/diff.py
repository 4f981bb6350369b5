"""Catalogue changes: two listings of a model's OpenRouter endpoints → what changed. Pure.

Endpoints are matched by tag. The first listing of a model is the baseline (no events); after
that every difference is one event: an endpoint added or removed, its price (input and output
together), quantization, context length, max output, status or supported parameters changed.
OpenRouter's published figures (uptime, latency, throughput) move all the time and are not
catalogue changes.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from monitor.catalogue.listing import Endpoint


class ChangeKind(enum.StrEnum):
    ADDED = "endpoint_added"
    REMOVED = "endpoint_removed"
    PRICE = "price_changed"
    QUANTIZATION = "quantization_changed"
    CONTEXT = "context_changed"
    MAX_OUTPUT = "max_output_changed"
    STATUS = "status_changed"
    PARAMETERS = "parameters_changed"


@dataclass(frozen=True, slots=True)
class CatalogueEvent:
    """One change of one endpoint, seen at `at` (the listing that showed it). `before` and
    `after` are plain JSON values: None for what did not exist or was not given."""

    model: str
    endpoint: str
    provider: str
    kind: ChangeKind
    before: Any
    after: Any
    at: datetime

    def describe(self) -> str:
        """What changed, in a few words."""
        what = f"{self.provider} [{self.endpoint}]"
        if self.kind is ChangeKind.ADDED:
            return f"{what}: new endpoint ({_card(self.after)})"
        if self.kind is ChangeKind.REMOVED:
            return f"{what}: endpoint removed (was {_card(self.before)})"
        if self.kind is ChangeKind.PARAMETERS:
            before, after = set(self.before or ()), set(self.after or ())
            moves = [f"+{p}" for p in sorted(after - before)]
            moves += [f"-{p}" for p in sorted(before - after)]
            return f"{what}: supported parameters {' '.join(moves)}"
        name = _NAMES[self.kind]
        return f"{what}: {name} {_value(self.kind, self.before)} → {_value(self.kind, self.after)}"

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "endpoint": self.endpoint,
            "provider": self.provider,
            "kind": self.kind.value,
            "before": self.before,
            "after": self.after,
            "at": self.at.isoformat(),
            "summary": self.describe(),
        }


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """A recorded change and its id (the outbox's `catalogue:ID`)."""

    id: int
    event: CatalogueEvent


_NAMES = {
    ChangeKind.PRICE: "price per M tokens in/out",
    ChangeKind.QUANTIZATION: "quantization",
    ChangeKind.CONTEXT: "context",
    ChangeKind.MAX_OUTPUT: "max output",
    ChangeKind.STATUS: "status",
}


def _value(kind: ChangeKind, value: Any) -> str:
    if value is None:
        return "unknown"
    if kind is ChangeKind.PRICE:
        return f"${_price(value.get('input'))}/${_price(value.get('output'))}"
    if isinstance(value, int) and not isinstance(value, bool) and kind is not ChangeKind.STATUS:
        return f"{value:,}"
    return str(value)


def _price(value: Any) -> str:
    return "?" if value is None else f"{value:g}"


def _card(card: Any) -> str:
    if not isinstance(card, dict):
        return "?"
    parts = [
        str(card.get("quantization") or "quantization unknown"),
        f"{card['context_length']:,} context" if card.get("context_length") else None,
        f"max output {card['max_completion_tokens']:,}"
        if card.get("max_completion_tokens")
        else None,
        f"${_price(card.get('input_price_per_mtok'))}/${_price(card.get('output_price_per_mtok'))}"
        " per M in/out",
    ]
    return ", ".join(p for p in parts if p)


def card(e: Endpoint) -> dict[str, Any]:
    """An endpoint's catalogue fields (what an added or removed event carries)."""
    return {
        "quantization": e.quantization,
        "context_length": e.context_length,
        "max_completion_tokens": e.max_completion_tokens,
        "input_price_per_mtok": e.input_price_per_mtok,
        "output_price_per_mtok": e.output_price_per_mtok,
        "status": e.status,
        "supported_parameters": list(e.supported_parameters),
    }


def _same_price(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


def _changes(old: Endpoint, new: Endpoint) -> list[tuple[ChangeKind, Any, Any]]:
    out: list[tuple[ChangeKind, Any, Any]] = []
    if not (
        _same_price(old.input_price_per_mtok, new.input_price_per_mtok)
        and _same_price(old.output_price_per_mtok, new.output_price_per_mtok)
    ):
        out.append(
            (
                ChangeKind.PRICE,
                {"input": old.input_price_per_mtok, "output": old.output_price_per_mtok},
                {"input": new.input_price_per_mtok, "output": new.output_price_per_mtok},
            )
        )
    for kind, field in (
        (ChangeKind.QUANTIZATION, "quantization"),
        (ChangeKind.CONTEXT, "context_length"),
        (ChangeKind.MAX_OUTPUT, "max_completion_tokens"),
        (ChangeKind.STATUS, "status"),
    ):
        before, after = getattr(old, field), getattr(new, field)
        if before != after:
            out.append((kind, before, after))
    if set(old.supported_parameters) != set(new.supported_parameters):
        out.append(
            (
                ChangeKind.PARAMETERS,
                sorted(old.supported_parameters),
                sorted(new.supported_parameters),
            )
        )
    return out


def diff(
    model: str, before: Sequence[Endpoint] | None, after: Sequence[Endpoint], at: datetime
) -> list[CatalogueEvent]:
    """The events between two listings of `model` (None before: the first listing, no
    events). Removed endpoints first, then added ones, then changes; each group by tag."""
    if before is None:
        return []
    old = {e.tag: e for e in before}
    new = {e.tag: e for e in after}
    events = [
        CatalogueEvent(model, tag, old[tag].provider, ChangeKind.REMOVED, card(old[tag]), None, at)
        for tag in sorted(old.keys() - new.keys())
    ]
    events += [
        CatalogueEvent(model, tag, new[tag].provider, ChangeKind.ADDED, None, card(new[tag]), at)
        for tag in sorted(new.keys() - old.keys())
    ]
    for tag in sorted(old.keys() & new.keys()):
        for kind, was, now in _changes(old[tag], new[tag]):
            events.append(CatalogueEvent(model, tag, new[tag].provider, kind, was, now, at))
    return events
