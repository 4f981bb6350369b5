"""The JSON API against `provmon status --json`, field by field, on the same database."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from monitor.cli import main
from tests.webdata import HOSTILE, MODEL, OTHER_MODEL, get_json, serving


def test_api_matches_provmon_status_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async def api() -> tuple[Any, Any, Path]:
        async with serving(tmp_path) as s:
            endpoints = {}
            for model in (MODEL, OTHER_MODEL):
                url = f"{s.url}/api/v1/models/{model}/endpoints"
                endpoints[model] = (await get_json(url))["data"]["endpoints"]
            models = (await get_json(f"{s.url}/api/v1/models"))["data"]
            return endpoints, models, s.config_path

    endpoints, models, path = asyncio.run(api())
    capsys.readouterr()
    assert main(["status", "--json", "-c", str(path)]) == 0
    status = json.loads(capsys.readouterr().out)
    targets = {(t["model"], t["provider"], t["route"]): t for t in status["targets"]}
    compared = 0
    shares: Counter[tuple[str, str]] = Counter()
    for model, eps in endpoints.items():
        for ep in eps:
            t = targets[(model, ep["provider_name"], ep["route"])]
            w = t["windows"]
            assert ep["status"] == t["state"]
            assert ep["uptime_last_5m"] == w["5m"]["uptime_pct"]
            assert ep["uptime_last_30m"] == w["30m"]["uptime_pct"]
            assert ep["uptime_last_1d"] == w["1d"]["uptime_pct"]
            assert (ep["latency_last_30m"] or {}).get("p50") == w["30m"]["ttft_p50_ms"]
            assert (ep["throughput_last_30m"] or {}).get("p50") == w["30m"]["e2e_p50_tps"]
            decode = ep["decode_throughput_last_30m"] or {}
            assert decode.get("p50") == w["30m"]["decode_p50_tps"]
            assert ep["probes_last_30m"] == w["30m"]["probes"]
            assert ep["probes_last_1d"] == w["1d"]["probes"]
            assert ep["rate_limited_last_30m"] == w["30m"]["rate_limited"]
            assert ep["last_outcome"] == t["last_outcome"]
            for kind in ("tool_call", "structured"):
                for window in ("30m", "1d"):
                    share = ep[f"{kind}_error_pct_last_{window}"]
                    assert share == w[window][f"{kind}_error_pct"]
                    if share is not None:
                        shares[(ep["provider_name"], kind)] += 1
            assert datetime.fromisoformat(ep["last_probe_at"]) == datetime.fromisoformat(
                t["last_probe_at"]
            )
            compared += 1
    assert compared == len(status["targets"]) == 4
    # Alpha probes both quality kinds, the hostile-named target structured answers only
    assert shares == {
        ("Alpha", "tool_call"): 2,
        ("Alpha", "structured"): 2,
        (HOSTILE, "structured"): 2,
    }
    for row in models:
        summary = status["models"][row["id"]]
        assert row["targets"] == summary["targets"]
        assert row["down"] == summary["down"]
        assert row["best_uptime_last_1d"] == summary["1d"]["best_uptime_pct"]
        assert row["best_ttft_p50_ms_last_1d"] == summary["1d"]["best_ttft_p50_ms"]
        assert row["probes_last_1d"] == summary["1d"]["probes"]
    assert [r["id"] for r in models] == [MODEL, OTHER_MODEL]
