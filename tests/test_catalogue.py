"""Catalogue watch: the pure diff, its storage on SQLite and PostgreSQL, and the watch end to end
against an OpenRouter-like server (not the simulator) whose listing changes over time, with one
notification per change delivered to a real webhook receiver through the outbox."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from monitor.alerts.catalogue import catalogue_notifications
from monitor.alerts.channels import build_channels
from monitor.alerts.delivery import OutboxSender
from monitor.catalogue.diff import ChangeKind, diff
from monitor.catalogue.listing import Endpoint, parse_endpoints
from monitor.catalogue_api import read_endpoints
from monitor.catalogue_watch import CatalogueWatch
from monitor.config import Secret, parse_config
from monitor.storage.alerts import AlertStore
from monitor.storage.catalogue import CatalogueStore
from tests.openrouter_like import KEY, MODEL, default_endpoints, endpoint, openrouter_like
from tests.receivers import webhook_receiver

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def _listing(raw: list[dict[str, Any]]) -> list[Endpoint]:
    return parse_endpoints({"data": {"endpoints": raw}})


# --- the diff --------------------------------------------------------------------------------


def test_first_listing_is_the_baseline_and_each_change_is_one_event() -> None:
    before = _listing(default_endpoints())
    assert diff(MODEL, None, before, T0) == []
    assert diff(MODEL, before, before, T0) == []
    fp8, _turbo, together = before
    after = [
        dataclasses.replace(
            fp8,
            input_price_per_mtok=0.6,
            context_length=65536,
            max_completion_tokens=4096,
            status=-1,
            supported_parameters=("max_tokens", "temperature", "tool_choice"),
            uptime_last_30m=12.0,  # published figures are not catalogue changes
        ),
        dataclasses.replace(together, quantization="fp8"),
        _listing([endpoint("Fireworks", "fireworks")])[0],
    ]
    events = diff(MODEL, before, after, T0)
    assert [(e.endpoint, e.kind) for e in events] == [
        ("deepinfra/turbo", ChangeKind.REMOVED),
        ("fireworks", ChangeKind.ADDED),
        ("deepinfra/fp8", ChangeKind.PRICE),
        ("deepinfra/fp8", ChangeKind.CONTEXT),
        ("deepinfra/fp8", ChangeKind.MAX_OUTPUT),
        ("deepinfra/fp8", ChangeKind.STATUS),
        ("deepinfra/fp8", ChangeKind.PARAMETERS),
        ("together", ChangeKind.QUANTIZATION),
    ]
    text = [e.describe() for e in events]
    assert text[0] == (
        "DeepInfra [deepinfra/turbo]: endpoint removed (was fp4, 32,768 context, "
        "max output 8,192, $0.9/$3 per M in/out)"
    )
    assert text[2] == "DeepInfra [deepinfra/fp8]: price per M tokens in/out $0.5/$2 → $0.6/$2"
    assert text[3] == "DeepInfra [deepinfra/fp8]: context 131,072 → 65,536"
    assert text[5] == "DeepInfra [deepinfra/fp8]: status 0 → -1"
    assert text[6] == "DeepInfra [deepinfra/fp8]: supported parameters +tool_choice -tools"
    assert text[7] == "Together [together]: quantization bf16 → fp8"
    assert events[2].before == {"input": 0.5, "output": 2.0}
    assert events[2].after == {"input": 0.6, "output": 2.0}
    assert all(e.at == T0 and e.model == MODEL for e in events)


# --- storage, on both databases --------------------------------------------------------------


async def test_snapshots_events_and_outbox_rows_are_written_together(
    migrated: AsyncEngine,
) -> None:
    store = CatalogueStore(migrated)
    notify = catalogue_notifications(["hook", "log"], "eu")
    first = _listing(default_endpoints())
    assert await store.record(MODEL, 1, T0, "eu", True, first, notify) == []
    later = T0 + timedelta(hours=1)
    changed = [dataclasses.replace(first[0], output_price_per_mtok=2.5), *first[1:]]
    stored = await store.record(MODEL, 2, later, "eu", True, changed, notify)
    assert stored is not None
    ((event_id, event),) = [(s.id, s.event) for s in stored]
    assert event.kind is ChangeKind.PRICE
    # the same slot again (another monitor): nothing recorded twice
    again = [dataclasses.replace(changed[0], status=-2), *changed[1:]]
    assert await store.record(MODEL, 2, later + timedelta(minutes=5), "us", True, again) is None
    rows = await AlertStore(migrated).outbox()
    assert [(r["incident_id"], r["transition"], r["channel"], r["status"]) for r in rows] == [
        (None, f"catalogue:{event_id}", "hook", "pending"),
        (None, f"catalogue:{event_id}", "log", "pending"),
    ]
    payload = rows[0]["payload"]
    assert payload["commonLabels"]["alertname"] == "CatalogueChange"
    assert payload["commonLabels"]["endpoint"] == "deepinfra/fp8"
    assert payload["provmon"]["catalogue_event"]["after"] == {"input": 0.5, "output": 2.5}

    listed = await store.events(since=T0)
    assert [(s.id, s.event) for s in listed] == [(event_id, event)]
    assert await store.events(since=later + timedelta(seconds=1)) == []
    assert await store.events(models=["other/model"]) == []
    snaps = await store.snapshots(MODEL)
    assert [(s.observed_at, s.vantage) for s in snaps] == [(T0, "eu"), (later, "eu")]
    assert snaps[1].endpoints == changed
    # pruning keeps each model's latest snapshot (the next listing is compared with it)
    assert await store.prune(later + timedelta(days=1)) == 1
    assert [s.observed_at for s in await store.snapshots(MODEL)] == [later]
    assert len(await store.events()) == 1


# --- the watch, end to end -------------------------------------------------------------------


def _config(base_url: str, hook_url: str, **catalogue: Any) -> Any:
    doc = {
        "vantage": "eu",
        "openrouter": {"base_url": base_url},
        "catalogue": {"every_s": 3600} | catalogue,
        "alerts": {
            "retry_base_s": 0.01,
            "channels": [{"name": "hook", "type": "webhook", "url": hook_url}],
        },
        "targets": [
            {
                "route": "openrouter",
                "model": MODEL,
                "endpoints": [{"provider": "DeepInfra", "endpoint": "deepinfra/fp8"}],
            },
            {"route": "openrouter", "model": "nobody/missing", "providers": ["X"]},
        ],
    }
    return parse_config(doc, {"OPENROUTER_API_KEY": KEY})


async def test_the_watch_notifies_each_change_once_through_the_outbox(
    migrated: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    clock = [T0]
    async with (
        openrouter_like() as server,
        webhook_receiver() as rx,
        aiohttp.ClientSession() as session,
    ):
        cfg = _config(server.base_url, rx.url)
        store = CatalogueStore(migrated)

        async def read(model: str) -> list[Endpoint]:
            return await read_endpoints(session, cfg.openrouter.base_url, model, cfg.openrouter_key)

        sender = OutboxSender(
            AlertStore(migrated),
            build_channels(cfg.channels, session),
            cfg.alerts,
            "me",
            now=lambda: clock[0],
        )
        watch = CatalogueWatch(cfg, store, read, now=lambda: clock[0], notified=sender.wake)
        assert watch.models == [MODEL, "nobody/missing"]

        first = await watch.poll()  # the baseline; the second model is not listed (404)
        assert first == {MODEL: [], "nobody/missing": None}
        assert "catalogue of nobody/missing unavailable" in caplog.text
        assert await sender.run_once() == 0

        clock[0] = T0 + timedelta(hours=1)
        listing = default_endpoints()
        listing[1]["pricing"]["completion"] = "0.000004"  # turbo's output price doubles
        del listing[2]  # Together leaves
        listing.append(endpoint("Fireworks", "fireworks/fp8", uptime_30m=97.0))
        server.set_listing(listing)
        second = await watch.poll()
        assert [s.event.kind for s in second[MODEL] or []] == [
            ChangeKind.REMOVED,
            ChangeKind.ADDED,
            ChangeKind.PRICE,
        ]
        assert await sender.run_once() == 3

        clock[0] = T0 + timedelta(hours=1, minutes=30)  # same slot: nothing read twice
        server.set_listing(default_endpoints())
        assert (await watch.poll())[MODEL] is None
        clock[0] = T0 + timedelta(hours=2)
        unchanged = await watch.poll()
        assert [s.event.kind for s in unchanged[MODEL] or []] == [
            ChangeKind.REMOVED,
            ChangeKind.ADDED,
            ChangeKind.PRICE,
        ]
        await sender.run_once()
    assert all(auth == f"Bearer {KEY}" for auth in server.listing_auth)
    summaries = [p["commonAnnotations"]["summary"] for p in rx.payloads()]
    assert summaries[:3] == [
        f"{MODEL}: Together [together]: endpoint removed (was bf16, 131,072 context, "
        "$0.5/$2 per M in/out)",
        f"{MODEL}: Fireworks [fireworks/fp8]: new endpoint (fp8, 131,072 context, max output "
        "8,192, $0.5/$2 per M in/out)",
        f"{MODEL}: DeepInfra [deepinfra/turbo]: price per M tokens in/out $0.9/$3 → $0.9/$4",
    ]
    assert len(rx.deliveries) == 6
    assert len({d.key for d in rx.deliveries}) == 6  # one idempotency key per change
    labels = [p["commonLabels"] for p in rx.payloads()]
    assert [(lb["change"], lb["endpoint"]) for lb in labels[:3]] == [
        ("endpoint_removed", "together"),
        ("endpoint_added", "fireworks/fp8"),
        ("price_changed", "deepinfra/turbo"),
    ]
    assert {lb["severity"] for lb in labels} == {"info"}
    snaps = await CatalogueStore(migrated).snapshots(MODEL)
    assert [s.authenticated for s in snaps] == [True, True, True]
    assert snaps[1].endpoints[-1].uptime_last_30m == 97.0  # published figures are stored too


async def test_notify_off_records_without_notifying(migrated: AsyncEngine) -> None:
    async with openrouter_like() as server, aiohttp.ClientSession() as session:
        cfg = _config(server.base_url, "http://127.0.0.1:9/hook", notify=False)
        clock = [T0]

        async def read(model: str) -> list[Endpoint]:
            return await read_endpoints(session, server.base_url, model, Secret(KEY))

        watch = CatalogueWatch(cfg, CatalogueStore(migrated), read, now=lambda: clock[0])
        await watch.poll()
        clock[0] += timedelta(hours=1)
        server.set_listing(default_endpoints()[:1])
        changes = await watch.poll()
    assert len(changes[MODEL] or []) == 2
    assert await AlertStore(migrated).outbox() == []
