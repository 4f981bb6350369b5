"""Catalogue JSON: the OpenAI `/v1/models` list and OpenRouter's models and endpoints shapes."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from monitor.results import Outcome
from monitor.simulator.farm import Farm, TruthRecord
from monitor.simulator.profiles import ProviderProfile
from monitor.stats import PERCENTILES, tail_percentile

_ARCHITECTURE = {
    "modality": "text->text",
    "input_modalities": ["text"],
    "output_modalities": ["text"],
    "tokenizer": "Other",
    "instruct_type": None,
}
_PARAMETERS = ["max_tokens", "temperature", "top_p", "stop", "seed", "stream_options"]


def direct_models_json(farm: Farm, profile: ProviderProfile) -> dict[str, Any]:
    """`GET /{slug}/v1/models`: the provider's own model list, OpenAI's shape."""
    data = [
        {"id": m.direct_id, "object": "model", "created": farm.created, "owned_by": profile.slug}
        for m in profile.models
    ]
    return {"object": "list", "data": data}


def models_json(farm: Farm) -> dict[str, Any]:
    """`GET /api/v1/models`: every model, OpenRouter's shape (cheapest provider's prices)."""
    data = []
    for model_id in farm.model_ids():
        providers = farm.providers_of(model_id)
        cheapest = min(providers, key=lambda p: p.input_usd_per_mtok + p.output_usd_per_mtok)
        top = max(providers, key=lambda p: p.context_length)
        data.append(
            _model_card(farm, model_id)
            | {
                "context_length": top.context_length,
                "pricing": _pricing(cheapest),
                "top_provider": {
                    "context_length": top.context_length,
                    "max_completion_tokens": top.max_completion_tokens,
                    "is_moderated": False,
                },
                "supported_parameters": sorted({s for p in providers for s in _parameters(p)}),
            }
        )
    return {"data": data}


def endpoints_json(
    farm: Farm, model_id: str, now_ns: int, *, authenticated: bool = False
) -> dict[str, Any] | None:
    """`GET /api/v1/models/{author}/{slug}/endpoints`, OpenRouter's shape; None if unknown.

    One entry per profile (an endpoint). Uptimes (5 min, 30 min, 1 day) come from the farm's
    own ground truth (null without requests); `latency_last_30m` (TTFT in ms) and
    `throughput_last_30m` (tokens/s, tails on the slow side) too, and, as on OpenRouter, only
    to `authenticated` requests.
    """
    providers = farm.providers_of(model_id)
    if not providers:
        return None
    minute_ns = 60 * 1_000_000_000
    endpoints = []
    for p in (farm.listed(p, now_ns) for p in providers):
        recent = [r for r in farm.truth if r.provider == p.name]
        endpoint: dict[str, Any] = {
            "name": f"{p.provider_label} | {model_id}",
            "model_id": model_id,
            "model_name": _model_card(farm, model_id)["name"],
            "provider_name": p.provider_label,
            "tag": p.endpoint_tag,
            "context_length": p.context_length,
            "pricing": _pricing(p),
            "quantization": p.quantization,
            "max_completion_tokens": p.max_completion_tokens,
            "max_prompt_tokens": None,
            "supported_parameters": _parameters(p),
            "status": 0,
            "uptime_last_5m": _uptime_pct(recent, now_ns - 5 * minute_ns),
            "uptime_last_30m": _uptime_pct(recent, now_ns - 30 * minute_ns),
            "uptime_last_1d": _uptime_pct(recent, now_ns - 1440 * minute_ns),
            "latency_last_30m": None,
            "throughput_last_30m": None,
            "supports_implicit_caching": False,
        }
        if authenticated:
            last_30m = [r for r in recent if r.arrival_ns >= now_ns - 30 * minute_ns]
            endpoint["latency_last_30m"] = _published(
                [1000 * r.ttft_s for r in last_30m if r.ttft_s is not None and r.tokens_written],
                "ttft_ms",
            )
            endpoint["throughput_last_30m"] = _published(
                [tps for r in last_30m if (tps := _decode_tps(r)) is not None], "decode_tps"
            )
        endpoints.append(endpoint)
    return {"data": _model_card(farm, model_id) | {"endpoints": endpoints}}


def _decode_tps(r: TruthRecord) -> float | None:
    if r.first_token_ns is None or r.last_token_ns is None or r.tokens_written < 2:
        return None
    seconds = (r.last_token_ns - r.first_token_ns) / 1e9
    return (r.tokens_written - 1) / seconds if seconds > 0 else None


def _published(values: list[float], metric: str) -> dict[str, float] | None:
    """p50/p75/p90/p99 as OpenRouter publishes them (tails on the bad side), or null."""
    if not values:
        return None
    ordered = sorted(values)
    return {f"p{p}": round(tail_percentile(ordered, p, metric), 2) for p in PERCENTILES}


def _model_card(farm: Farm, model_id: str) -> dict[str, Any]:
    author, _, name = model_id.partition("/")
    return {
        "id": model_id,
        "name": f"{author.capitalize()}: {name}",
        "created": farm.created,
        "description": f"{model_id}, served by simulated providers (provmon simulator).",
        "architecture": _ARCHITECTURE,
    }


def _pricing(profile: ProviderProfile) -> dict[str, str]:
    """USD per token as decimal strings, like OpenRouter ("0.0000005")."""

    def per_token(usd_per_mtok: float) -> str:
        return format(Decimal(str(usd_per_mtok)) / Decimal(1_000_000), "f")

    return {
        "prompt": per_token(profile.input_usd_per_mtok),
        "completion": per_token(profile.output_usd_per_mtok),
        "request": "0",
        "image": "0",
    }


def _parameters(profile: ProviderProfile) -> list[str]:
    params = [p for p in _PARAMETERS if p != "stream_options" or not profile.reject_stream_options]
    if profile.reasoning_tokens:
        params += ["reasoning", "include_reasoning"]
    return params


def _uptime_pct(records: list[TruthRecord], since_ns: int) -> float | None:
    outcomes = [r.outcome for r in records if r.arrival_ns >= since_ns]
    ok = sum(1 for o in outcomes if o is Outcome.OK)
    failures = sum(1 for o in outcomes if o.counts_against_uptime)
    return round(100.0 * ok / (ok + failures), 2) if ok + failures else None
