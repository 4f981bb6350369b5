"""The shapes of a response plan: the request it answers, its timed writes (`Step`s), the ground
truth it intends (`Intent`), the `Plan` itself, and the word list answers are made of. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from monitor.results import Outcome
from monitor.simulator.answers import AnswerKind

Route = Literal["direct", "openrouter"]
Ending = Literal["done", "stall", "cut", "hang"]

# Replaced by the server with `time.monotonic_ns()` right before the write (stamp_send_time).
SENT_NS_PLACEHOLDER = b"__X_SENT_NS__"
PROCESSING_COMMENT = ": OPENROUTER PROCESSING"
KEEPALIVE_COMMENT = ": keep-alive"

_VOCABULARY = (
    "time data fast slow word text test mode path node host port code rate load disk file line"
    " page site user list item plan task step unit zone"
)
_WORDS = tuple(" " + word for word in _VOCABULARY.split())


def token_text(index: int) -> str:
    """The text of output token number `index`: a short word with a leading space (5 chars)."""
    return _WORDS[index % len(_WORDS)]


@dataclass(frozen=True, slots=True)
class PlanRequest:
    """What the client asked for, and how the farm answers it (route and farm-wide switches).

    `include_usage` is `stream_options.include_usage` (or, on the OpenRouter front, also
    `usage.include`); `has_stream_options` is whether the body carried `stream_options` at all.
    `created` is the Unix time (s) echoed in chunks. `processing_s` is the interval between
    `: OPENROUTER PROCESSING` comments on the OpenRouter front.
    """

    request_id: str
    model: str
    prompt_chars: int
    max_tokens: int | None = None
    include_usage: bool = False
    has_stream_options: bool = False
    route: Route = "direct"
    include_cost: bool = False
    stamp_send_time: bool = False
    created: int = 0
    processing_s: float = 0.2
    answer: AnswerKind = "text"  # a quality probe's request: tools or a JSON Schema format


@dataclass(frozen=True, slots=True)
class Step:
    """One write: wait `delay_s` after the previous step, write `data`; it carries `tokens`
    output tokens in `chunks` token-bearing events."""

    delay_s: float
    data: bytes
    tokens: int = 0
    chunks: int = 0


@dataclass(frozen=True, slots=True)
class Intent:
    """The ground truth a plan intends: what a correct monitor should measure for it.

    `status` is None when no response head is ever sent. `ttft_s` counts from the request's
    arrival to the first token-bearing write. `output_tokens` includes reasoning tokens.
    `fault` names why the response is not a plain success ("none" when it is).
    """

    status: int | None
    outcome: Outcome
    fault: str
    ttft_s: float | None
    output_tokens: int
    reasoning_tokens: int
    chunks: int
    content: str
    finish_reason: str | None
    quality: str | None = None  # what `quality.classify` should say of an ok quality answer


@dataclass(frozen=True, slots=True)
class Plan:
    """The whole response: head, timed writes, how it ends, and what it intends.

    For a non-200 status the single step holds the JSON body. `status` None means no response
    head at all: with `ending` "hang" the connection is held open silently, with "cut" it is
    dropped at once (refuse-like). After a 200's steps, "cut" aborts the connection mid-body;
    "stall" and "hang" wait until the client goes away, writing `keepalive` every `keepalive_s`
    when it is not empty.
    """

    status: int | None
    headers: tuple[tuple[str, str], ...]
    steps: tuple[Step, ...]
    ending: Ending
    intent: Intent
    keepalive: bytes = b""
    keepalive_s: float = 0.0

    @property
    def body(self) -> bytes:
        """Every byte the steps write."""
        return b"".join(step.data for step in self.steps)
