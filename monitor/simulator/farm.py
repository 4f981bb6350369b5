"""The farm: its providers and per-provider state, turning each chat request into a plan and a
ground-truth record.

Pure: no aiohttp, no clock read. The server passes the request's bytes and arrival time in
`time.monotonic_ns()` and writes the returned plan.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from monitor.results import Outcome
from monitor.simulator.answers import answer_kind
from monitor.simulator.plan import Plan, PlanRequest, Route, Step, error_plan, plan_response
from monitor.simulator.profiles import ProviderProfile, ServedModel


@dataclass
class TokenBucket:
    """A token bucket: `rate_per_s` tokens a second, at most `capacity`; one per request."""

    rate_per_s: float
    capacity: float
    tokens: float = -1.0
    last_s: float = 0.0

    def take(self, now_s: float) -> float | None:
        """Take a token; None when allowed, else the seconds until one is available."""
        if self.tokens < 0:
            self.tokens, self.last_s = self.capacity, now_s
        self.tokens = min(self.capacity, self.tokens + (now_s - self.last_s) * self.rate_per_s)
        self.last_s = now_s
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return None
        return (1.0 - self.tokens) / self.rate_per_s


@dataclass
class TruthRecord:
    """What the farm intended for one request, and what the server actually wrote.

    Intended: `status` (None: no response head), `outcome`, `fault`, `ttft_s` (from arrival),
    `output_tokens` (reasoning included), `chunks` (token-bearing events), `content` (the
    answer text, reasoning excluded) and `ending`.

    `*_ns` are `time.monotonic_ns()` values (CLOCK_MONOTONIC, comparable with
    `perf_counter_ns` in another process on Linux). `closed_by` is "server" when the plan ran to
    its end (done or cut), "client" when the client went away first, "shutdown" when the server
    stopped first; None while in flight. `closed_ns` is when that happened.
    """

    request_id: str
    provider: str
    route: Route
    model: str
    arrival_ns: int
    status: int | None
    outcome: Outcome
    fault: str
    ttft_s: float | None
    output_tokens: int
    chunks: int
    content: str
    ending: str
    tokens_written: int = 0
    chunks_written: int = 0
    first_token_ns: int | None = None
    last_token_ns: int | None = None
    closed_by: str | None = None
    closed_ns: int | None = None
    quality: str | None = None  # an ok quality answer: what `quality.classify` should say

    def close(self, by: str, now_ns: int) -> None:
        """The request ended at `now_ns`, by `by`; the first ending counts."""
        if self.closed_by is None:
            self.closed_by, self.closed_ns = by, now_ns

    def wrote(self, step: Step, now_ns: int) -> None:
        """Account for `step`, written at `now_ns`."""
        if step.tokens:
            self.tokens_written += step.tokens
            self.chunks_written += step.chunks
            if self.first_token_ns is None:
                self.first_token_ns = now_ns
            self.last_token_ns = now_ns

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types; `outcome` as its string value."""
        return asdict(self) | {"outcome": self.outcome.value}


@dataclass
class Farm:
    """Simulated providers behind one server, with the state the simulation needs.

    `seed` makes every provider's sequence of plans reproducible (one RNG per provider).
    `api_key`, when set, is required as `Authorization: Bearer <key>`. `include_cost` adds
    `usage.cost` on the direct routes too. `stamp_send_time` adds `x_sent_ns` to every data
    chunk. `processing_s` is the interval of the OpenRouter front's processing comments.
    `start_ns` (monotonic) is the origin of the outage windows; the server sets it when None.
    `created` is the Unix time chunks report at the farm's start (no wall clock is read).
    `truth` keeps the latest `max_truth` records (oldest dropped first). `listing_changes` are
    (at_s, slug, {field: value}): from `at_s` after the start, the endpoints listing shows that
    profile with those catalogue fields changed (its price, quantization, context, ...).
    """

    profiles: tuple[ProviderProfile, ...]
    seed: int = 0
    api_key: str | None = None
    include_cost: bool = False
    stamp_send_time: bool = False
    processing_s: float = 0.2
    start_ns: int | None = None
    created: int = 1_713_225_600
    max_truth: int = 100_000
    listing_changes: tuple[tuple[float, str, dict[str, Any]], ...] = ()
    truth: list[TruthRecord] = field(default_factory=list, init=False)
    _rngs: dict[str, random.Random] = field(default_factory=dict, init=False, repr=False)
    _buckets: dict[str, TokenBucket] = field(default_factory=dict, init=False, repr=False)
    _count: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        slugs = [p.slug for p in self.profiles]
        if len(set(slugs)) != len(slugs):
            raise ValueError(f"provider slugs must be unique: {slugs}")
        if not self.processing_s > 0:
            raise ValueError("processing_s must be > 0")

    def reset(self, now_ns: int | None = None) -> None:
        """Forget the truth log, RNG and rate-limit state; restart the clock when given."""
        self.truth.clear()
        self._rngs.clear()
        self._buckets.clear()
        self._count = 0
        if now_ns is not None:
            self.start_ns = now_ns

    def profile(self, name_or_slug: str) -> ProviderProfile | None:
        """The provider with this slug or (case-insensitive) name."""
        wanted = name_or_slug.casefold()
        for profile in self.profiles:
            if wanted in (profile.slug, profile.name.casefold()):
                return profile
        return None

    def listed(self, profile: ProviderProfile, now_ns: int) -> ProviderProfile:
        """`profile` as the endpoints listing shows it at `now_ns` (its `listing_changes`)."""
        elapsed_s = (now_ns - (self.start_ns or now_ns)) / 1e9
        for at_s, slug, changes in self.listing_changes:
            if slug == profile.slug and elapsed_s >= at_s:
                profile = replace(profile, **changes)
        return profile

    def model_ids(self) -> list[str]:
        """Every OpenRouter model id some provider serves, in first-seen order."""
        return list(dict.fromkeys(m.id for p in self.profiles for m in p.models))

    def providers_of(self, model_id: str) -> list[ProviderProfile]:
        """The providers serving `model_id` (an OpenRouter id)."""
        return [p for p in self.profiles if any(m.id == model_id for m in p.models)]

    def plan_chat(
        self,
        route: Route,
        slug: str | None,
        authorization: str | None,
        body: bytes,
        now_ns: int,
    ) -> tuple[Plan, TruthRecord]:
        """Decide the answer to one chat-completions request and log its ground truth.

        `slug` is the provider of a direct route (None on the OpenRouter front).
        """
        self._count += 1
        request_id = f"sim-{self._count:06d}"
        profile, model, plan = self._decide(route, slug, authorization, body, request_id, now_ns)
        intent = plan.intent
        record = TruthRecord(
            request_id=request_id,
            provider=profile.name if profile else "",
            route=route,
            model=model,
            arrival_ns=now_ns,
            status=intent.status,
            outcome=intent.outcome,
            fault=intent.fault,
            ttft_s=intent.ttft_s,
            output_tokens=intent.output_tokens,
            chunks=intent.chunks,
            content=intent.content,
            ending=plan.ending,
            quality=intent.quality,
        )
        self.truth.append(record)
        if len(self.truth) > self.max_truth * 1.1:
            del self.truth[: len(self.truth) - self.max_truth]
        return plan, record

    def _decide(
        self,
        route: Route,
        slug: str | None,
        authorization: str | None,
        body: bytes,
        request_id: str,
        now_ns: int,
    ) -> tuple[ProviderProfile | None, str, Plan]:
        """(provider, model, plan): the checks a gateway makes, then the provider's own plan."""
        if self.api_key is not None and authorization != f"Bearer {self.api_key}":
            return (
                None,
                "",
                error_plan(401, "Invalid or missing API key", route=route, fault="auth"),
            )
        request = _parse_request(body)
        if isinstance(request, str):
            return None, "", error_plan(400, request, route=route, fault="bad_request")
        model: str = request["model"]

        if route == "direct":
            profile = self.profile(slug or "")
            served = profile.serves(model) if profile else None
            if profile is None or served is None:
                message = f"The model `{model}` does not exist"
                return None, model, error_plan(404, message, fault="model")
        else:
            chosen = self._route_openrouter(model, request.get("provider"))
            if isinstance(chosen, Plan):
                return None, model, chosen
            profile, served = chosen

        retry_after_s = self._throttle(profile, now_ns)
        if retry_after_s is not None:
            message = f"Rate limit exceeded for {profile.name}; retry after {retry_after_s}s"
            plan = error_plan(
                429, message, route=route, fault="rate_limit", retry_after_s=retry_after_s
            )
            return profile, model, plan
        openrouter = route == "openrouter"
        if profile.reject_stream_options and not openrouter and "stream_options" in request:
            message = "Unrecognized request argument supplied: stream_options"
            return profile, model, error_plan(400, message, fault="stream_options")

        stream_options, usage = request.get("stream_options"), request.get("usage")
        include_usage = isinstance(stream_options, dict) and bool(
            stream_options.get("include_usage")
        )
        if openrouter and isinstance(usage, dict) and usage.get("include"):
            include_usage = True
        elapsed_s = (now_ns - (self.start_ns or now_ns)) / 1e9
        plan_request = PlanRequest(
            request_id=request_id,
            model=served.id if openrouter else served.direct_id,
            prompt_chars=_prompt_chars(request["messages"]),
            max_tokens=request.get("max_tokens", request.get("max_completion_tokens")),
            include_usage=include_usage,
            has_stream_options="stream_options" in request,
            route=route,
            include_cost=self.include_cost,
            stamp_send_time=self.stamp_send_time,
            created=self.created + int(elapsed_s),
            processing_s=self.processing_s,
            answer=answer_kind(request),
        )
        rng = self._rngs.setdefault(profile.slug, random.Random(f"{self.seed}/{profile.slug}"))
        return (
            profile,
            plan_request.model,
            plan_response(profile, plan_request, rng, elapsed_s=elapsed_s),
        )

    def _throttle(self, profile: ProviderProfile, now_ns: int) -> int | None:
        """None when the provider's rate limit lets the request in, else Retry-After seconds."""
        if profile.rate_limit_rps is None:
            return None
        capacity = profile.rate_limit_burst or max(1.0, profile.rate_limit_rps)
        bucket = self._buckets.setdefault(
            profile.slug, TokenBucket(profile.rate_limit_rps, capacity)
        )
        wait_s = bucket.take(now_ns / 1e9)
        return None if wait_s is None else max(1, math.ceil(wait_s))

    def _route_openrouter(
        self, model: str, preferences: Any
    ) -> tuple[ProviderProfile, ServedModel] | Plan:
        """The endpoint the OpenRouter front sends `model` to, or the error OpenRouter answers.

        `provider` preferences as OpenRouter documents them: `only`, `ignore` and `order` name
        endpoints by tag (`swiftly/turbo`: that endpoint) or providers by slug or name (every
        endpoint of that provider), `quantizations` filters by quantization, `allow_fallbacks`
        false keeps to `order`. A pin that leaves no endpoint is OpenRouter's 404 with the
        available and requested providers in its metadata.
        """
        candidates = self.providers_of(model)
        if not candidates:
            return error_plan(404, f"Model {model} not found", route="openrouter", fault="model")
        prefs = preferences if isinstance(preferences, dict) else {}
        lists: dict[str, list[str]] = {}
        for name in ("only", "ignore", "order", "quantizations"):
            value = prefs.get(name)
            if value is None:
                continue
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                message = f"Invalid provider preferences: `{name}` must be a list of strings"
                return error_plan(400, message, route="openrouter", fault="bad_request")
            lists[name] = value
        available = sorted({p.provider_slug for p in candidates})
        if lists.get("only"):
            candidates = [p for p in candidates if any(map(p.answers_to, lists["only"]))]
        if lists.get("ignore"):
            candidates = [p for p in candidates if not any(map(p.answers_to, lists["ignore"]))]
        if lists.get("quantizations"):
            wanted = {q.casefold() for q in lists["quantizations"]}
            candidates = [p for p in candidates if p.quantization.casefold() in wanted]
        order = lists.get("order", [])
        ranked = [p for pin in order for p in candidates if p.answers_to(pin)]
        if order and prefs.get("allow_fallbacks") is False:
            candidates = list(dict.fromkeys(ranked))
        if not candidates:
            requested = lists.get("only") or order or lists.get("quantizations") or []
            return error_plan(
                404,
                "No allowed providers are available for the selected model.",
                route="openrouter",
                fault="model",
                metadata={"available_providers": available, "requested_providers": requested},
            )
        rng = self._rngs.setdefault("", random.Random(f"{self.seed}/openrouter"))
        if ranked and ranked[0] in candidates:
            profile = ranked[0]
        else:
            profile = candidates[0] if len(candidates) == 1 else rng.choice(candidates)
        served = profile.serves(model)
        assert served is not None
        return profile, served


def _parse_request(body: bytes) -> dict[str, Any] | str:
    """The chat request as a dict, or why it is invalid."""
    try:
        request = json.loads(body)
    except ValueError:
        return "The request body is not valid JSON"
    if not isinstance(request, dict):
        return "The request body must be a JSON object"
    if not isinstance(request.get("model"), str) or not request["model"]:
        return "`model` is required"
    if not isinstance(request.get("messages"), list) or not request["messages"]:
        return "`messages` must be a non-empty list"
    if request.get("stream") is not True:
        return "The simulator only serves streamed completions (`stream: true`)"
    max_tokens = request.get("max_tokens", request.get("max_completion_tokens"))
    if max_tokens is not None and (type(max_tokens) is not int or max_tokens < 1):
        return "`max_tokens` must be a positive integer"
    return request


def _prompt_chars(messages: Any) -> int:
    """Characters of text in the messages (string contents and text parts)."""
    total = 0
    for message in messages if isinstance(messages, list) else ():
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            total += len(content)
        elif isinstance(content, list):
            total += sum(len(p.get("text", "")) for p in content if isinstance(p, dict))
    return total
