"""Turns an OpenRouter endpoints listing into provmon target entries (TOML text). Pure.

One `[[targets.endpoints]]` entry per endpoint, pinned by its tag, so two endpoints of one
provider (`deepinfra/fp8`, `deepinfra/turbo`) are two targets; what the config has no key for
(quantization, max output, parameters, status, OpenRouter's own figures) goes in comments.
"""

from __future__ import annotations

import json

from monitor.catalogue.listing import Endpoint, parse_endpoints
from monitor.config.checks import ENDPOINT_TAG, endpoint_label

__all__ = ["Endpoint", "parse_endpoints", "to_toml"]


def _comment(value: str) -> str:
    """Provider text made safe for a TOML comment: no line breaks or control characters."""
    return "".join(ch if ch.isprintable() else " " for ch in value)


def _toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def _num(value: float | None, spec: str, unit: str = "") -> str | None:
    return None if value is None else f"{format(value, spec)}{unit}"


def describe(e: Endpoint) -> str:
    """One comment line of what the listing says of an endpoint."""
    price = (
        f"${e.input_price_per_mtok:g}/${e.output_price_per_mtok:g} per M tokens in/out"
        if e.input_price_per_mtok is not None and e.output_price_per_mtok is not None
        else "price unknown"
    )
    parts = [
        e.quantization or "quantization unknown",
        f"{e.context_length:,} context" if e.context_length else "context unknown",
        f"max output {e.max_completion_tokens:,}" if e.max_completion_tokens else None,
        price,
        None if e.status is None else f"status {e.status}",
        _num(e.uptime_last_30m, ".1f", "% up (30m)"),
        _num(e.latency_last_30m.p50 if e.latency_last_30m else None, ".0f", " ms TTFT p50"),
        _num(e.throughput_last_30m.p50 if e.throughput_last_30m else None, ".1f", " tok/s p50"),
    ]
    return f"{_comment(e.provider)} [{_comment(e.tag)}]: " + ", ".join(p for p in parts if p)


def to_toml(
    model: str,
    endpoints: list[Endpoint],
    workloads: tuple[str, ...] = ("short",),
    *,
    authenticated: bool = False,
) -> str:
    """A `[[targets]]` entry for the OpenRouter route with one `[[targets.endpoints]]` each."""
    key_note = (
        "read with your key"
        if authenticated
        else "read without a key: OpenRouter leaves out latency and throughput"
    )
    lines = [f"# {len(endpoints)} endpoints serve {_comment(model)} on OpenRouter ({key_note})"]
    usable: list[Endpoint] = []
    labels: set[str] = set()
    for e in endpoints:
        lines.append(f"#   {describe(e)}")
        if e.supported_parameters:
            lines.append(f"#     parameters: {_comment(', '.join(e.supported_parameters))}")
        label = endpoint_label(e.provider, e.tag)
        if not ENDPOINT_TAG.match(e.tag) or len(e.tag) > 100 or len(e.provider) > 100:
            lines.append("#     (left out: its tag or name cannot be pinned)")
        elif label in labels:
            lines.append(f"#     (left out: its target would be named {_comment(label)} twice)")
        else:
            labels.add(label)
            usable.append(e)
    if not usable:
        return "\n".join([*lines, "# none of them can be pinned: no target written"]) + "\n"
    lines += [
        "[[targets]]",
        'route = "openrouter"',
        f"model = {_toml_str(model)}",
        f"workloads = [{', '.join(_toml_str(w) for w in workloads)}]",
    ]
    for e in usable:
        lines += [
            "",
            "[[targets.endpoints]]",
            f"provider = {_toml_str(e.provider)}",
            f"endpoint = {_toml_str(e.tag)}",
        ]
        if e.context_length:
            lines.append(f"context_length = {e.context_length}")
        if e.input_price_per_mtok is not None:
            lines.append(f"input_price_per_mtok = {e.input_price_per_mtok:g}")
        if e.output_price_per_mtok is not None:
            lines.append(f"output_price_per_mtok = {e.output_price_per_mtok:g}")
    return "\n".join(lines) + "\n"
