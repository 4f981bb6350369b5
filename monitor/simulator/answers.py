"""What a simulated provider answers to a quality probe: a tool call or a structured answer,
correct or broken in one of the ways `monitor.probing.quality` tells apart. Pure.

A profile's `quality_faults` gives each way a probability; the ways that do not apply to the
request's kind (`no_tool_call` to a structured request, `no_structured_output` to a tool call)
are skipped, their share answers correctly.
"""

from __future__ import annotations

import json
import random
from typing import Any, Literal

AnswerKind = Literal["text", "tool_call", "structured"]

QUALITY_FAULTS: dict[str, tuple[AnswerKind, ...]] = {
    "invalid_json": ("tool_call", "structured"),
    "unknown_tool": ("tool_call",),
    "schema_mismatch": ("tool_call", "structured"),
    "no_tool_call": ("tool_call",),
    "no_structured_output": ("structured",),
}
"""Each way an answer breaks, and the request kinds it applies to."""

MAX_PIECES = 8
"""A quality answer is written in at most this many content chunks."""

_WEATHER = {"city": "Lisbon", "unit": "celsius"}
_CITY = {"city": "Lisbon", "country": "Portugal", "population": 545000, "coastal": True}


def answer_kind(request: dict[str, Any]) -> AnswerKind:
    """tool_call when the request offers tools (and does not forbid calling them), structured
    when it asks for a JSON Schema `response_format`, text otherwise."""
    tools = request.get("tools")
    if isinstance(tools, list) and tools and request.get("tool_choice") != "none":
        return "tool_call"
    fmt = request.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") in ("json_schema", "json_object"):
        return "structured"
    return "text"


def draw_quality(
    faults: tuple[tuple[str, float], ...], kind: AnswerKind, rng: random.Random
) -> str:
    """The way this answer breaks ("ok" when it does not); draws once from `rng`."""
    u = rng.random()
    cumulative = 0.0
    for name, probability in faults:
        if kind not in QUALITY_FAULTS[name]:
            continue
        cumulative += probability
        if probability > 0 and u < cumulative:
            return name
    return "ok"


def answer_deltas(kind: AnswerKind, quality: str, pieces: int) -> list[dict[str, Any]]:
    """The `delta` of each of `pieces` (>= 1) content chunks of the answer: tool-call fragments
    (the first with the call's id and name) or answer text."""
    if kind == "tool_call" and quality != "no_tool_call":
        name = "get_forecast" if quality == "unknown_tool" else "get_weather"
        args = json.dumps(_WEATHER)
        if quality == "invalid_json":
            args = args[: len(args) // 2]  # cut mid-object
        elif quality == "schema_mismatch":
            args = json.dumps({"city": "Lisbon", "unit": "kelvin"})
        frags = _split(args, pieces)
        deltas: list[dict[str, Any]] = []
        for i, frag in enumerate(frags):
            call: dict[str, Any] = {"index": 0, "function": {"arguments": frag}}
            if i == 0:
                call |= {"id": "call_sim", "type": "function"}
                call["function"]["name"] = name
            deltas.append({"tool_calls": [call]})
        return deltas
    text = _text(kind, quality)
    return [{"content": piece} for piece in _split(text, pieces)]


def answer_plan(
    kind: AnswerKind, quality: str, tokens: int, tokens_per_chunk: int
) -> tuple[list[dict[str, Any]], list[int]]:
    """The answer's deltas and the tokens each chunk carries (`tokens` >= 1 in all, in at most
    `MAX_PIECES` chunks)."""
    pieces = min(MAX_PIECES, tokens, -(-tokens // tokens_per_chunk))
    deltas = answer_deltas(kind, quality, pieces)
    n = len(deltas)
    return deltas, [tokens // n + (1 if i < tokens % n else 0) for i in range(n)]


def _text(kind: AnswerKind, quality: str) -> str:
    if kind == "tool_call":  # no_tool_call: the model talks instead
        return "I would look up the weather in Lisbon, but I will not call a tool."
    if quality == "no_structured_output":
        return "\n \n"  # whitespace, no JSON at all
    if quality == "invalid_json":
        return "```json\n" + json.dumps(_CITY) + "\n```"
    if quality == "schema_mismatch":
        return json.dumps(_CITY | {"population": "about half a million"})
    return json.dumps(_CITY)


def _split(text: str, pieces: int) -> list[str]:
    """`text` in `pieces` non-empty parts (fewer when it is shorter)."""
    n = max(1, min(pieces, len(text)))
    step, extra = divmod(len(text), n)
    out, start = [], 0
    for i in range(n):
        end = start + step + (1 if i < extra else 0)
        out.append(text[start:end])
        start = end
    return out
