"""The catalogue attached: `provmon discover` with the config's [openrouter] and key,
`provmon catalogue` over what the daemon's watch recorded, and the daemon build polling the
listing and notifying a change through its own outbox sender, against an OpenRouter-like
server that is not the simulator."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.catalogue.diff import ChangeKind
from monitor.catalogue.listing import parse_endpoints
from monitor.cli import main
from monitor.config import parse_config
from monitor.runtime import Pacing, build_daemon
from monitor.storage.catalogue import CatalogueStore
from monitor.storage.database import make_engine, upgrade
from tests.factories import config_doc, write_config
from tests.openrouter_like import (
    KEY,
    MODEL,
    default_endpoints,
    endpoint,
    openrouter_like,
    threaded_openrouter_like,
)
from tests.receivers import webhook_receiver

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def test_discover_reads_the_configs_openrouter_and_sends_its_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_OR_KEY", KEY)
    with threaded_openrouter_like() as server:
        cfg = write_config(
            tmp_path / "provmon.toml",
            {
                "openrouter": {"base_url": server.base_url, "api_key_env": "MY_OR_KEY"},
                # the rest of the file is not read: its variables need not be set
                "targets": [
                    {"route": "direct", "model": "m", "provider": "p",
                     "base_url": "http://127.0.0.1:9/v1", "api_key_env": "NOT_SET_HERE"}
                ],
            },
        )  # fmt: skip
        assert main(["discover", MODEL, "-c", str(cfg)]) == 0
        text = capsys.readouterr().out
        assert main(["discover", MODEL, "-c", str(cfg), "--json"]) == 0
        listed = json.loads(capsys.readouterr().out)
        monkeypatch.delenv("MY_OR_KEY")
        assert main(["discover", MODEL, "-c", str(cfg)]) == 0
        public = capsys.readouterr().out
        assert main(["discover", "nobody/missing", "-c", str(cfg)]) == 1
        err = capsys.readouterr().err
    assert server.listing_auth == [f"Bearer {KEY}", f"Bearer {KEY}", None, None]
    assert "read with your key" in text and KEY not in text
    assert 'endpoint = "deepinfra/turbo"' in text
    assert [e["tag"] for e in listed] == ["deepinfra/fp8", "deepinfra/turbo", "together"]
    assert listed[1]["latency_last_30m"]["p50"] == 150.0
    assert "read without a key" in public and "ms TTFT" not in public
    assert "HTTP 404" in err


def test_catalogue_lists_the_recorded_changes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "p.db"
    cfg = write_config(tmp_path / "provmon.toml", config_doc(database=db))

    async def seed() -> None:
        engine = make_engine(f"sqlite+aiosqlite:///{db}")
        await upgrade(engine)
        store = CatalogueStore(engine)
        before = parse_endpoints({"data": {"endpoints": default_endpoints()}})
        after = parse_endpoints(
            {"data": {"endpoints": [*default_endpoints()[:2], endpoint("Novita", "novita/fp8")]}}
        )
        await store.record(MODEL, 1, T0, "eu", True, before)
        await store.record(MODEL, 2, T0 + timedelta(hours=1), "eu", True, after)
        await engine.dispose()

    asyncio.run(seed())
    assert main(["catalogue", "-c", str(cfg)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["id", "seen", "(UTC)", "model", "provider", "endpoint", "change",
                                "what"]  # fmt: skip
    assert table[1].split()[:7] == ["1", "2026-11-23", "10:00:00", MODEL, "Together", "together",
                                    "endpoint_removed"]  # fmt: skip
    assert table[1].endswith("endpoint removed (was bf16, 131,072 context, $0.5/$2 per M in/out)")
    assert table[2].split()[4:7] == ["Novita", "novita/fp8", "endpoint_added"]
    assert main(["catalogue", "-c", str(cfg), "--json", "--model", MODEL]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["kind"], r["endpoint"]) for r in rows] == [
        ("endpoint_removed", "together"),
        ("endpoint_added", "novita/fp8"),
    ]
    assert rows[0]["at"] == (T0 + timedelta(hours=1)).isoformat()
    assert main(["catalogue", "-c", str(cfg), "--since", "2026-11-24"]) == 0
    assert capsys.readouterr().out == "no catalogue changes recorded\n"
    assert main(["catalogue", "-c", str(cfg), "--model", "other/model", "--json"]) == 0
    assert capsys.readouterr().out == ""


async def test_the_daemon_build_watches_the_catalogue_and_notifies(tmp_path: Path) -> None:
    clock = [T0]
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'd.db'}")
    await upgrade(engine)
    try:
        async with openrouter_like() as server, webhook_receiver() as rx:
            doc = config_doc(
                [
                    {
                        "route": "openrouter",
                        "model": MODEL,
                        "endpoints": [{"provider": "DeepInfra", "endpoint": "deepinfra/fp8"}],
                    }
                ],
                database=tmp_path / "d.db",
                spill=tmp_path / "spill.jsonl",
                openrouter={"base_url": server.base_url},
                alerts={"channels": [{"name": "hook", "type": "webhook", "url": rx.url}]},
            )
            cfg = parse_config(doc, {"OPENROUTER_API_KEY": KEY})
            pacing = Pacing(writer_flush_s=0.05, outbox_poll_s=0.1)
            async with build_daemon(cfg, engine=engine, now=lambda: clock[0], pacing=pacing) as d:
                await d.start(burst=True)
                assert (await d.catalogue.poll())[MODEL] == []
                clock[0] += timedelta(hours=1)
                listing = default_endpoints()
                listing[0]["context_length"] = 65536
                server.set_listing(listing)
                (change,) = (await d.catalogue.poll())[MODEL] or []
                await rx.wait_for(1, 10)
    finally:
        await engine.dispose()
    assert change.event.kind is ChangeKind.CONTEXT
    assert server.listing_auth == [f"Bearer {KEY}"] * 2
    (payload,) = rx.payloads()
    assert payload["commonLabels"]["change"] == "context_changed"
    assert payload["commonAnnotations"]["summary"] == (
        f"{MODEL}: DeepInfra [deepinfra/fp8]: context 131,072 → 65,536"
    )
