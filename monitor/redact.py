"""Keeps provider-supplied text short, printable and free of secrets before it is stored, logged
or shown: every string a provider sends (error bodies and messages, `served_by`,
`finish_reason`, a redirect's Location) goes through `short_message`."""

from __future__ import annotations

import re
from collections.abc import Iterable

MAX_MESSAGE_CHARS = 300
SECRET_PREFIX_CHARS = 8
"""A run of at least this many leading characters of a secret is redacted too (what is left of a
key when a body or message was cut in the middle of it)."""
_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[^\s\"',;]+"),
    re.compile(r"\bsk-[A-Za-z0-9_\-]{6,}"),
    re.compile(r"(?i)((?:api[_-]?key|authorization|x-api-key)[\"']?\s*[:=]\s*[\"']?)[^\s\"',;}]+"),
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
"""C0 and C1 control characters but tab and newline (ANSI/OSC escapes start with ESC or CSI)."""
_STRIP = dict.fromkeys([*range(0x20), *range(0x7F, 0xA0)])


def strip_controls(text: str) -> str:
    """Every C0/C1 control character removed (stored strings)."""
    return text.translate(_STRIP)


def escape_controls(text: str) -> str:
    """C0/C1 control characters but tab and newline shown as `\\xNN` (log lines)."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _redact_prefixes(text: str, secret: str) -> str:
    head = secret[:SECRET_PREFIX_CHARS]
    start = text.find(head)
    while start != -1:
        end = start + len(head)
        while end < len(text) and end - start < len(secret) and text[end] == secret[end - start]:
            end += 1
        text = text[:start] + "***" + text[end:]
        start = text.find(head, start + 3)
    return text


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Replace known secret values (and any 8+ character start of one) and anything shaped
    like a key or bearer token with ***."""
    for value in secrets:
        if value:
            text = text.replace(value, "***")
            if len(value) >= SECRET_PREFIX_CHARS:
                text = _redact_prefixes(text, value)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + "***", text)
    return text


def short_message(
    raw: str | bytes, secrets: Iterable[str] = (), limit: int = MAX_MESSAGE_CHARS
) -> str:
    """One line of at most `limit` characters, secrets redacted, control characters removed."""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    secrets = list(secrets)
    text = redact(strip_controls(" ".join(raw.split())), secrets)
    if len(text) <= limit:
        return text
    # Cut, then redact again: a cut can leave the start of a key-shaped token behind.
    return redact(text[: limit - 1], secrets) + "…"


def redirect_target(location: str) -> str:
    """A redirect's Location without user info, query or fragment (they may hold secrets)."""
    base = location.split("#", 1)[0]
    base, query = base.split("?", 1) if "?" in base else (base, "")
    scheme, sep, rest = base.partition("://")
    if sep:
        host, slash, path = rest.partition("/")
        base = f"{scheme}://{host.rpartition('@')[2]}{slash}{path}"
    return (base + ("?…" if query else "")) or "(no Location)"
