"""The simulator's HTTP side: aiohttp.web routes that write the farm's plans to the wire."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from aiohttp import web

from monitor.simulator.catalog import direct_models_json, endpoints_json, models_json
from monitor.simulator.farm import Farm, TruthRecord
from monitor.simulator.plan import SENT_NS_PLACEHOLDER, Plan, Route

FARM = web.AppKey("farm", Farm)
IN_FLIGHT: web.AppKey[set[asyncio.Task[Any]]] = web.AppKey("in_flight")
STOPPING = web.AppKey("stopping", asyncio.Event)


@dataclass(frozen=True, slots=True)
class Simulator:
    """A running simulator: its farm and where to reach it."""

    farm: Farm
    base_url: str

    @property
    def openrouter_base_url(self) -> str:
        """Base URL of the OpenRouter-like front, e.g. http://127.0.0.1:41233/api/v1."""
        return f"{self.base_url}/api/v1"

    def direct_base_url(self, slug: str) -> str:
        """Base URL of one provider's own OpenAI-compatible API, e.g. .../deepinfra/v1."""
        return f"{self.base_url}/{slug}/v1"


def build_app(farm: Farm) -> web.Application:
    """The aiohttp application serving `farm` (direct routes, OpenRouter front, /_sim).

    Run it with `run_simulator`, or an AppRunner with `handler_cancellation=True`: that is how a
    hang or stall learns that its client went away.
    """
    app = web.Application()
    app[FARM] = farm
    app[IN_FLIGHT] = set()
    app[STOPPING] = asyncio.Event()
    app.on_shutdown.append(_cancel_in_flight)
    app.add_routes(
        [
            web.post("/api/v1/chat/completions", _openrouter_chat),
            web.get("/api/v1/models", _openrouter_models),
            web.get("/api/v1/models/{author}/{name}/endpoints", _openrouter_endpoints),
            web.get("/_sim/truth", _truth),
            web.post("/_sim/reset", _reset),
            web.post("/{slug}/v1/chat/completions", _direct_chat),
            web.get("/{slug}/v1/models", _direct_models),
        ]
    )
    return app


@contextlib.asynccontextmanager
async def run_simulator(
    farm: Farm, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[Simulator]:
    """Serve `farm` in this event loop for the duration of the block (port 0: ephemeral)."""
    if farm.start_ns is None:
        farm.start_ns = time.monotonic_ns()
    runner = web.AppRunner(
        build_app(farm), handler_cancellation=True, shutdown_timeout=1.0, access_log=None
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        url_host = f"[{bound_host}]" if ":" in bound_host else bound_host
        yield Simulator(farm, f"http://{url_host}:{bound_port}")
    finally:
        await runner.cleanup()


async def serve(
    farm: Farm,
    host: str = "127.0.0.1",
    port: int = 8808,
    *,
    ready: Callable[[Simulator], None] | None = None,
) -> None:
    """Serve `farm` until cancelled (`provmon simulate`, out-of-process benchmarks).

    `ready` is called once the port is bound, e.g. to print `sim.base_url` when `port` is 0.
    """
    async with run_simulator(farm, host, port) as sim:
        if ready is not None:
            ready(sim)
        await asyncio.Event().wait()


# --- handlers -------------------------------------------------------------------------------


async def _direct_chat(request: web.Request) -> web.StreamResponse:
    return await _chat(request, "direct", request.match_info["slug"])


async def _openrouter_chat(request: web.Request) -> web.StreamResponse:
    return await _chat(request, "openrouter", None)


async def _chat(request: web.Request, route: Route, slug: str | None) -> web.StreamResponse:
    arrival_ns = time.monotonic_ns()
    arrival_s = asyncio.get_running_loop().time()
    farm = request.app[FARM]
    if route == "direct" and farm.profile(slug or "") is None:
        raise web.HTTPNotFound(text=f"no provider {slug!r} in this farm")
    body = await request.read()
    plan, record = farm.plan_chat(
        route, slug, request.headers.get("Authorization"), body, arrival_ns
    )
    task = asyncio.current_task()
    assert task is not None
    in_flight = request.app[IN_FLIGHT]
    in_flight.add(task)
    try:
        return await _write(request, plan, record, arrival_s, farm.stamp_send_time)
    except ConnectionError:  # the client went away while we wrote
        record.close("client", time.monotonic_ns())
        _abort(request)
        await _forever()  # until aiohttp cancels the handler for the lost connection
    except asyncio.CancelledError:  # client gone (handler cancellation), or shutdown
        record.close(
            "shutdown" if request.app[STOPPING].is_set() else "client", time.monotonic_ns()
        )
        _abort(request)  # never let a stall or hang end as a clean response
        raise
    finally:
        in_flight.discard(task)


async def _write(
    request: web.Request, plan: Plan, record: TruthRecord, arrival_s: float, stamp: bool
) -> web.StreamResponse:
    """Carry out `plan`: wait each step's delay (from the arrival, so no drift), write it.

    Endings "cut", "stall" and "hang" never return: they wait for the cancellation that
    follows the connection's loss (ours for "cut", the client's or shutdown's otherwise).
    """
    loop = asyncio.get_running_loop()
    due_s = arrival_s
    if plan.status is None:  # no response head at all
        if plan.ending == "cut":  # refuse-like: drop the connection
            record.close("server", time.monotonic_ns())
            _abort(request)
        await _forever()
    if plan.status != 200:
        due_s += sum(step.delay_s for step in plan.steps)
        await asyncio.sleep(max(0.0, due_s - loop.time()))
        record.close("server", time.monotonic_ns())
        return web.Response(status=plan.status, body=plan.body, headers=dict(plan.headers))

    response = web.StreamResponse(status=200, headers=dict(plan.headers))
    response.enable_chunked_encoding()
    await response.prepare(request)
    for step in plan.steps:
        due_s += step.delay_s
        await asyncio.sleep(max(0.0, due_s - loop.time()))
        data = step.data
        now_ns = time.monotonic_ns()
        if stamp:
            data = data.replace(SENT_NS_PLACEHOLDER, str(now_ns).encode())
        await response.write(data)
        record.wrote(step, now_ns)

    if plan.ending == "cut":  # abort mid-body: the client sees an incomplete chunked body
        await _flushed(request)
        record.close("server", time.monotonic_ns())
        _abort(request)
        await _forever()
    if plan.ending in ("stall", "hang"):
        while plan.keepalive:
            await asyncio.sleep(plan.keepalive_s)
            await response.write(plan.keepalive)
        await _forever()
    await response.write_eof()
    record.close("server", time.monotonic_ns())
    return response


async def _flushed(request: web.Request) -> None:
    """Wait until the transport's buffer is on the wire, so an abort loses nothing written."""
    for _ in range(1000):  # at most ~1 s: a client that stops reading gets cut anyway
        if request.transport is None or request.transport.get_write_buffer_size() == 0:
            return
        await asyncio.sleep(0.001)


async def _forever() -> NoReturn:
    """Wait until cancelled: by the client going away or by server shutdown."""
    await asyncio.get_running_loop().create_future()
    raise AssertionError("unreachable")


def _abort(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.abort()


async def _cancel_in_flight(app: web.Application) -> None:
    """On shutdown, end every chat handler (hangs and stalls would otherwise wait forever)."""
    app[STOPPING].set()
    for task in app[IN_FLIGHT].copy():
        task.cancel()


async def _direct_models(request: web.Request) -> web.Response:
    farm = request.app[FARM]
    profile = farm.profile(request.match_info["slug"])
    if profile is None:
        raise web.HTTPNotFound(text="no such provider")
    if (
        farm.api_key is not None
        and request.headers.get("Authorization") != f"Bearer {farm.api_key}"
    ):
        return web.json_response({"error": {"message": "Invalid API key"}}, status=401)
    return web.json_response(direct_models_json(farm, profile))


async def _openrouter_models(request: web.Request) -> web.Response:
    return web.json_response(models_json(request.app[FARM]))


async def _openrouter_endpoints(request: web.Request) -> web.Response:
    """Public, as OpenRouter's is; a request with a key (the farm's, when it has one) also
    gets the latency and throughput figures. A wrong key is a 401."""
    farm = request.app[FARM]
    model_id = f"{request.match_info['author']}/{request.match_info['name']}"
    authorization = request.headers.get("Authorization")
    authenticated = bool(authorization) and (
        farm.api_key is None or authorization == f"Bearer {farm.api_key}"
    )
    if authorization and not authenticated:
        error = {"code": 401, "message": "No auth credentials found"}
        return web.json_response({"error": error}, status=401)
    found = endpoints_json(farm, model_id, time.monotonic_ns(), authenticated=authenticated)
    if found is None:
        return web.json_response({"error": {"code": 404, "message": "Model not found"}}, status=404)
    return web.json_response(found)


async def _truth(request: web.Request) -> web.Response:
    """The truth log as a JSON list; `?since_ns=N` keeps requests that arrived at or after N."""
    try:
        since_ns = int(request.query.get("since_ns", "0"))
    except ValueError:
        raise web.HTTPBadRequest(text="since_ns must be an integer") from None
    truth = request.app[FARM].truth
    return web.json_response([r.to_json() for r in truth if r.arrival_ns >= since_ns])


async def _reset(request: web.Request) -> web.Response:
    request.app[FARM].reset(time.monotonic_ns())
    return web.json_response({"reset": True})
