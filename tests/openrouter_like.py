"""An OpenRouter-like server for tests, written apart from provmon's simulator: endpoints with
tags, quantizations and published stats (the last two only with the key, as OpenRouter does),
a listing the test changes over time, and a chat route that records the pins it is sent and
streams from the endpoint they name (OpenRouter's 404 when they name none)."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

KEY = "sk-or-v1-test-0123456789abcdef"
MODEL = "acme/wonder-70b"


def endpoint(
    provider: str,
    tag: str,
    *,
    quantization: str = "fp8",
    context: int = 131072,
    max_output: int | None = 8192,
    price_in: str = "0.0000005",
    price_out: str = "0.000002",
    status: int = 0,
    uptime_30m: float | None = 99.5,
    ttft_ms: tuple[float, float, float, float] = (400.0, 520.0, 700.0, 1500.0),
    tps: tuple[float, float, float, float] = (60.0, 52.0, 40.0, 21.0),
    params: tuple[str, ...] = ("max_tokens", "temperature", "tools"),
) -> dict[str, Any]:
    """One entry of `data.endpoints`, shaped as OpenRouter's documentation shows it."""
    return {
        "name": f"{provider} | {MODEL}",
        "model_id": MODEL,
        "model_name": "Acme: Wonder 70B",
        "context_length": context,
        "pricing": {"prompt": price_in, "completion": price_out, "request": "0", "image": "0"},
        "provider_name": provider,
        "tag": tag,
        "quantization": quantization,
        "max_completion_tokens": max_output,
        "max_prompt_tokens": None,
        "supported_parameters": list(params),
        "status": status,
        "uptime_last_5m": uptime_30m,
        "uptime_last_30m": uptime_30m,
        "uptime_last_1d": uptime_30m,
        "supports_implicit_caching": False,
        "latency_last_30m": dict(zip(("p50", "p75", "p90", "p99"), ttft_ms, strict=True)),
        "throughput_last_30m": dict(zip(("p50", "p75", "p90", "p99"), tps, strict=True)),
    }


def default_endpoints() -> list[dict[str, Any]]:
    """Three endpoints, two of them DeepInfra's (a quantized one and a turbo one)."""
    return [
        endpoint("DeepInfra", "deepinfra/fp8", quantization="fp8"),
        endpoint(
            "DeepInfra",
            "deepinfra/turbo",
            quantization="fp4",
            context=32768,
            price_in="0.0000009",
            price_out="0.000003",
            ttft_ms=(150.0, 180.0, 230.0, 400.0),
            tps=(180.0, 160.0, 130.0, 90.0),
        ),
        endpoint("Together", "together", quantization="bf16", max_output=None),
    ]


@dataclass
class OpenRouterLike:
    url: str = ""
    listings: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {MODEL: default_endpoints()}
    )
    listing_auth: list[str | None] = field(default_factory=list)
    chats: list[dict[str, Any]] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"{self.url}/api/v1"

    def set_listing(self, endpoints: list[dict[str, Any]], model: str = MODEL) -> None:
        self.listings[model] = copy.deepcopy(endpoints)

    async def endpoints(self, request: web.Request) -> web.Response:
        model = f"{request.match_info['author']}/{request.match_info['slug']}"
        auth = request.headers.get("Authorization")
        self.listing_auth.append(auth)
        if auth is not None and auth != f"Bearer {KEY}":
            return web.json_response(
                {"error": {"code": 401, "message": "No auth credentials found"}}, status=401
            )
        if model not in self.listings:
            return web.json_response(
                {"error": {"code": 404, "message": "Model not found"}}, status=404
            )
        listed = copy.deepcopy(self.listings[model])
        if auth is None:  # OpenRouter: these two only for authenticated requests
            for e in listed:
                e["latency_last_30m"] = None
                e["throughput_last_30m"] = None
        data = {"id": model, "name": "Acme: Wonder 70B", "created": 1, "endpoints": listed}
        return web.json_response({"data": data})

    def _chosen(self, model: str, only: list[str]) -> dict[str, Any] | None:
        for e in self.listings.get(model, []):
            slug = e["tag"].partition("/")[0]
            if any(p.casefold() in (e["tag"], slug) for p in only):
                return e
        return None

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.chats.append(body)
        only = (body.get("provider") or {}).get("only") or []
        chosen = self._chosen(body["model"], only)
        if chosen is None:
            available = sorted({e["tag"].partition("/")[0] for e in self.listings[body["model"]]})
            error = {
                "message": "No allowed providers are available for the selected model.",
                "code": 404,
                "metadata": {"available_providers": available, "requested_providers": only},
            }
            return web.json_response({"error": error}, status=404)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for i, text in enumerate(["Hello", " there", " friend"]):
            chunk = {
                "id": "gen-1",
                "object": "chat.completion.chunk",
                "model": body["model"],
                "provider": chosen["provider_name"],
                "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
            }
            if i == 2:
                chunk["choices"][0]["finish_reason"] = "stop"
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        usage = {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13, "cost": 1e-5}
        final = {"id": "gen-1", "object": "chat.completion.chunk", "choices": [], "usage": usage}
        await response.write(f"data: {json.dumps(final)}\n\ndata: [DONE]\n\n".encode())
        await response.write_eof()
        return response


@contextlib.asynccontextmanager
async def openrouter_like() -> AsyncIterator[OpenRouterLike]:
    server = OpenRouterLike()
    app = web.Application()
    app.router.add_get("/api/v1/models/{author}/{slug}/endpoints", server.endpoints)
    app.router.add_post("/api/v1/chat/completions", server.chat)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield server
    finally:
        await runner.cleanup()


@contextlib.contextmanager
def threaded_openrouter_like() -> Iterator[OpenRouterLike]:
    """The server in its own event loop on a thread, so the CLI can run its own loop."""
    ready = threading.Event()
    box: list[OpenRouterLike] = []
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def serve() -> None:
        async with openrouter_like() as server:
            box.append(server)
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield box[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()
