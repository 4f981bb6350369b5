"""OpenRouter's endpoints API (`GET /models/{author}/{slug}/endpoints`) read into values. Pure.

Every field is provider-supplied text or numbers, so each is bounded and sanitised here, before
discover prints it, the catalogue stores it or a report shows it: strings are printable and
short, numbers finite and in range, unknown or malformed values become None.

Shapes, as OpenRouter documents them: `tag` names one endpoint (`deepinfra/fp8`; the provider
slug alone for a provider's only endpoint), `pricing` is USD per token as decimal strings,
`status` an integer (0 is normal, negative values mean degraded or disabled),
`uptime_last_5m/30m/1d` percentages, `latency_last_30m` (time to first token at OpenRouter, in
ms) and `throughput_last_30m` (tokens/s) objects of p50/p75/p90/p99, those two null to requests
without a key.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from monitor.errors import EndpointsError

MAX_TEXT = 120
MAX_ENDPOINTS = 500
MAX_PARAMETERS = 100
PERCENTILE_KEYS = ("p50", "p75", "p90", "p99")


def clean_text(value: Any, limit: int = MAX_TEXT) -> str | None:
    """A provider string made safe to store and show: printable, one line, at most `limit`."""
    if not isinstance(value, str):
        return None
    text = "".join(ch if ch.isprintable() else " " for ch in value).strip()
    return text[:limit] or None


def _number(value: Any, low: float, high: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) and low <= number <= high else None


def _count(value: Any, high: int = 1_000_000_000) -> int | None:
    number = _number(value, 1, high)
    return int(number) if number is not None else None


def per_mtok(value: Any) -> float | None:
    """A price per token (a decimal string) as USD per million tokens."""
    price = _number(value, 0.0, 1.0)
    return round(price * 1e6, 6) if price is not None else None


@dataclass(frozen=True, slots=True)
class Percentiles:
    """p50/p75/p90/p99 as OpenRouter publishes them (throughput's are tails on the slow side)."""

    p50: float
    p75: float | None = None
    p90: float | None = None
    p99: float | None = None


def _percentiles(value: Any, high: float) -> Percentiles | None:
    if not isinstance(value, dict):
        return None
    p50 = _number(value.get("p50"), 0.0, high)
    if p50 is None:
        return None
    rest = [_number(value.get(k), 0.0, high) for k in PERCENTILE_KEYS[1:]]
    return Percentiles(p50, *rest)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One endpoint of a model on OpenRouter: what it is (catalogue) and what OpenRouter
    publishes of its recent service (published)."""

    provider: str
    tag: str
    quantization: str | None = None
    context_length: int | None = None
    max_completion_tokens: int | None = None
    input_price_per_mtok: float | None = None
    output_price_per_mtok: float | None = None
    supported_parameters: tuple[str, ...] = ()
    status: int | None = None
    uptime_last_5m: float | None = None
    uptime_last_30m: float | None = None
    uptime_last_1d: float | None = None
    latency_last_30m: Percentiles | None = None
    throughput_last_30m: Percentiles | None = None

    @property
    def slug(self) -> str:
        """The provider's slug: the tag up to its first `/`."""
        return self.tag.partition("/")[0]

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["supported_parameters"] = list(self.supported_parameters)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Endpoint:
        """The inverse of `to_json` (stored snapshots); unknown keys are ignored."""
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        for key in ("latency_last_30m", "throughput_last_30m"):
            got = values.get(key)
            values[key] = Percentiles(**got) if isinstance(got, dict) else None
        values["supported_parameters"] = tuple(values.get("supported_parameters") or ())
        return cls(**values)


def _tag(raw: dict[str, Any], provider: str) -> str:
    tag = clean_text(raw.get("tag"), 100)
    if tag:
        return tag.replace(" ", "-")
    return "-".join(provider.casefold().split())  # older listings had no tag


def parse_endpoint(raw: Any) -> Endpoint | None:
    """One entry of `data.endpoints`, or None when it names no provider."""
    if not isinstance(raw, dict):
        return None
    provider = clean_text(raw.get("provider_name"), 100)
    if provider is None:
        return None
    pricing = raw.get("pricing")
    if not isinstance(pricing, dict):
        pricing = {}
    params = raw.get("supported_parameters")
    status = raw.get("status")
    return Endpoint(
        provider=provider,
        tag=_tag(raw, provider),
        quantization=clean_text(raw.get("quantization"), 32),
        context_length=_count(raw.get("context_length")),
        max_completion_tokens=_count(raw.get("max_completion_tokens")),
        input_price_per_mtok=per_mtok(pricing.get("prompt")),
        output_price_per_mtok=per_mtok(pricing.get("completion")),
        supported_parameters=tuple(
            sorted({p for p in map(clean_text, params[:MAX_PARAMETERS]) if p})
            if isinstance(params, list)
            else ()
        ),
        status=int(status) if type(status) is int and -1000 <= status <= 1000 else None,
        uptime_last_5m=_number(raw.get("uptime_last_5m"), 0.0, 100.0),
        uptime_last_30m=_number(raw.get("uptime_last_30m"), 0.0, 100.0),
        uptime_last_1d=_number(raw.get("uptime_last_1d"), 0.0, 100.0),
        latency_last_30m=_percentiles(raw.get("latency_last_30m"), 3_600_000.0),
        throughput_last_30m=_percentiles(raw.get("throughput_last_30m"), 1_000_000.0),
    )


def parse_endpoints(doc: Any) -> list[Endpoint]:
    """Read `{"data": {"endpoints": [...]}}` as OpenRouter returns it; one entry per tag (a
    repeated tag keeps its first entry)."""
    data = doc.get("data") if isinstance(doc, dict) else None
    endpoints = data.get("endpoints") if isinstance(data, dict) else None
    if not isinstance(endpoints, list):
        raise EndpointsError("expected {'data': {'endpoints': [...]}}")
    out: dict[str, Endpoint] = {}
    for raw in endpoints[:MAX_ENDPOINTS]:
        endpoint = parse_endpoint(raw)
        if endpoint is not None and endpoint.tag not in out:
            out[endpoint.tag] = endpoint
    return list(out.values())
