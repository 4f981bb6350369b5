"""Response plans: decide, purely and from a seeded RNG, the bytes and timing of one response.

A plan is what the server will do for one request: an HTTP status and headers, a list of timed
writes (`Step`s) and how the response ends, plus the ground truth it intends (`Intent`): the
outcome a correct monitor should record, the time to first token and the token counts. No I/O,
no clock: the caller passes the time since the farm started and a `random.Random`.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from monitor.results import Outcome
from monitor.simulator.answers import answer_plan, draw_quality
from monitor.simulator.profiles import ProviderProfile
from monitor.simulator.steps import (
    KEEPALIVE_COMMENT,
    PROCESSING_COMMENT,
    SENT_NS_PLACEHOLDER,
    Ending,
    Intent,
    Plan,
    PlanRequest,
    Route,
    Step,
    token_text,
)

__all__ = [
    "KEEPALIVE_COMMENT",
    "PROCESSING_COMMENT",
    "SENT_NS_PLACEHOLDER",
    "Ending",
    "Intent",
    "Plan",
    "PlanRequest",
    "Route",
    "Step",
    "error_plan",
    "outcome_for_status",
    "plan_response",
    "token_text",
]


def plan_response(
    profile: ProviderProfile, req: PlanRequest, rng: random.Random, *, elapsed_s: float
) -> Plan:
    """Decide the response of `profile` to `req`, `elapsed_s` after the farm started.

    Draws, in this order, the fault, the TTFT and the decode speed from `rng`. Rate limiting
    and request validation are the caller's; see `error_plan`.
    """
    u = rng.random()
    ttft_s = _lognormal(rng, profile.ttft_ms / 1000, profile.ttft_sigma)
    tps = _lognormal(rng, profile.tps, profile.tps_sigma)
    fault = "none"
    cumulative = 0.0
    for name, probability in profile.fault_probabilities:
        cumulative += probability
        if probability > 0 and u < cumulative:
            fault = name
            break
    for start_s, end_s in profile.outages:
        if start_s <= elapsed_s < end_s:
            fault = "outage_" + profile.outage_mode
    builder = _Builder(profile, req, ttft_s, tps)
    if req.answer != "text":  # drawn last, and only then: plain plans draw as before
        builder.quality = draw_quality(profile.quality_faults, req.answer, rng)
    return builder.build(fault)


def error_plan(
    status: int,
    message: str,
    *,
    route: Route = "direct",
    fault: str = "",
    retry_after_s: int | None = None,
    delay_s: float = 0.0,
    metadata: Mapping[str, Any] | None = None,
) -> Plan:
    """An HTTP error response (JSON body in OpenAI's shape, or OpenRouter's on that route,
    with its `metadata` when given)."""
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "application/json"),)
    if retry_after_s is not None:
        headers += (("Retry-After", str(retry_after_s)),)
    if route == "openrouter":
        error: dict[str, Any] = {"message": message, "code": status}
        if metadata is not None:
            error["metadata"] = dict(metadata)
    else:
        error = {"message": message, "type": _ERROR_TYPES.get(status, "api_error")}
        error |= {"param": None, "code": _ERROR_CODES.get(status)}
    body = json.dumps({"error": error}).encode()
    intent = Intent(
        status=status,
        outcome=outcome_for_status(status),
        fault=fault or f"http_{status}",
        ttft_s=None,
        output_tokens=0,
        reasoning_tokens=0,
        chunks=0,
        content="",
        finish_reason=None,
    )
    return Plan(status, headers, (Step(delay_s, body),), "done", intent)


def outcome_for_status(status: int) -> Outcome:
    """The outcome DESIGN.md section 3 gives an HTTP status."""
    if status == 200:
        return Outcome.OK
    if status == 429:
        return Outcome.RATE_LIMITED
    if status == 408 or status >= 500:
        return Outcome.SERVER_ERROR
    return Outcome.CLIENT_ERROR


_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    502: "server_error",
    503: "server_error",
}
_ERROR_CODES = {401: "invalid_api_key", 404: "model_not_found", 429: "rate_limit_exceeded"}
_HTTP_FAULTS = {"http_500": 500, "http_503": 503, "http_429": 429, "outage_http_503": 503}


def _lognormal(rng: random.Random, median: float, sigma: float) -> float:
    z = rng.normalvariate(0.0, 1.0)
    return median * math.exp(sigma * z) if sigma > 0 else median


@dataclass
class _Builder:
    """Builds one plan: timed events first (absolute times), merged into steps at the end."""

    profile: ProviderProfile
    req: PlanRequest
    ttft_s: float
    tps: float
    events: list[tuple[float, bytes, int, int]] = field(default_factory=list)
    tokens_sent: int = 0
    quality: str | None = None  # a quality answer: how it breaks ("ok" when it does not)
    answer: list[dict[str, Any]] = field(default_factory=list)  # its content deltas, in order

    # --- wire format -------------------------------------------------------------------
    @property
    def openrouter(self) -> bool:
        return self.req.route == "openrouter"

    @property
    def line_end(self) -> str:
        return "\n" if self.openrouter else self.profile.line_ending

    def comment(self, at_s: float, text: str) -> None:
        self.events.append((at_s, (text + self.line_end * 2).encode(), 0, 0))

    def data(self, at_s: float, obj: Mapping[str, Any], tokens: int = 0) -> None:
        text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
        if self.req.stamp_send_time:
            text = text[:-1] + ',"x_sent_ns":' + SENT_NS_PLACEHOLDER.decode() + "}"
        self.raw(at_s, text, tokens)

    def raw(self, at_s: float, payload: str, tokens: int = 0) -> None:
        prefix = "data: " if self.openrouter or self.profile.data_space else "data:"
        line = (prefix + payload + self.line_end * 2).encode()
        self.events.append((at_s, line, tokens, 1 if tokens else 0))
        self.tokens_sent += tokens

    def chunk(
        self, delta: Mapping[str, Any], finish: str | None = None, tokens: int = 0
    ) -> dict[str, Any]:
        """A `chat.completion.chunk` object; `tokens` is how many tokens `delta` carries."""
        choice = {"index": 0, "delta": dict(delta), "finish_reason": finish}
        out: dict[str, Any] = {
            "id": ("gen-" if self.openrouter else "chatcmpl-") + self.req.request_id,
            "object": "chat.completion.chunk",
            "created": self.req.created,
            "model": self.req.model,
            "choices": [choice],
        }
        if self.openrouter:
            out["provider"] = self.profile.provider_label
        elif self.profile.usage_mode == "every":
            out["usage"] = self.usage(self.tokens_sent + tokens)
        return out

    def usage(self, completion_tokens: int) -> dict[str, Any]:
        prompt_tokens = math.ceil(self.req.prompt_chars / 4)
        reasoning = min(completion_tokens, self.profile.reasoning_tokens)
        usage: dict[str, Any] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "completion_tokens_details": {"reasoning_tokens": reasoning},
        }
        if self.req.include_cost or self.openrouter:
            usage["cost"] = self.profile.cost_usd(prompt_tokens, completion_tokens)
        return usage

    def finish(self, at_s: float) -> None:
        """The usage-only chunk (when asked and sent that way) and `[DONE]` (when sent)."""
        final_usage = self.req.include_usage and (
            self.openrouter or self.profile.usage_mode == "final"
        )
        if final_usage:
            usage_chunk = self.chunk({}) | {"choices": [], "usage": self.usage(self.tokens_sent)}
            self.data(at_s, usage_chunk)
        if self.openrouter or self.profile.send_done:
            self.raw(at_s, "[DONE]")

    # --- plans ---------------------------------------------------------------------------
    def build(self, fault: str) -> Plan:
        if fault in _HTTP_FAULTS:
            return self.http_fault(fault, _HTTP_FAULTS[fault])
        if fault == "outage_refuse":
            if self.openrouter:
                return self.http_fault(fault, 502)
            intent = self.intent(None, Outcome.CONNECTION_ERROR, fault, None)
            return Plan(None, (), (), "cut", intent)
        if fault in ("hang", "outage_hang"):
            return self.hang(fault)
        return self.stream(fault)

    def intent(
        self, status: int | None, outcome: Outcome, fault: str, finish: str | None
    ) -> Intent:
        token_events = [e for e in self.events if e[2] > 0]
        reasoning = min(self.tokens_sent, self.profile.reasoning_tokens)
        content = "".join(token_text(i) for i in range(reasoning, self.tokens_sent))
        return Intent(
            status=status,
            outcome=outcome,
            fault=fault,
            ttft_s=token_events[0][0] if token_events else None,
            output_tokens=self.tokens_sent,
            reasoning_tokens=reasoning,
            chunks=len(token_events),
            content=content,
            finish_reason=finish,
            quality=self.quality if outcome is Outcome.OK else None,
        )

    def http_fault(self, fault: str, status: int) -> Plan:
        at_s = self.ttft_s / 2
        message = self.profile.error_message
        if not self.openrouter:
            retry = 1 if status == 429 else None
            plan = error_plan(status, message, fault=fault, retry_after_s=retry, delay_s=at_s)
            return plan
        self.processing(until_s=at_s)
        error = {"code": status, "message": message, "metadata": self.upstream(status)}
        self.data(at_s, self.chunk({"content": ""}, "error") | {"error": error})
        # A 429 passed on inside the stream is still a rate limit (provmon's classify_stream).
        outcome = Outcome.RATE_LIMITED if status == 429 else Outcome.STREAM_ERROR
        return self.plan(200, "done", self.intent(200, outcome, fault, "error"))

    def upstream(self, status: int) -> dict[str, Any]:
        """OpenRouter's `error.metadata` for a provider's error: its name and, as `raw`, the
        error body the provider sent OpenRouter (OpenRouter's ProviderErrorMetadata)."""
        raw = {
            "error": {
                "message": self.profile.error_message,
                "type": _ERROR_TYPES.get(status, "api_error"),
                "code": status,
            }
        }
        return {"provider_name": self.profile.provider_label, "raw": json.dumps(raw)}

    def hang(self, fault: str) -> Plan:
        intent = self.intent(200 if self.openrouter else None, Outcome.TIMEOUT, fault, None)
        if not self.openrouter:
            return Plan(None, (), (), "hang", intent)
        self.comment(0.0, PROCESSING_COMMENT)
        keepalive = (PROCESSING_COMMENT + "\n\n").encode()
        return self.plan(200, "hang", intent, keepalive=keepalive)

    def processing(self, until_s: float) -> None:
        """OpenRouter's `: OPENROUTER PROCESSING` comments from the start until `until_s`."""
        if not self.openrouter:
            return
        n = 0
        while n == 0 or (self.req.processing_s > 0 and n * self.req.processing_s < until_s):
            self.comment(n * self.req.processing_s, PROCESSING_COMMENT)
            n += 1

    def stream(self, fault: str) -> Plan:
        profile = self.profile
        natural = profile.reasoning_tokens + profile.output_tokens
        total = natural if self.req.max_tokens is None else min(natural, self.req.max_tokens)
        finish = "length" if total < natural else "stop"
        if fault == "empty":
            total = 0
        sizes = _chunk_sizes(min(total, profile.reasoning_tokens), profile.tokens_per_chunk)
        if self.quality is not None and total > sum(sizes):
            self.answer, more = answer_plan(
                self.req.answer, self.quality, total - sum(sizes), profile.tokens_per_chunk
            )
            sizes += more
        sizes += _chunk_sizes(total - sum(sizes), profile.tokens_per_chunk)
        # chunk j is written when its last token is ready, the first one at ttft_s
        times, ready = [], 0
        for size in sizes:
            ready += size
            times.append(self.ttft_s + (ready - sizes[0]) / self.tps)
        end_s = times[-1] if times else self.ttft_s
        if profile.buffered:
            times = [end_s] * len(times)
        broken = fault in ("stall", "cut", "stream_error", "finish_error")
        cut_at = max(1, len(sizes) // 2) if sizes else 0
        sent = cut_at if broken else len(sizes)
        comments = profile.sse_comments and not self.openrouter

        self.processing(until_s=times[0] if times else end_s)
        if comments:
            self.comment(0.0, KEEPALIVE_COMMENT)
            self.comment((times[0] if times else end_s) / 2, KEEPALIVE_COMMENT)
        if profile.role_first_chunk:
            role_s = end_s if profile.buffered else 0.0
            self.data(role_s, self.chunk({"role": "assistant", "content": ""}))
        for j in range(sent):
            last = j == len(sizes) - 1
            delta = self.token_delta(sizes[j])
            self.data(times[j], self.chunk(delta, finish if last else None, sizes[j]), sizes[j])
            if comments and j % 5 == 4:
                self.comment(times[j], KEEPALIVE_COMMENT)
            if fault == "garbage" and j == cut_at - 1:
                chunk_id = self.chunk({})["id"]
                self.raw(times[j], '{"id":"' + chunk_id + '","choices":[{"delta":{"content":" tr')
        after_s = times[sent] if sent < len(times) else end_s

        if fault == "stall":
            return self.plan(200, "stall", self.intent(200, Outcome.TIMEOUT, fault, None))
        if fault == "cut":
            return self.plan(200, "cut", self.intent(200, Outcome.STREAM_ERROR, fault, None))
        if fault == "stream_error":
            error: dict[str, Any] = {"code": 502, "message": profile.error_message}
            if self.openrouter:
                error["metadata"] = self.upstream(500)
                self.data(after_s, self.chunk({"content": ""}, "error") | {"error": error})
            else:
                self.data(after_s, {"error": error})
            return self.plan(200, "done", self.intent(200, Outcome.STREAM_ERROR, fault, "error"))
        if fault == "finish_error":
            self.data(after_s, self.chunk({}, "error"))
            self.finish(after_s)
            return self.plan(200, "done", self.intent(200, Outcome.STREAM_ERROR, fault, "error"))
        if not sizes:
            self.data(end_s, self.chunk({"content": ""}, finish))
        self.finish(end_s)
        if fault == "garbage" and sizes:
            outcome = Outcome.STREAM_ERROR
        elif sizes:
            outcome = Outcome.OK
        else:
            outcome = Outcome.EMPTY_RESPONSE
        return self.plan(200, "done", self.intent(200, outcome, fault, finish))

    def token_delta(self, size: int) -> dict[str, Any]:
        text = "".join(token_text(self.tokens_sent + i) for i in range(size))
        if self.tokens_sent < self.profile.reasoning_tokens:
            name = "reasoning" if self.openrouter else self.profile.reasoning_field
            return {name: text}
        if self.answer:
            return self.answer.pop(0)
        return {"content": text}

    def plan(self, status: int, ending: Ending, intent: Intent, keepalive: bytes = b"") -> Plan:
        """Merge events written at the same time into one step; times become delays."""
        steps: list[Step] = []
        previous_s = 0.0
        for at_s, data, tokens, chunks in sorted(self.events, key=lambda e: e[0]):
            if steps and at_s == previous_s:
                last = steps[-1]
                steps[-1] = Step(
                    last.delay_s, last.data + data, last.tokens + tokens, last.chunks + chunks
                )
            else:
                steps.append(Step(at_s - previous_s, data, tokens, chunks))
            previous_s = at_s
        headers = (("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache"))
        keepalive_s = self.req.processing_s if keepalive else 0.0
        return Plan(status, headers, tuple(steps), ending, intent, keepalive, keepalive_s)


def _chunk_sizes(tokens: int, per_chunk: int) -> list[int]:
    return [min(per_chunk, tokens - start) for start in range(0, tokens, per_chunk)]
