"""Test data built by hand: probe results (storage, rollup and aggregation tests) and config
documents, as dicts for `parse_config` or as TOML files for the command line; the benchmarks
build theirs here too."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from monitor.results import Outcome, ProbeResult, TokenSource
from monitor.simulator import DEMO_MODEL

T0 = datetime(2026, 11, 16, 0, 0, tzinfo=UTC)  # Monday of ISO week 2026-W47


def result(**overrides: Any) -> ProbeResult:
    values: dict[str, Any] = {
        "model": "acme/model-1",
        "provider": "Alpha",
        "route": "direct",
        "vantage": "here",
        "workload": "short",
        "started_at": T0,
        "outcome": Outcome.OK,
        "http_status": 200,
        "ttft_ms": 200.0,
        "ttfa_ms": 200.0,
        "latency_ms": 1200.0,
        "output_tokens": 100,
        "input_tokens": 100,
        "token_source": TokenSource.USAGE,
        "decode_tps": 99.0,
        "e2e_tps": 83.3,
        "chunks": 100,
        "cost_usd": 0.0001,
        "finish_reason": "stop",
    }
    values.update(overrides)
    if values["outcome"] is not Outcome.OK and "ttft_ms" not in overrides:
        for name in ("ttft_ms", "ttfa_ms", "latency_ms", "decode_tps", "e2e_tps", "cost_usd"):
            values[name] = None
        values["output_tokens"] = 0
        values["chunks"] = 0
        values["finish_reason"] = None
    return ProbeResult(**values)


# --- configs: one builder for every config document, as a dict or as TOML text -------------

FAST_TIMEOUTS = {"connect_s": 2, "first_token_s": 1.0, "idle_s": 0.5, "total_s": 5}
TINY = {"input_tokens": 10, "max_tokens": 5}


def direct_target(
    base_url: str,
    provider: str,
    *,
    key_env: str | None = None,
    model: str = DEMO_MODEL,
    **extra: Any,
) -> dict[str, Any]:
    """A `[[targets]]` entry of the direct route."""
    entry: dict[str, Any] = {
        "route": "direct",
        "model": model,
        "provider": provider,
        "base_url": base_url,
    }
    if key_env is not None:
        entry["api_key_env"] = key_env
    return entry | extra


def openrouter_target(
    providers: Sequence[str], *, model: str = DEMO_MODEL, **extra: Any
) -> dict[str, Any]:
    """A `[[targets]]` entry of the OpenRouter route, pinned to each of `providers`."""
    return {"route": "openrouter", "model": model, "providers": list(providers)} | extra


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def config_doc(
    targets: Sequence[Mapping[str, Any]] = (),
    *,
    database: str | Path | Mapping[str, Any] | None = None,
    spill: Path | None = None,
    **sections: Any,
) -> dict[str, Any]:
    """A config document: `sections` as given (vantage, timeouts, workloads, schedule, ...),
    `[database]` (the section itself, or a URL or a SQLite file's path) with the spill path,
    then the targets."""
    doc: dict[str, Any] = dict(sections)
    db: dict[str, Any] = dict(database) if isinstance(database, Mapping) else {}
    if isinstance(database, str | Path):
        db["url"] = sqlite_url(database) if isinstance(database, Path) else database
    if spill is not None:
        db["spill_path"] = str(spill)
    if db:
        doc["database"] = db
    if targets:
        doc["targets"] = [dict(t) for t in targets]
    return doc


def toml_text(doc: Mapping[str, Any]) -> str:
    """A config document as TOML: top-level keys, then `[tables]` and `[[arrays of tables]]`
    (tables nested inside an array element, like `[targets.info.NAME]`, follow it)."""
    lines: list[str] = []
    _toml_table(doc, (), lines)
    return "\n".join(lines).lstrip("\n") + "\n"


def write_config(path: Path, doc: Mapping[str, Any]) -> Path:
    path.write_text(toml_text(doc), encoding="utf-8")
    return path


def _is_table(value: Any) -> bool:
    return isinstance(value, Mapping)


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list | tuple) and bool(value) and all(map(_is_table, value))


def _toml_key(key: str) -> str:
    return key if key and all(c.isalnum() or c in "_-" for c in key) else json.dumps(key)


def _toml_value(value: Any) -> str:
    if value is None:
        raise ValueError("TOML has no null: leave the key out")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        return json.dumps(str(value))  # a JSON string is a valid TOML basic string
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    return "[" + ", ".join(_toml_value(v) for v in value) + "]"


def _toml_table(table: Mapping[str, Any], path: tuple[str, ...], lines: list[str]) -> None:
    for key, value in table.items():
        if not _is_table(value) and not _is_table_array(value):
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for key, value in table.items():
        name = ".".join(_toml_key(p) for p in (*path, key))
        if _is_table(value):
            lines.append(f"[{name}]")
            _toml_table(value, (*path, key), lines)
        elif _is_table_array(value):
            for item in value:
                lines.append(f"[[{name}]]")
                _toml_table(item, (*path, key), lines)
