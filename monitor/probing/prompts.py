"""Builds the request body of a probe: a prompt of the workload's size made unique by a nonce;
a quality workload's body also carries its tool set or its `response_format` (`tools`)."""

from __future__ import annotations

import secrets
from typing import Any

from monitor.config import Target, Workload
from monitor.probing.tokens import estimate_tokens
from monitor.probing.tools import STRUCTURED_ASK, TOOL_ASK, TOOLS, response_format

# A neutral filler text; words of about one token each.
_FILLER = (
    "the river runs past old stone walls where merchants once traded salt wool and copper "
    "while children watched boats drift slowly toward the harbour under a pale morning sky "
).split()
_ASK_SHORT = "Reply with the single word OK."
_ASK_LONG = "Continue the story above in plain prose, as long as you can."


def new_nonce() -> str:
    """A random tag that makes each prompt unique, so no cache can answer it."""
    return secrets.token_hex(8)


def build_prompt(workload: Workload, nonce: str) -> str:
    """About `workload.input_tokens` tokens: a nonce, filler, and the instruction."""
    if workload.kind == "tool_call":
        ask = TOOL_ASK
    elif workload.kind == "structured":
        ask = STRUCTURED_ASK
    else:
        ask = _ASK_SHORT if workload.max_tokens <= 4 else _ASK_LONG
    head = f"[probe {nonce}] "
    budget = workload.input_tokens - estimate_tokens(head + ask)
    words = [_FILLER[i % len(_FILLER)] for i in range(max(0, budget))]
    body = " ".join(words)
    return f"{head}{body}{'. ' if body else ''}{ask}"


def build_body(
    target: Target, workload: Workload, nonce: str, *, stream_options: bool
) -> dict[str, Any]:
    """The JSON body of a streamed chat completion for this target."""
    body: dict[str, Any] = {
        "model": target.request_model,
        "messages": [{"role": "user", "content": build_prompt(workload, nonce)}],
        "max_tokens": workload.max_tokens,
        "stream": True,
        "temperature": 0,
    }
    if workload.kind == "tool_call":
        body["tools"] = TOOLS
        body["tool_choice"] = workload.tool_choice
    elif workload.kind == "structured":
        body["response_format"] = response_format()
    if stream_options:
        body["stream_options"] = {"include_usage": True}
    if target.pinned:
        body["provider"] = {"only": [target.pin], "allow_fallbacks": False}
        body["usage"] = {"include": True}
    return body
