"""The one place that reads the wall clock: `utc_now`. Pure code receives "now" instead."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    """Now, as a tz-aware UTC datetime."""
    return datetime.now(UTC)
