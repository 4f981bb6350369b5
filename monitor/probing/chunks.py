"""Reads one SSE event of a chat completion stream: a `Chunk`, `Done` or `Malformed`.

Pure: it takes the event's text and returns values. It is lenient where providers differ
(`reasoning` vs `reasoning_content`, usage on every chunk, `choices: []`) and strict where a probe
must fail (text that is not a JSON object).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from monitor.probing.sse import SSEEvent

EXCERPT_CHARS = 200


@dataclass(frozen=True, slots=True)
class Usage:
    """The token accounting a provider reported; `cost_usd` when the route reports it."""

    prompt_tokens: int | None
    completion_tokens: int | None
    cost_usd: float | None = None


@dataclass(frozen=True, slots=True)
class StreamError:
    """An error object sent inside a 200 stream (OpenRouter's mid-stream errors, vLLM's, ...)."""

    code: int | str | None
    message: str
    metadata: dict[str, Any] | None = None  # OpenRouter's `error.metadata`, for classify


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """One `delta.tool_calls[i]` fragment: a call's `index` and pieces of its function's name
    and arguments (the stream splits them over chunks; `quality.Capture` joins them)."""

    index: int
    name: str = ""
    arguments: str = ""


@dataclass(frozen=True, slots=True)
class Chunk:
    """One chat.completion.chunk, reduced to what a probe measures."""

    content: str = ""
    reasoning: str = ""
    tool_calls: tuple[ToolCallDelta, ...] = ()
    finish_reason: str | None = None
    usage: Usage | None = None
    error: StreamError | None = None
    provider: str | None = None
    sent_ns: int | None = None

    @property
    def has_token(self) -> bool:
        """Content-bearing: answer text, reasoning text or a tool call (TTFT counts these)."""
        return bool(self.content or self.reasoning or self.tool_calls)


@dataclass(frozen=True, slots=True)
class Done:
    """The `data: [DONE]` sentinel."""


@dataclass(frozen=True, slots=True)
class Malformed:
    """An event whose data is not a JSON object; `excerpt` is the start of it."""

    reason: str
    excerpt: str


DONE = Done()


def read_event(event: SSEEvent) -> Chunk | Done | Malformed:
    """Interpret one SSE event of a chat completion stream."""
    text = event.data
    if text.strip() == "[DONE]":
        return DONE
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        return Malformed(f"invalid JSON: {exc.msg}", text[:EXCERPT_CHARS])
    except ValueError as exc:  # e.g. numbers too long to convert
        return Malformed(f"invalid JSON: {exc}", text[:EXCERPT_CHARS])
    except RecursionError:
        return Malformed("invalid JSON: nested too deeply", text[:EXCERPT_CHARS])
    if not isinstance(obj, dict):
        return Malformed("JSON is not an object", text[:EXCERPT_CHARS])
    return _chunk(obj)


def _chunk(obj: dict[str, Any]) -> Chunk:
    content: list[str] = []
    reasoning: list[str] = []
    tool_calls: list[ToolCallDelta] = []
    finish_reason: str | None = None
    choices = obj.get("choices")
    if isinstance(choices, list):
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta")
            if isinstance(delta, dict):
                c = delta.get("content")
                if isinstance(c, str):
                    content.append(c)
                for key in ("reasoning", "reasoning_content"):
                    r = delta.get(key)
                    if isinstance(r, str):
                        reasoning.append(r)
                tc = delta.get("tool_calls")
                if isinstance(tc, list):
                    tool_calls.extend(_tool_call(i, item) for i, item in enumerate(tc))
            fr = choice.get("finish_reason")
            if isinstance(fr, str) and fr:
                finish_reason = fr
    sent = obj.get("x_sent_ns")
    provider = obj.get("provider")
    return Chunk(
        content="".join(content),
        reasoning="".join(reasoning),
        tool_calls=tuple(tool_calls),
        finish_reason=finish_reason,
        usage=_usage(obj.get("usage")),
        error=_error(obj.get("error")),
        provider=provider if isinstance(provider, str) else None,
        sent_ns=sent if isinstance(sent, int) else None,
    )


MAX_TOKENS = 2**31 - 1
MAX_TOOL_INDEX = 1023


def _tool_call(position: int, item: Any) -> ToolCallDelta:
    """A tool-call fragment; anything malformed still counts as one (a token), with no text."""
    if not isinstance(item, dict):
        return ToolCallDelta(position)
    index = item.get("index")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= MAX_TOOL_INDEX:
        index = position
    function = item.get("function")
    if not isinstance(function, dict):
        return ToolCallDelta(index)
    name, arguments = function.get("name"), function.get("arguments")
    if isinstance(arguments, dict | list):  # a provider that sends the object itself
        try:
            arguments = json.dumps(arguments)
        except (ValueError, TypeError, RecursionError):
            arguments = None
    return ToolCallDelta(
        index,
        name if isinstance(name, str) else "",
        arguments if isinstance(arguments, str) else "",
    )


def _int(value: Any) -> int | None:
    """A non-negative token count, or None for anything else (bools, inf, absurd sizes)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not 0 <= value <= MAX_TOKENS:  # also False for NaN; no float conversion of huge ints
        return None
    return int(value)


def _usage(value: Any) -> Usage | None:
    if not isinstance(value, dict):
        return None
    cost = value.get("cost")
    cost_usd = None
    if isinstance(cost, int | float) and not isinstance(cost, bool):
        try:
            cost = float(cost)
        except OverflowError:  # an int too large for a float
            cost = math.inf
        # Negative or non-finite: no cost at all; an absurd one is judged against prices later.
        cost_usd = cost if math.isfinite(cost) and cost >= 0 else None
    return Usage(_int(value.get("prompt_tokens")), _int(value.get("completion_tokens")), cost_usd)


def _error(value: Any) -> StreamError | None:
    if value is None or value is False:
        return None
    if isinstance(value, dict):
        code = value.get("code")
        message = value.get("message")
        metadata = value.get("metadata")
        if not isinstance(message, str):
            try:
                message = json.dumps(value)[:EXCERPT_CHARS]
            except (ValueError, TypeError, RecursionError):
                message = "error object"
        return StreamError(
            _code(code),
            message,
            metadata if isinstance(metadata, dict) else None,
        )
    try:
        return StreamError(None, str(value)[:EXCERPT_CHARS])
    except (ValueError, RecursionError):  # e.g. ints too long to print, nesting too deep
        return StreamError(None, "error value")


def _code(value: Any) -> int | str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if -MAX_TOKENS <= value <= MAX_TOKENS else None
    if isinstance(value, str):
        return value[:EXCERPT_CHARS]
    return None
