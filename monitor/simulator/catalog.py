"""Catalogue JSON: the OpenAI `/v1/models` list and OpenRouter's models and endpoints shapes."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from monitor.results import Outcome
from monitor.simulator.farm import Farm
from monitor.simulator.profiles import ProviderProfile

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


def endpoints_json(farm: Farm, model_id: str, now_ns: int) -> dict[str, Any] | None:
    """`GET /api/v1/models/{author}/{slug}/endpoints`, OpenRouter's shape; None if unknown.

    `uptime_last_30m` is computed from the farm's own ground truth (null without requests).
    """
    providers = farm.providers_of(model_id)
    if not providers:
        return None
    endpoints = [
        {
            "name": f"{p.name} | {model_id}",
            "model_name": _model_card(farm, model_id)["name"],
            "provider_name": p.name,
            "tag": f"{p.slug}/{p.quantization}",
            "context_length": p.context_length,
            "pricing": _pricing(p),
            "quantization": p.quantization,
            "max_completion_tokens": p.max_completion_tokens,
            "max_prompt_tokens": None,
            "supported_parameters": _parameters(p),
            "status": 0,
            "uptime_last_30m": _uptime_pct(farm, p, now_ns - 30 * 60 * 1_000_000_000),
        }
        for p in providers
    ]
    return {"data": _model_card(farm, model_id) | {"endpoints": endpoints}}


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


def _uptime_pct(farm: Farm, profile: ProviderProfile, since_ns: int) -> float | None:
    outcomes = [
        r.outcome for r in farm.truth if r.provider == profile.name and r.arrival_ns >= since_ns
    ]
    ok = sum(1 for o in outcomes if o is Outcome.OK)
    failures = sum(1 for o in outcomes if o.counts_against_uptime)
    return round(100.0 * ok / (ok + failures), 2) if ok + failures else None
