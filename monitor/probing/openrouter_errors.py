"""Names OpenRouter's error objects: a finer `error_kind` than `http.N` or `stream.error`. Pure.

OpenRouter answers errors as `{"error": {"code", "message", "metadata"?}}`: with the HTTP status
equal to `code` before the stream starts, or as an SSE event after its 200 (then with
`finish_reason: "error"`). Its documented metadata shapes: a provider's error carries
`{provider_name, raw}` (the upstream error as the provider sent it), a moderation flag
`{reasons, flagged_input, provider_name, model_slug}`. Its documented codes: 402 no credits,
403 moderation, guardrail block or permissions, 408 timed out, 502 the model is down or answered
nonsense, 503 no provider meets the routing requirements (for a pinned probe: the endpoint has
no capacity for it).

The kinds refine, never change, the outcome `classify` gives: a 402 or 403 stays a client error,
a 502 or 503 a server error, an in-stream error a stream error; 429s stay rate limits and keep
their kinds.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

MODERATION = "openrouter.moderation"
GUARDRAIL = "openrouter.guardrail"
NO_CREDITS = "openrouter.no_credits"
TIMEOUT = "openrouter.timeout"
NO_CAPACITY = "openrouter.no_capacity"
PROVIDER_ERROR = "openrouter.provider_error"
KINDS = (MODERATION, GUARDRAIL, NO_CREDITS, TIMEOUT, NO_CAPACITY, PROVIDER_ERROR)

# An upstream error that says the provider is out of capacity rather than broken.
_OVERLOADED = re.compile(
    r"overloaded|capacity|unavailable|no available|\b(?:503|529)\b", re.IGNORECASE
)
_RAW_CHARS = 2000


def error_kind(
    code: object, message: str, metadata: Mapping[str, Any] | None, status: int | None = None
) -> str | None:
    """The finer kind of one OpenRouter error object, or None when it says nothing finer.

    `code` is `error.code` (a number, or a string some streams send); `status` the HTTP status
    when the error came as a response rather than inside a stream.
    """
    number = _number(code) or status
    meta = metadata or {}
    if number == 429:
        return None
    if "reasons" in meta or "flagged_input" in meta:
        return MODERATION
    if number == 403:
        return GUARDRAIL if "guardrail" in message.casefold() else None
    if number == 402:
        return NO_CREDITS
    if "provider_name" in meta or "raw" in meta:
        overloaded = number == 503 or _OVERLOADED.search(_text(meta.get("raw")))
        return NO_CAPACITY if overloaded else PROVIDER_ERROR
    if number == 503:
        return NO_CAPACITY
    if number == 502:
        return PROVIDER_ERROR
    if number == 408:
        return TIMEOUT
    return None


def stream_error_kind(code: object, message: str, metadata: Mapping[str, Any] | None) -> str | None:
    """The finer kind of an error sent inside a 200 stream, when it carries OpenRouter's
    `metadata` (other providers' in-stream errors have none and stay `stream.error`)."""
    return error_kind(code, message, metadata) if metadata else None


def http_error_kind(route: str, status: int, body: bytes) -> str | None:
    """The finer kind of an HTTP error response on the OpenRouter route (None elsewhere, or
    when the body is not OpenRouter's error object)."""
    if route != "openrouter":
        return None
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    error = doc.get("error") if isinstance(doc, dict) else None
    if not isinstance(error, dict):
        return None
    message = error.get("message")
    metadata = error.get("metadata")
    return error_kind(
        error.get("code"),
        message if isinstance(message, str) else "",
        metadata if isinstance(metadata, dict) else None,
        status,
    )


def _number(code: object) -> int | None:
    if isinstance(code, bool):
        return None
    if isinstance(code, int):
        return code
    if isinstance(code, str) and code.isdigit():
        return int(code)
    return None


def _text(raw: object) -> str:
    """The upstream error as text, whatever shape the provider sent (string, object, null)."""
    if raw is None:
        return ""
    if isinstance(raw, str):
        return raw[:_RAW_CHARS]
    try:
        return json.dumps(raw)[:_RAW_CHARS]
    except (TypeError, ValueError):
        return ""
