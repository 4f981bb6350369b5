"""The live pages' server over a real SQLite database filled through the real store and alert
evaluator: pages, JSON API, badges, health, security."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from monitor.reporting.job import accounting
from monitor.results import Outcome
from monitor.stats import percentile
from monitor.storage.database import make_engine
from monitor.web.pages import PROVIDER_HEADERS
from monitor.web.security import CONTENT_SECURITY_POLICY, Listen
from monitor.web.server import running
from monitor.web.site import site_from_config
from tests.webdata import HOSTILE, MODEL, OTHER_MODEL, Served, get, get_json, serving

TOKEN = "web-test-token-5f1e2d"


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    async with serving(tmp_path) as s:
        yield s


class Tags(HTMLParser):
    """Every start tag with its attributes, and any text inside <script> elements."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.script_text = ""
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.script_text += data


def h2s(html: str) -> list[str]:
    return [re.sub(r"<[^>]+>", "", h) for h in re.findall(r"<h2[^>]*>(.*?)</h2>", html)]


def tbody(html: str, ident: str) -> str:
    found = re.search(rf'<tbody id="{ident}"[^>]*>(.*?)</tbody>', html, re.S)
    assert found is not None, ident
    return found.group(1)


def rows(html: str, ident: str) -> list[str]:
    return re.findall(r"<tr[ >].*?</tr>", tbody(html, ident), re.S)


def window_probes(s: Served, provider: str, seconds: float) -> list[Any]:
    since = s.now - timedelta(seconds=seconds)
    return [
        p
        for p in s.written.probes
        if p.model == MODEL and p.provider == provider and p.started_at >= since
    ]


async def test_model_page_headings_rows_and_numbers(served: Served) -> None:
    status, headers, html = await get(f"{served.url}/models/{MODEL}")
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert h2s(html) == [
        f"Providers for {MODEL}",
        f"Performance for {MODEL}",
        f"Uptime stats for {MODEL}",
        "Incidents",
    ]
    assert "How these numbers are measured" in html
    doc = await get_json(f"{served.url}/api/v1/models/{MODEL}/endpoints")
    endpoints = doc["data"]["endpoints"]
    assert len(rows(html, "providers-body")) == len(endpoints) == 3
    for ep, row in zip(endpoints, rows(html, "providers-body"), strict=True):
        cell = re.search(r'data-field="uptime_last_30m" data-value="([^"]*)">([^<]*)<', row)
        assert cell is not None
        assert float(cell.group(1)) == ep["uptime_last_30m"]
        assert cell.group(2) == f"{ep['uptime_last_30m']:.1f}%"
        ttft = re.search(r'data-field="latency_last_30m.p50" data-value="([^"]*)">([^<]*)<', row)
        assert ttft is not None
        assert float(ttft.group(1)) == ep["latency_last_30m"]["p50"]
        assert ttft.group(2) == f"{ep['latency_last_30m']['p50']:,.0f} ms"
    assert len(rows(html, "uptime-body")) == 3
    incidents = rows(html, "incidents-body")
    assert len(incidents) == 1 and "Beta" in incidents[0] and "resolved" in incidents[0]
    assert "http.503 ×8" in incidents[0]


async def test_endpoints_numbers_from_the_probes(served: Served) -> None:
    doc = await get_json(f"{served.url}/api/v1/models/{MODEL}/endpoints")
    assert doc["data"]["id"] == MODEL
    by_provider = {ep["provider_name"]: ep for ep in doc["data"]["endpoints"]}
    assert set(by_provider) == {"Alpha", "Beta", HOSTILE}
    required = {
        "provider_name", "route", "tag", "status", "uptime_last_5m", "uptime_last_30m",
        "uptime_last_1d", "latency_last_30m", "throughput_last_30m", "context_length",
        "pricing", "last_probe_at",
    }  # fmt: skip
    for provider, ep in by_provider.items():
        assert required <= set(ep)
        assert ep["route"] == "direct"
        assert ep["tag"] is None and ep["quantization"] is None
        assert ep["context_length"] == 32768
        assert ep["pricing"] == {"prompt": 0.5, "completion": 0.75}
        probes = window_probes(served, provider, 1800)
        ok = [p for p in probes if p.outcome is Outcome.OK]
        failed = [p for p in probes if p.outcome.counts_against_uptime]
        assert ep["uptime_last_30m"] == pytest.approx(100 * len(ok) / (len(ok) + len(failed)))
        ttft = sorted(p.ttft_ms for p in ok)
        speed = sorted(p.e2e_tps for p in ok)
        lat = ep["latency_last_30m"]
        assert lat["p50"] == pytest.approx(percentile(ttft, 50))
        assert lat["p90"] == pytest.approx(percentile(ttft, 90)) and lat["p90"] >= lat["p50"]
        tput = ep["throughput_last_30m"]
        assert tput["p50"] == pytest.approx(percentile(speed, 50))
        # the slow side: p90 throughput is the speed 90 % of probes reach
        assert tput["p90"] == pytest.approx(percentile(speed, 10)) and tput["p90"] <= tput["p50"]
        last = max(p.started_at for p in served.written.probes if p.provider == provider)
        assert datetime.fromisoformat(ep["last_probe_at"]) == last
    beta = by_provider["Beta"]
    assert beta["status"] == "up"
    assert beta["uptime_last_1d"] < 100 and beta["uptime_last_5m"] == 100.0
    alpha = by_provider["Alpha"]
    assert alpha["rate_limited_last_30m"] > 0 and alpha["uptime_last_30m"] == 100.0
    other = await get_json(f"{served.url}/api/v1/models/{OTHER_MODEL}/endpoints")
    assert other["data"]["endpoints"][0]["status"] == "down"


def quality_share(s: Served, provider: str, workload: str, seconds: float) -> float:
    verdicts = [
        p.quality
        for p in window_probes(s, provider, seconds)
        if p.workload == workload and p.outcome is Outcome.OK
    ]
    assert verdicts and None not in verdicts
    return 100 * sum(v != "ok" for v in verdicts) / len(verdicts)


def headers(html: str) -> list[str]:
    found = re.search(r'<thead id="providers-head"[^>]*><tr>(.*?)</tr>', html, re.S)
    assert found is not None
    return re.findall(r"<th>(.*?)</th>", found.group(1))


async def test_quality_shares_and_their_columns(served: Served) -> None:
    doc = await get_json(f"{served.url}/api/v1/models/{MODEL}/endpoints")
    endpoints = doc["data"]["endpoints"]
    by_provider = {ep["provider_name"]: ep for ep in endpoints}
    alpha, beta, hostile = by_provider["Alpha"], by_provider["Beta"], by_provider[HOSTILE]
    for window, seconds in (("30m", 1800), ("1d", 86400)):
        tools = quality_share(served, "Alpha", "tools", seconds)
        assert alpha[f"tool_call_error_pct_last_{window}"] == pytest.approx(tools)
        assert 0 < tools < 100
        json_share = quality_share(served, "Alpha", "json", seconds)
        assert alpha[f"structured_error_pct_last_{window}"] == pytest.approx(json_share)
        mine = quality_share(served, HOSTILE, "json", seconds)
        assert hostile[f"structured_error_pct_last_{window}"] == pytest.approx(mine)
        assert hostile[f"tool_call_error_pct_last_{window}"] is None  # no tool-call workload
        for kind in ("tool_call", "structured"):
            assert beta[f"{kind}_error_pct_last_{window}"] is None  # no quality probes
    # the model page shows the day's shares, "–" where a target has none
    _, _, html = await get(f"{served.url}/models/{MODEL}")
    shown = headers(html)
    assert shown[-3:] == ["Tool-call errors 1d", "Structured errors 1d", "Last probe"]
    for ep, row in zip(endpoints, rows(html, "providers-body"), strict=True):
        assert len(re.findall(r"<td[ >]", row)) == len(shown)
        for field in ("tool_call_error_pct_last_1d", "structured_error_pct_last_1d"):
            cell = re.search(rf'data-field="{field}" data-value="([^"]*)">([^<]*)<', row)
            assert cell is not None
            value = ep[field]
            assert cell.group(2) == ("–" if value is None else f"{value:.1f}%")
            assert cell.group(1) == ("" if value is None else repr(value))
    assert "Tool-call and structured errors" in html
    # a model without quality probes: the table it had before they existed
    _, _, plain = await get(f"{served.url}/models/{OTHER_MODEL}")
    assert headers(plain) == list(PROVIDER_HEADERS)
    assert "error_pct" not in plain and "Tool-call" not in plain


async def test_hostile_provider_names_are_escaped_everywhere(served: Served) -> None:
    for path in ("/", f"/models/{MODEL}"):
        _, _, html = await get(served.url + path)
        assert (
            "<img" not in html and "<script>alert" not in html and "onerror=alert(1)>" not in html
        )
    _, _, html = await get(f"{served.url}/models/{MODEL}")
    assert "&lt;img src=x onerror=alert(1)&gt;&quot;&#x27;&amp;&lt;script&gt;" in html
    quoted = "%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E%22%27%26%3Cscript%3Ealert%282%29"
    status, headers, svg = await get(f"{served.url}/badge/{MODEL}/{quoted}%3C%2Fscript%3E.svg")
    assert status == 200 and headers["Content-Type"].startswith("image/svg+xml")
    assert "<script" not in svg and "<img" not in svg
    doc = await get_json(f"{served.url}/api/v1/models/{MODEL}/endpoints")
    assert HOSTILE in {ep["provider_name"] for ep in doc["data"]["endpoints"]}  # data, as JSON


async def test_no_inline_script_and_the_headers_on_every_response(served: Served) -> None:
    paths = ["/", f"/models/{MODEL}", "/api/v1/models", "/healthz", "/no/such/page"]
    paths += ["/static/provmon.js", f"/badge/{MODEL}/Alpha.svg", "/api/v1/models/x/y/endpoints"]
    for path in paths:
        _, headers, body = await get(served.url + path)
        assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY, path
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY"
        if headers["Content-Type"].startswith("text/html"):
            tags = Tags()
            tags.feed(body)
            assert tags.tags, path
            for tag, attrs in tags.tags:
                names = {name for name, _ in attrs}
                assert not any(n.startswith("on") for n in names), (path, tag, attrs)
                assert "style" not in names and tag != "style"
                links = [v or "" for n, v in attrs if n in ("src", "href")]
                assert all(v.startswith(("/", "#")) for v in links), links  # this origin only
                if tag == "script":
                    assert dict(attrs)["src"] == "/static/provmon.js"
            assert tags.script_text == ""
    assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY


async def test_read_only(served: Served) -> None:
    async with aiohttp.ClientSession(trust_env=False) as session:
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            async with session.request(method, f"{served.url}/api/v1/models") as resp:
                assert resp.status == 405
                assert resp.headers["Allow"] == "GET, HEAD"


async def test_a_token_guards_every_route_but_health(tmp_path: Path) -> None:
    async with serving(tmp_path, token=TOKEN) as s:
        page = f"{s.url}/models/{MODEL}"
        status, headers, body = await get(page)
        assert status == 401 and headers["WWW-Authenticate"].startswith("Basic")
        assert (await get(page, headers={"Authorization": "Bearer wrong"}))[0] == 401
        basic = base64.b64encode(f"me:{TOKEN}".encode()).decode()
        bodies = []
        for auth in (f"Bearer {TOKEN}", f"Basic {basic}"):
            status, _, body = await get(page, headers={"Authorization": auth})
            assert status == 200
            bodies.append(body)
        for path in ("/healthz", "/readyz"):
            assert (await get(s.url + path))[0] == 200
        for path in ("/", "/api/v1/models", "/static/provmon.js"):
            status, _, body = await get(s.url + path, headers={"Authorization": f"Bearer {TOKEN}"})
            assert status == 200
            bodies.append(body)
        assert all(TOKEN not in b for b in bodies)


async def test_series_api(served: Served) -> None:
    doc = await get_json(f"{served.url}/api/v1/models/{MODEL}/series?metric=ttft_ms&window=1h")
    data = doc["data"]
    assert (data["metric"], data["unit"], data["window"], data["bucket_s"]) == (
        "ttft_ms",
        "ms",
        "1h",
        60,
    )
    series = {s["provider_name"]: s for s in data["series"]}
    assert set(series) == {"Alpha", "Beta", HOSTILE}
    alpha_ok = [p for p in window_probes(served, "Alpha", 3600) if p.outcome is Outcome.OK]
    assert sum(p["n"] for p in series["Alpha"]["points"]) == len(alpha_ok)
    for point in series["Beta"]["points"]:
        assert point["p50"] <= point["p75"] <= point["p90"] <= point["p99"]
    speed = await get_json(f"{served.url}/api/v1/models/{MODEL}/series?metric=e2e_tps&window=7d")
    for s in speed["data"]["series"]:
        for point in s["points"]:
            assert point["p50"] >= point["p75"] >= point["p90"] >= point["p99"]  # slow side
    total = sum(p["n"] for s in speed["data"]["series"] for p in s["points"])
    ok = [p for p in served.written.probes if p.model == MODEL and p.outcome is Outcome.OK]
    assert total == len(ok)  # every ok probe of the last 3 days is in one hourly bucket
    for bad in ("metric=cost&window=1h", "metric=ttft_ms&window=2h"):
        status, _, body = await get(f"{served.url}/api/v1/models/{MODEL}/series?{bad}")
        assert status == 400 and "must be one of" in body


async def test_uptime_api(served: Served) -> None:
    doc = await get_json(f"{served.url}/api/v1/models/{MODEL}/uptime?days=4")
    targets = {t["provider_name"]: t for t in doc["data"]["targets"]}
    assert all(len(t["hours"]) == 24 and len(t["days"]) == 4 for t in targets.values())
    for provider, t in targets.items():
        mine = [p for p in served.written.probes if p.provider == provider and p.model == MODEL]
        for bar in (*t["hours"], *t["days"]):
            start, end = datetime.fromisoformat(bar["start"]), datetime.fromisoformat(bar["end"])
            inside = [p for p in mine if start <= p.started_at < end]
            assert bar["ok"] == sum(p.outcome is Outcome.OK for p in inside)
            assert bar["failed"] == sum(p.outcome.counts_against_uptime for p in inside)
            assert bar["rate_limited"] == sum(p.outcome is Outcome.RATE_LIMITED for p in inside)
    beta = targets["Beta"]
    assert sum(h["failed"] for h in beta["hours"]) == 8
    assert sum(d["ok"] for d in targets["Alpha"]["days"]) > sum(
        h["ok"] for h in targets["Alpha"]["hours"]
    )  # the history of two and three days ago
    incident = doc["data"]["incidents"][0]["id"]
    assert any(incident in h["incidents"] for h in beta["hours"])
    assert (await get(f"{served.url}/api/v1/models/{MODEL}/uptime?days=0"))[0] == 400


async def test_incidents_api(served: Served) -> None:
    doc = await get_json(f"{served.url}/api/v1/incidents")
    found = {(i["provider"], i["kind"], i["ended_at"] is None) for i in doc["data"]}
    assert found == {("Beta", "down", False), ("Gamma", "down", True)}
    only = await get_json(f"{served.url}/api/v1/incidents?model={OTHER_MODEL}")
    assert [i["provider"] for i in only["data"]] == ["Gamma"]
    later = (served.now + timedelta(minutes=1)).isoformat()
    status, _, body = await get(f"{served.url}/api/v1/incidents", params={"since": later})
    assert status == 200 and [i["provider"] for i in json.loads(body)["data"]] == ["Gamma"]
    assert (await get(f"{served.url}/api/v1/incidents?since=yesterday"))[0] == 400
    models = (await get_json(f"{served.url}/api/v1/models"))["data"]
    assert {m["id"]: m["open_incidents"] for m in models} == {MODEL: 0, OTHER_MODEL: 1}


async def test_index_and_badges(served: Served) -> None:
    status, _, html = await get(f"{served.url}/")
    assert status == 200
    assert f'href="/models/{MODEL}"' in html and f'href="/models/{OTHER_MODEL}"' in html
    ep = (await get_json(f"{served.url}/api/v1/models/{MODEL}/endpoints"))["data"]["endpoints"][0]
    _, headers, svg = await get(f"{served.url}/badge/{MODEL}/Alpha.svg")
    assert headers["Content-Type"].startswith("image/svg+xml")
    assert f"{ep['uptime_last_1d']:.1f}%" in svg and svg.startswith("<svg")
    _, _, svg = await get(f"{served.url}/badge/{MODEL}/Alpha.svg?metric=ttft")
    assert f"{ep['latency_last_30m']['p50']:.0f} ms" in svg
    assert (await get(f"{served.url}/badge/{MODEL}/Nobody.svg"))[0] == 404
    assert (await get(f"{served.url}/models/no/such-model"))[0] == 404


async def test_answers_are_reused_for_a_second(served: Served) -> None:
    url = f"{served.url}/api/v1/models"
    first = await asyncio.gather(*(get_json(url) for _ in range(5)))
    assert len({doc["generated_at"] for doc in first}) == 1  # one computation for all five
    await asyncio.sleep(1.1)
    assert (await get_json(url))["generated_at"] != first[0]["generated_at"]


async def test_health_and_readiness(served: Served, tmp_path: Path) -> None:
    assert (await get(f"{served.url}/healthz"))[0] == 200
    status, _, body = await get(f"{served.url}/readyz")
    assert status == 200 and json.loads(body)["status"] == "ready"
    empty = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    site = site_from_config(served.cfg, accounting(served.cfg))
    try:
        async with running(empty, site, Listen("127.0.0.1", 0)) as url:
            assert (await get(f"{url}/healthz"))[0] == 200
            status, _, body = await get(f"{url}/readyz")
            assert status == 503 and "provmon db upgrade" in json.loads(body)["reason"]
            status, _, body = await get(f"{url}/api/v1/models")
            assert status == 503 and "database unavailable" in body
    finally:
        await empty.dispose()
