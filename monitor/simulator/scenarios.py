"""Ready-made farms: a small demo market for one model, and one provider per quirk or fault."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from monitor.simulator.farm import Farm
from monitor.simulator.profiles import ProviderProfile, ServedModel

DEMO_MODEL = "microsoft/wizardlm-2-8x22b"


def demo_farm(
    seed: int = 0,
    *,
    api_key: str | None = None,
    outage_start_s: float = 20.0,
    outage_duration_s: float = 15.0,
    price_change_s: float | None = None,
) -> Farm:
    """Four providers of `DEMO_MODEL` with distinct characters, sized for a 1–2 minute demo.

    Swiftly: fast and pricey, with two endpoints on the OpenRouter front (`swiftly/fp16`, and
    `swiftly/turbo`: faster still, dearer, shorter context; "Swiftly Turbo" on its own direct
    route). Budget: cheap and slow; from `price_change_s` (when given) its listed output price
    rises. Flaky: a scheduled outage (HTTP 503 from `outage_start_s` for `outage_duration_s`)
    and a few percent of errors. Throttled: rate limited to one request per 5 s (burst 2), with
    SSE keep-alive comments.
    """
    model = ServedModel(DEMO_MODEL)
    swiftly_model = (ServedModel(DEMO_MODEL, "wizardlm-2-8x22b-instruct"),)
    outage = (outage_start_s, outage_start_s + outage_duration_s)
    rise = {"output_usd_per_mtok": 0.5}
    changes = () if price_change_s is None else ((price_change_s, "budget", rise),)
    return Farm(
        (
            ProviderProfile(
                "Swiftly", "swiftly", swiftly_model,
                ttft_ms=250, ttft_sigma=0.25, tps=140, tps_sigma=0.1, tokens_per_chunk=3,
                output_tokens=80, input_usd_per_mtok=0.9, output_usd_per_mtok=0.9,
                context_length=65536, quantization="fp16", role_first_chunk=True,
            ),
            ProviderProfile(
                "Swiftly Turbo", "swiftly-turbo", swiftly_model, provider_name="Swiftly",
                tag="swiftly/turbo", ttft_ms=120, ttft_sigma=0.2, tps=260, tps_sigma=0.1,
                tokens_per_chunk=4, output_tokens=80, input_usd_per_mtok=1.6,
                output_usd_per_mtok=1.6, context_length=32768, quantization="fp8",
            ),
            ProviderProfile(
                "Budget", "budget", (model,),
                ttft_ms=900, ttft_sigma=0.4, tps=30, tps_sigma=0.2,
                output_tokens=80, input_usd_per_mtok=0.4, output_usd_per_mtok=0.4,
                context_length=32768, quantization="int4", max_completion_tokens=4096,
            ),
            ProviderProfile(
                "Flaky", "flaky", (model,),
                ttft_ms=450, ttft_sigma=0.5, tps=60, tps_sigma=0.3, tokens_per_chunk=2,
                output_tokens=80, input_usd_per_mtok=0.5, output_usd_per_mtok=0.6,
                p_http_500=0.03, p_stream_error=0.02, p_cut=0.01,
                error_message="upstream model worker crashed",
                outages=(outage,), outage_mode="http_503",
            ),
            ProviderProfile(
                "Throttled", "throttled", (model,),
                ttft_ms=350, ttft_sigma=0.2, tps=90, tps_sigma=0.1, tokens_per_chunk=2,
                output_tokens=80, input_usd_per_mtok=0.65, output_usd_per_mtok=0.65,
                rate_limit_rps=0.2, rate_limit_burst=2, sse_comments=True,
            ),
        ),
        seed=seed,
        api_key=api_key,
        listing_changes=changes,
    )  # fmt: skip


QUIRKS: dict[str, dict[str, Any]] = {
    "plain": {},
    "comments": {"sse_comments": True},
    "role-first": {"role_first_chunk": True},
    "reasoning": {"reasoning_tokens": 8},
    "reasoning-field": {"reasoning_tokens": 8, "reasoning_field": "reasoning"},
    "usage-every": {"usage_mode": "every"},
    "usage-none": {"usage_mode": "none"},
    "multi-token": {"tokens_per_chunk": 4},
    "error-after-200": {"p_stream_error": 1.0},
    "finish-error": {"p_finish_error": 1.0},
    "hang": {"p_hang": 1.0},
    "stall": {"p_stall": 1.0},
    "cut": {"p_cut": 1.0},
    "garbage": {"p_garbage": 1.0},
    "empty": {"p_empty": 1.0},
    "http-500": {"p_http_500": 1.0},
    "http-503": {"p_http_503": 1.0},
    "http-429": {"p_http_429": 1.0},
    "rate-limited": {"rate_limit_rps": 0.5, "rate_limit_burst": 1},
    "outage-refuse": {"outages": ((0.0, 1e9),), "outage_mode": "refuse"},
    "rejects-stream-options": {"reject_stream_options": True},
    "buffered": {"buffered": True},
    "crlf": {"line_ending": "\r\n"},
    "no-space": {"data_space": False},
    "no-done": {"send_done": False},
}


def quirks_farm(
    seed: int = 0,
    *,
    api_key: str | None = None,
    include_cost: bool = False,
    stamp_send_time: bool = False,
    processing_s: float = 0.05,
) -> Farm:
    """One provider per quirk or fault (probability 1), named by it, all serving `DEMO_MODEL`.

    Each is fast (TTFT 30 ms, 200 tokens/s, 20 output tokens) so tests stay quick; names equal
    slugs, so tests pin them either way. `QUIRKS` lists them with their settings.
    """
    base = ProviderProfile(
        "plain", "plain", (ServedModel(DEMO_MODEL),), ttft_ms=30, tps=200, output_tokens=20
    )
    profiles = tuple(
        replace(base, name=name, slug=name, **changes) for name, changes in QUIRKS.items()
    )
    return Farm(
        profiles,
        seed=seed,
        api_key=api_key,
        include_cost=include_cost,
        stamp_send_time=stamp_send_time,
        processing_s=processing_s,
    )
