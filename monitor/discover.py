"""Turns an OpenRouter-style endpoints listing into provmon target entries (TOML text)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from monitor.errors import EndpointsError


@dataclass(frozen=True, slots=True)
class Endpoint:
    provider: str
    context_length: int | None
    input_price_per_mtok: float | None
    output_price_per_mtok: float | None
    quantization: str | None
    status: Any
    uptime_last_30m: float | None


def _per_mtok(value: Any) -> float | None:
    try:
        price = float(value)
    except (TypeError, ValueError):
        return None
    return round(price * 1e6, 6) if price >= 0 else None


def parse_endpoints(doc: Any) -> list[Endpoint]:
    """Read `{"data": {"endpoints": [...]}}` as OpenRouter returns it."""
    data = doc.get("data") if isinstance(doc, dict) else None
    endpoints = data.get("endpoints") if isinstance(data, dict) else None
    if not isinstance(endpoints, list):
        raise EndpointsError("expected {'data': {'endpoints': [...]}}")
    out = []
    for e in endpoints:
        if not isinstance(e, dict) or not isinstance(e.get("provider_name"), str):
            continue
        pricing = e.get("pricing")
        if not isinstance(pricing, dict):
            pricing = {}
        ctx = e.get("context_length")
        uptime = e.get("uptime_last_30m")
        out.append(
            Endpoint(
                provider=e["provider_name"],
                context_length=int(ctx) if isinstance(ctx, int | float) else None,
                input_price_per_mtok=_per_mtok(pricing.get("prompt")),
                output_price_per_mtok=_per_mtok(pricing.get("completion")),
                quantization=e.get("quantization")
                if isinstance(e.get("quantization"), str)
                else None,
                status=e.get("status"),
                uptime_last_30m=float(uptime) if isinstance(uptime, int | float) else None,
            )
        )
    return out


def _comment(value: str) -> str:
    """Provider text made safe for a TOML comment: no line breaks or control characters."""
    return "".join(ch if ch.isprintable() else " " for ch in value)


def _toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def to_toml(model: str, endpoints: list[Endpoint], workloads: tuple[str, ...] = ("short",)) -> str:
    """A `[[targets]]` entry for the OpenRouter route, and a commented note per provider."""
    lines = [f"# {len(endpoints)} providers serve {_comment(model)} on OpenRouter"]
    for e in endpoints:
        price = (
            f"${e.input_price_per_mtok:g}/${e.output_price_per_mtok:g} per M tokens in/out"
            if e.input_price_per_mtok is not None and e.output_price_per_mtok is not None
            else "price unknown"
        )
        ctx = f"{e.context_length:,} context" if e.context_length else "context unknown"
        quant = f", {_comment(e.quantization)}" if e.quantization else ""
        lines.append(f"#   {_comment(e.provider)}: {ctx}, {price}{quant}")
    names = ", ".join(_toml_str(e.provider) for e in endpoints)
    lines += [
        "[[targets]]",
        'route = "openrouter"',
        f"model = {_toml_str(model)}",
        f"providers = [{names}]",
        f"workloads = [{', '.join(_toml_str(w) for w in workloads)}]",
    ]
    for e in endpoints:
        info = []
        if e.context_length:
            info.append(f"context_length = {e.context_length}")
        if e.input_price_per_mtok is not None:
            info.append(f"input_price_per_mtok = {e.input_price_per_mtok:g}")
        if e.output_price_per_mtok is not None:
            info.append(f"output_price_per_mtok = {e.output_price_per_mtok:g}")
        if info:
            lines += [f"[targets.info.{_toml_str(e.provider)}]", *info]
    return "\n".join(lines) + "\n"
