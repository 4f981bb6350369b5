"""Keeps provider error text short and free of secrets before it is stored, logged or shown."""

from __future__ import annotations

import re
from collections.abc import Iterable

MAX_MESSAGE_CHARS = 300
_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[^\s\"',;]+"),
    re.compile(r"\bsk-[A-Za-z0-9_\-]{6,}"),
    re.compile(r"(?i)((?:api[_-]?key|authorization|x-api-key)[\"']?\s*[:=]\s*[\"']?)[^\s\"',;}]+"),
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Replace known secret values and anything shaped like a key or bearer token with ***."""
    for value in secrets:
        if value:
            text = text.replace(value, "***")
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + "***", text)
    return text


def short_message(
    raw: str | bytes, secrets: Iterable[str] = (), limit: int = MAX_MESSAGE_CHARS
) -> str:
    """One line of at most `limit` characters, secrets redacted."""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    text = redact(" ".join(raw.split()), secrets)
    return text if len(text) <= limit else text[: limit - 1] + "…"
