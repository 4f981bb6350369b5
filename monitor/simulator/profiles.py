"""Provider profiles: the frozen, validated description of how one simulated provider behaves."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from monitor.simulator.answers import QUALITY_FAULTS

OutageMode = Literal["http_503", "hang", "refuse"]
UsageMode = Literal["final", "every", "none"]
ReasoningField = Literal["reasoning_content", "reasoning"]

_SLUG = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_FAULTS = (
    "p_http_500",
    "p_http_503",
    "p_http_429",
    "p_hang",
    "p_stall",
    "p_cut",
    "p_stream_error",
    "p_finish_error",
    "p_garbage",
    "p_empty",
)


@dataclass(frozen=True, slots=True)
class ServedModel:
    """One model a provider serves: its OpenRouter id and, optionally, the provider's own name."""

    id: str
    provider_model: str | None = None

    @property
    def direct_id(self) -> str:
        """The model id the provider's own (direct) API lists and echoes."""
        return self.provider_model or self.id


@dataclass(frozen=True, slots=True)
class ProviderProfile:
    """How one provider answers: timing, faults, outages, rate limit and wire-format quirks.

    Times are medians of lognormal distributions (`*_sigma` = 0 makes them exact). Fault
    probabilities are per request, drawn once; they must sum to at most 1. `outages` are
    (start_s, end_s) windows relative to the farm's start.

    On the OpenRouter front a profile is one endpoint: `tag` (default `slug/quantization`) of
    the provider `provider_name` (default `name`). Two profiles with one `provider_name` are
    two endpoints of one provider, e.g. `swiftly/fp16` and `swiftly/turbo`.
    """

    name: str
    slug: str
    models: tuple[ServedModel, ...]
    # timing and size
    ttft_ms: float = 200.0
    ttft_sigma: float = 0.0
    tps: float = 100.0
    tps_sigma: float = 0.0
    tokens_per_chunk: int = 1
    output_tokens: int = 100
    # catalogue
    input_usd_per_mtok: float = 0.5
    output_usd_per_mtok: float = 0.5
    context_length: int = 65536
    max_completion_tokens: int | None = None
    quantization: str = "fp8"
    tag: str | None = None
    provider_name: str | None = None
    # fault mix, probabilities per request
    p_http_500: float = 0.0
    p_http_503: float = 0.0
    p_http_429: float = 0.0
    p_hang: float = 0.0
    p_stall: float = 0.0
    p_cut: float = 0.0
    p_stream_error: float = 0.0
    p_finish_error: float = 0.0
    p_garbage: float = 0.0
    p_empty: float = 0.0
    error_message: str = "Upstream provider error"
    # quality probes: (way the answer breaks, probability), e.g. (("invalid_json", 0.1),)
    quality_faults: tuple[tuple[str, float], ...] = ()
    outages: tuple[tuple[float, float], ...] = ()
    outage_mode: OutageMode = "http_503"
    rate_limit_rps: float | None = None
    rate_limit_burst: float | None = None
    # wire-format quirks
    sse_comments: bool = False
    role_first_chunk: bool = False
    reasoning_tokens: int = 0
    reasoning_field: ReasoningField = "reasoning_content"
    usage_mode: UsageMode = "final"
    reject_stream_options: bool = False
    buffered: bool = False
    line_ending: Literal["\n", "\r\n"] = "\n"
    data_space: bool = True
    send_done: bool = True

    def __post_init__(self) -> None:
        problems = []
        if not _SLUG.match(self.slug):
            problems.append(f"slug {self.slug!r} is not url-safe (a-z, 0-9, '.', '_', '-')")
        if not all(_SLUG.match(part) for part in self.endpoint_tag.split("/")):
            problems.append(f"tag {self.endpoint_tag!r} must be slug/name, each url-safe")
        if not self.models:
            problems.append("models is empty")
        if not self.ttft_ms >= 0 or not self.ttft_sigma >= 0 or not self.tps_sigma >= 0:
            problems.append("ttft_ms and the sigmas must be >= 0")
        if not (self.tps > 0 and math.isfinite(self.tps)):
            problems.append("tps must be a positive finite number")
        if self.tokens_per_chunk < 1 or self.output_tokens < 0 or self.reasoning_tokens < 0:
            problems.append("tokens_per_chunk must be >= 1, output and reasoning tokens >= 0")
        probabilities = [getattr(self, name) for name in _FAULTS]
        if any(not 0.0 <= p <= 1.0 for p in probabilities) or sum(probabilities) > 1.0 + 1e-9:
            problems.append("fault probabilities must each be in [0, 1] and sum to at most 1")
        names = [name for name, _ in self.quality_faults]
        shares = [p for _, p in self.quality_faults]
        if any(n not in QUALITY_FAULTS for n in names) or len(set(names)) < len(names):
            problems.append(f"quality_faults names each of {tuple(QUALITY_FAULTS)} at most once")
        if any(not 0.0 <= p <= 1.0 for p in shares) or sum(shares) > 1.0 + 1e-9:
            problems.append("quality_faults probabilities must be in [0, 1] and sum to at most 1")
        if any(not 0 <= start < end for start, end in self.outages):
            problems.append("outages must be (start_s, end_s) with 0 <= start_s < end_s")
        if self.rate_limit_rps is not None and not self.rate_limit_rps > 0:
            problems.append("rate_limit_rps must be > 0 (or None for no limit)")
        checks = {
            "outage_mode": ("http_503", "hang", "refuse"),
            "usage_mode": ("final", "every", "none"),
            "reasoning_field": ("reasoning_content", "reasoning"),
            "line_ending": ("\n", "\r\n"),
        }
        for name, allowed in checks.items():
            if getattr(self, name) not in allowed:
                problems.append(f"{name} must be one of {allowed}")
        if problems:
            raise ValueError(f"profile {self.name!r}: " + "; ".join(problems))

    @property
    def endpoint_tag(self) -> str:
        """The endpoint's tag on the OpenRouter front."""
        return self.tag or f"{self.slug}/{self.quantization}"

    @property
    def provider_label(self) -> str:
        """The provider's name on the OpenRouter front (endpoints share it)."""
        return self.provider_name or self.name

    @property
    def provider_slug(self) -> str:
        """The provider's slug on the OpenRouter front: the tag up to its `/`."""
        return self.endpoint_tag.partition("/")[0]

    def answers_to(self, pin: str) -> bool:
        """A `provider.only`/`order`/`ignore` entry names this endpoint: its tag, or its
        provider's slug or name (those name every endpoint of the provider); any case."""
        wanted = pin.casefold()
        return wanted in (
            self.endpoint_tag.casefold(),
            self.provider_slug.casefold(),
            self.provider_label.casefold(),
        )

    @property
    def fault_probabilities(self) -> tuple[tuple[str, float], ...]:
        """(fault name, probability) in the fixed order the plan draws them."""
        return tuple((name.removeprefix("p_"), getattr(self, name)) for name in _FAULTS)

    def serves(self, model_id: str) -> ServedModel | None:
        """The served model with this OpenRouter id or provider-specific name, if any."""
        for served in self.models:
            if model_id in (served.id, served.direct_id):
                return served
        return None

    def cost_usd(self, prompt_tokens: int, completion_tokens: int) -> float:
        """What a request costs at this provider's prices."""
        return (
            prompt_tokens * self.input_usd_per_mtok + completion_tokens * self.output_usd_per_mtok
        ) / 1e6
