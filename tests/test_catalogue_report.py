"""The weekly report's OpenRouter sections: OpenRouter's published figures beside provmon's for
the same endpoint, flagged where they fall outside provmon's 95 % interval (checked against
intervals computed here from the raw values), and the catalogue changes of the week; in every
format, and the same after the week is frozen."""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.ext.asyncio import AsyncEngine

from monitor.aggregate import Accounting, group_rows
from monitor.catalogue.listing import parse_endpoints
from monitor.config import parse_config
from monitor.config.sections import FAILURE_OUTCOMES
from monitor.reporting.job import build_reports, make_reports
from monitor.reporting.model import report_from_json
from monitor.reporting.periods import parse_week
from monitor.reporting.published import endpoint_for, published_rows
from monitor.results import Outcome, ProbeResult
from monitor.rollup import fold
from monitor.storage.catalogue import CatalogueStore
from monitor.storage.store import Store
from tests.factories import result
from tests.openrouter_like import MODEL, endpoint

W47 = parse_week("2026-W47")
AFTER_W47 = W47.end + timedelta(days=2)
Z = 1.959964
ACCT = Accounting(frozenset(FAILURE_OUTCOMES))


def wilson(ok: int, n: int) -> tuple[float, float]:
    """Wilson's score interval, from its textbook form (Agresti & Coull 1998)."""
    p = ok / n
    centre = p + Z * Z / (2 * n)
    spread = Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n))
    return 100 * (centre - spread) / (1 + Z * Z / n), 100 * (centre + spread) / (1 + Z * Z / n)


def probes(label: str, n: int, failures: int, ttft_ms: float, tps: float) -> list[ProbeResult]:
    rng = np.random.default_rng(len(label))
    out = []
    for i in range(n):
        at = W47.start + timedelta(minutes=50 * i)
        if i < failures:
            out.append(
                result(model=MODEL, provider=label, route="openrouter", started_at=at,
                       outcome=Outcome.SERVER_ERROR, error_kind="http.502")
            )  # fmt: skip
            continue
        out.append(
            result(
                model=MODEL, provider=label, route="openrouter", started_at=at,
                ttft_ms=float(ttft_ms * rng.lognormal(0, 0.2)),
                decode_tps=float(tps * rng.lognormal(0, 0.1)),
            )
        )  # fmt: skip
    return out


def listing(**changes: dict[str, Any]) -> list[Any]:
    raw = [
        # fp8: OpenRouter agrees on uptime and TTFT, sees a much faster decode
        endpoint("DeepInfra", "deepinfra/fp8", uptime_30m=98.0, ttft_ms=(450, 0, 0, 0),
                 tps=(90, 0, 0, 0)),
        # turbo: OpenRouter sees a shorter TTFT (its side: no network) and a lower uptime
        endpoint("DeepInfra", "deepinfra/turbo", uptime_30m=90.0, ttft_ms=(120, 0, 0, 0),
                 tps=(170, 0, 0, 0), price_out="0.000003"),
        endpoint("Together", "together"),
    ]  # fmt: skip
    for e in raw:
        e.update(changes.get(e["tag"], {}))
    return parse_endpoints({"data": {"endpoints": raw}})


def config(tmp_path: Path) -> Any:
    doc = {
        "reports": {"out_dir": str(tmp_path)},
        "targets": [
            {
                "route": "openrouter",
                "model": MODEL,
                "providers": ["Together"],
                "endpoints": [
                    {"provider": "DeepInfra", "endpoint": "deepinfra/fp8"},
                    {"provider": "DeepInfra", "endpoint": "deepinfra/turbo"},
                ],
            }
        ],
    }
    return parse_config(doc, {"OPENROUTER_API_KEY": "k"})


async def fill(engine: AsyncEngine) -> dict[str, list[ProbeResult]]:
    made = {
        "DeepInfra/fp8": probes("DeepInfra/fp8", 200, 4, 450.0, 55.0),
        "DeepInfra/turbo": probes("DeepInfra/turbo", 200, 0, 200.0, 170.0),
    }
    records = [
        (f"{i:032x}", p) for i, p in enumerate(made["DeepInfra/fp8"] + made["DeepInfra/turbo"])
    ]
    await Store(engine).insert_probes(records)
    store = CatalogueStore(engine)
    await store.record(MODEL, 0, W47.start - timedelta(hours=1), "eu", True, listing())
    for k in range(10):
        at = W47.start + timedelta(hours=12 * k)
        price = {"deepinfra/turbo": {"pricing": {"prompt": "0.0000009", "completion": "0.000004"}}}
        await store.record(MODEL, k + 1, at, "eu", True, listing(**price) if k else listing())
    return made


async def test_published_beside_measured_and_catalogue_changes(
    migrated: AsyncEngine, tmp_path: Path
) -> None:
    made = await fill(migrated)
    cfg = config(tmp_path)
    (report,) = await build_reports(migrated, cfg, W47, AFTER_W47)
    assert report.catalogue_polls == 10  # the baseline before the week is not one of them
    by_provider = {p.provider: p for p in report.published}
    assert set(by_provider) == {"DeepInfra/fp8", "DeepInfra/turbo"}  # Together has no probes
    fp8, turbo = by_provider["DeepInfra/fp8"], by_provider["DeepInfra/turbo"]
    assert (fp8.endpoint, fp8.polls, turbo.endpoint) == ("deepinfra/fp8", 10, "deepinfra/turbo")

    # uptime: provmon's estimate and its Wilson interval, computed here from the counts
    assert fp8.uptime_pct is not None and turbo.uptime_pct is not None
    assert fp8.uptime_pct.measured == 98.0
    low, high = wilson(196, 200)
    assert fp8.uptime_pct.ci_low is not None and fp8.uptime_pct.ci_high is not None
    assert abs(fp8.uptime_pct.ci_low - low) < 1e-9 and abs(fp8.uptime_pct.ci_high - high) < 1e-9
    assert fp8.uptime_pct.disagrees is False  # 98.0 published, inside [95.0, 99.2]
    assert turbo.uptime_pct.published == 90.0 and turbo.uptime_pct.measured == 100.0
    assert turbo.uptime_pct.ci_low is not None
    assert abs(turbo.uptime_pct.ci_low - wilson(200, 200)[0]) < 1e-9
    assert turbo.uptime_pct.disagrees is True

    # medians: provmon's within 1 % of numpy's over the raw values, the interval around it
    for p, label, published_ttft, published_tps in (
        (fp8, "DeepInfra/fp8", 450, 90),
        (turbo, "DeepInfra/turbo", 120, 170),
    ):
        ok = [r for r in made[label] if r.outcome is Outcome.OK]
        ttft = float(np.median([r.ttft_ms for r in ok if r.ttft_ms is not None]))
        tps = float(np.median([r.decode_tps for r in ok if r.decode_tps is not None]))
        assert p.ttft_p50_ms is not None and p.decode_p50_tps is not None
        assert p.ttft_p50_ms.published == published_ttft
        assert p.decode_p50_tps.published == published_tps
        assert p.ttft_p50_ms.measured is not None and p.decode_p50_tps.measured is not None
        assert abs(p.ttft_p50_ms.measured - ttft) / ttft < 0.01
        assert abs(p.decode_p50_tps.measured - tps) / tps < 0.01
        for f in (p.ttft_p50_ms, p.decode_p50_tps):
            assert f.ci_low is not None and f.ci_high is not None
            assert f.ci_low < f.measured < f.ci_high
            assert f.disagrees is not (f.ci_low <= f.published <= f.ci_high)
    assert fp8.ttft_p50_ms is not None and fp8.ttft_p50_ms.disagrees is False
    assert fp8.decode_p50_tps is not None and fp8.decode_p50_tps.disagrees is True
    assert turbo.ttft_p50_ms is not None and turbo.ttft_p50_ms.disagrees is True
    assert turbo.decode_p50_tps is not None and turbo.decode_p50_tps.disagrees is False

    (change,) = report.catalogue_changes
    assert (change.endpoint, change.kind) == ("deepinfra/turbo", "price_changed")
    assert change.at == W47.start + timedelta(hours=12)
    assert change.summary == (
        "DeepInfra [deepinfra/turbo]: price per M tokens in/out $0.5/$3 → $0.9/$4"
    )


async def test_the_sections_in_every_format_and_after_freezing(
    migrated: AsyncEngine, tmp_path: Path
) -> None:
    await fill(migrated)
    cfg = config(tmp_path)
    ((report, files),) = await make_reports(
        migrated, cfg, W47, AFTER_W47, formats=["html", "md", "json"]
    )
    page = files["html"].read_text()
    assert "<h2>OpenRouter&#x27;s published figures</h2>" in page
    assert "without the network between you and OpenRouter" in page
    assert '<td class="flag">100.00 [98.12, 100.00] ≠</td>' in page
    assert "<h2>Catalogue changes</h2>" in page
    assert "$0.5/$3 → $0.9/$4" in page
    md = files["md"].read_text()
    assert "## OpenRouter's published figures" in md
    assert "| **100.00 \\[98.12, 100.00\\] ≠** |" in md
    assert "## Catalogue changes" in md
    assert "read 10 times in the period" in md
    doc = json.loads(files["json"].read_text())
    assert doc["catalogue_polls"] == 10
    assert {p["endpoint"] for p in doc["published"]} == {"deepinfra/fp8", "deepinfra/turbo"}
    assert doc["catalogue_changes"][0]["kind"] == "price_changed"
    # frozen: the same numbers come back from the stored week
    assert report.frozen
    await CatalogueStore(migrated).prune(AFTER_W47 + timedelta(days=60))
    (again,) = await build_reports(migrated, cfg, W47, AFTER_W47)
    assert again.to_json() == report.to_json()
    assert report_from_json(report.to_json()).published == report.published


def test_full_uptime_published_as_100_agrees_with_a_full_measured_uptime() -> None:
    ok = result(model=MODEL, provider="X", route="openrouter", started_at=W47.start)
    rows = group_rows(fold([ok] * 19), W47.start, W47.end)  # Wilson: 99.99999999999999
    listed = parse_endpoints({"data": {"endpoints": [endpoint("X", "x", uptime_30m=100.0)]}})
    (p,) = published_rows(rows, [(W47.start, listed)], {"X": ("x", "X")}, ACCT)
    assert p.uptime_pct is not None and p.uptime_pct.measured == 100.0
    assert p.uptime_pct.disagrees is False


def test_a_provider_pin_finds_its_only_endpoint_and_never_guesses() -> None:
    listed = listing()
    assert endpoint_for("deepinfra/turbo", "DeepInfra", listed) is listed[1]
    assert endpoint_for("Together", "Together", listed) is listed[2]
    assert endpoint_for("together", "x", listed) is listed[2]
    assert endpoint_for("deepinfra", "DeepInfra", listed) is None  # two endpoints: which one?
    one = [dataclasses.replace(listed[0])]
    assert endpoint_for("DeepInfra", "DeepInfra", one) is one[0]
