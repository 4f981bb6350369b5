"""Whether a quality probe's answer is usable: its tool calls, reassembled from the stream's
fragments, name a known tool with arguments that are JSON matching the tool's schema; its
structured answer is JSON matching the requested schema.

Pure: `Capture` keeps (bounded) what the stream delivered, `classify` judges it. The one place
provmon imports `jsonschema`.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator

from monitor.probing.chunks import Chunk, ToolCallDelta
from monitor.probing.tools import STRUCTURED_SCHEMA, TOOL_SCHEMAS

MAX_KEPT_CHARS = 64 * 1024
"""Answer text and tool-call arguments kept per probe; an answer beyond it is `invalid_json`
(no schema asks for anything near this size)."""
MAX_NAME_CHARS = 256
MAX_CALLS = 16


class Quality(enum.StrEnum):
    """A quality probe's verdict on its answer (only for probes whose outcome is ok)."""

    OK = "ok"
    INVALID_JSON = "invalid_json"  # arguments / answer are not JSON (or too long to keep)
    UNKNOWN_TOOL = "unknown_tool"  # a call names a function the request did not offer
    SCHEMA_MISMATCH = "schema_mismatch"  # valid JSON that does not match the schema
    NO_TOOL_CALL = "no_tool_call"  # a tool_call probe answered without calling a tool
    NO_STRUCTURED_OUTPUT = "no_structured_output"  # a structured probe answered nothing


_TOOL_VALIDATORS = {name: Draft202012Validator(s) for name, s in TOOL_SCHEMAS.items()}
_STRUCTURED_VALIDATOR = Draft202012Validator(STRUCTURED_SCHEMA)


@dataclass(slots=True)
class _Call:
    name: list[str] = field(default_factory=list)
    name_chars: int = 0
    arguments: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Capture:
    """What a quality probe's stream said: answer text and tool calls by index, at most
    `MAX_KEPT_CHARS` of both together; `overflow` once more came."""

    text: list[str] = field(default_factory=list)
    calls: dict[int, _Call] = field(default_factory=dict)
    kept_chars: int = 0
    overflow: bool = False

    def add(self, chunk: Chunk) -> None:
        if chunk.content:
            self._keep(self.text, chunk.content)
        for delta in chunk.tool_calls:
            self._add_call(delta)

    def _keep(self, into: list[str], piece: str) -> None:
        if self.overflow:
            return
        if self.kept_chars + len(piece) > MAX_KEPT_CHARS:
            self.overflow = True
            return
        self.kept_chars += len(piece)
        into.append(piece)

    def _add_call(self, delta: ToolCallDelta) -> None:
        call = self.calls.get(delta.index)
        if call is None:
            if len(self.calls) >= MAX_CALLS:
                self.overflow = True
                return
            call = self.calls[delta.index] = _Call()
        if delta.name and call.name_chars + len(delta.name) <= MAX_NAME_CHARS:
            call.name.append(delta.name)
            call.name_chars += len(delta.name)
        if delta.arguments:
            self._keep(call.arguments, delta.arguments)

    def tool_calls(self) -> list[tuple[str, str]]:
        """(name, arguments) of each call, in index order."""
        return [("".join(c.name), "".join(c.arguments)) for _, c in sorted(self.calls.items())]

    @property
    def answer(self) -> str:
        return "".join(self.text)


def classify(kind: str, capture: Capture) -> Quality:
    """The verdict on a finished stream of a `tool_call` or `structured` workload."""
    if kind == "tool_call":
        return _tool_call(capture)
    if kind == "structured":
        return _structured(capture)
    raise ValueError(f"not a quality workload kind: {kind!r}")


def _tool_call(capture: Capture) -> Quality:
    calls = [(name, args) for name, args in capture.tool_calls() if name or args]
    if not calls:
        return Quality.INVALID_JSON if capture.overflow else Quality.NO_TOOL_CALL
    if capture.overflow:
        return Quality.INVALID_JSON
    for name, args in calls:
        validator = _TOOL_VALIDATORS.get(name)
        if validator is None:
            return Quality.UNKNOWN_TOOL
        verdict = _check(args, validator)
        if verdict is not Quality.OK:
            return verdict
    return Quality.OK


def _structured(capture: Capture) -> Quality:
    if capture.overflow:
        return Quality.INVALID_JSON
    text = capture.answer
    if not text.strip():
        return Quality.NO_STRUCTURED_OUTPUT
    return _check(text, _STRUCTURED_VALIDATOR)


def _check(text: str, validator: Draft202012Validator) -> Quality:
    try:
        value: Any = json.loads(text)
    except (ValueError, RecursionError):  # JSONDecodeError is a ValueError
        return Quality.INVALID_JSON
    try:
        valid = validator.is_valid(value)
    except RecursionError:
        valid = False
    return Quality.OK if valid else Quality.SCHEMA_MISMATCH
