"""The live pages' HTTP side: an aiohttp.web application, read-only, over the database.

Every response carries the security headers (`security.SECURITY_HEADERS`); with a token
configured every route but /healthz and /readyz needs it; only GET and HEAD are routed. The
handlers parse the request, call `read` and render with `pages`, `views` or `badge`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from monitor import heap
from monitor.clock import utc_now
from monitor.errors import StoreUnavailable
from monitor.storage.database import Engine
from monitor.storage.web import incidents_since, readiness
from monitor.web import badge, pages, read
from monitor.web.cache import SettledCache
from monitor.web.history import METRICS, WINDOWS, TargetBars
from monitor.web.memo import Handler, ResponseMemo
from monitor.web.security import SECURITY_HEADERS, Listen, authorized
from monitor.web.site import Site
from monitor.web.views import page_accounting

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
MAX_DAYS = 90
OPEN_PATHS = frozenset({"/healthz", "/readyz"})


@dataclass(frozen=True, slots=True)
class WebContext:
    engine: Engine
    site: Site
    token: str | None
    cache: SettledCache | None
    now: Callable[[], datetime] = utc_now
    memo: ResponseMemo | None = None


@web.middleware
async def memoized(request: web.Request, handler: Handler) -> web.StreamResponse:
    memo = request.app[CONTEXT].memo
    if memo is None or request.method not in ("GET", "HEAD") or request.path in OPEN_PATHS:
        return await handler(request)
    if request.path.startswith("/static/"):
        return await handler(request)
    return await memo.get(request.path_qs, handler, request)


CONTEXT = web.AppKey("context", WebContext)


def _json(doc: Any, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(doc, separators=(",", ":")),
        status=status,
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(
        text=text, status=status, content_type="text/html", headers={"Cache-Control": "no-store"}
    )


def _wants_json(request: web.Request) -> bool:
    return request.path.startswith(("/api/", "/healthz", "/readyz"))


def _error(request: web.Request, status: int, message: str) -> web.Response:
    if _wants_json(request):
        return _json({"error": {"code": status, "message": message}}, status)
    ctx = request.app[CONTEXT]
    return _html(pages.error_page(status, message, ctx.now(), ctx.site.vantage), status)


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authentication, error pages and the security headers, for every route."""
    ctx = request.app[CONTEXT]
    response: web.StreamResponse
    if request.path not in OPEN_PATHS and not authorized(
        request.headers.get("Authorization"), ctx.token
    ):
        response = _error(request, 401, "authentication required")
        response.headers["WWW-Authenticate"] = 'Basic realm="provmon", charset="UTF-8"'
    else:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = _error(request, exc.status, exc.reason)
            if exc.status == 405:
                response.headers["Allow"] = "GET, HEAD"
        except StoreUnavailable as exc:
            log.warning("web: database unavailable (%s)", type(exc.__cause__ or exc).__name__)
            response = _error(request, 503, "database unavailable")
    response.headers.update(SECURITY_HEADERS)
    if request.path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-cache"
    return response


def _model(request: web.Request) -> str:
    return request.match_info["model"]


async def index(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    now = ctx.now()
    rows = await read.models_index(ctx.engine, ctx.site, now, ctx.cache)
    return _html(pages.index_page(rows, now, ctx.site.vantage))


async def api_models(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    now = ctx.now()
    rows = await read.models_index(ctx.engine, ctx.site, now, ctx.cache)
    return _json({"data": rows, "generated_at": now.isoformat()})


async def model_page(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    model, now = _model(request), ctx.now()
    live, (bars, incidents) = await read.gather_all(
        read.model_live(ctx.engine, ctx.site, model, now, ctx.cache),
        read.model_uptime(ctx.engine, ctx.site, model, now, cache=ctx.cache),
    )
    if not live.statuses:
        raise web.HTTPNotFound(reason=f"no model {model!r} is configured or measured")
    doc = live.endpoints(ctx.site, now)
    html = pages.model_page(
        model,
        doc["data"]["endpoints"],
        bars,
        incidents,
        now=now,
        vantage=ctx.site.vantage,
        days=len(bars[0].days) if bars else 30,
        accounting=page_accounting(ctx.site.accounting),
        refresh_s=ctx.site.refresh_s,
        window=_first_window(bars),
    )
    return _html(html)


def _first_window(bars: list[TargetBars]) -> str:
    """24 h, or 1 h while the model has data in no more than two of the last 24 hours."""
    hours = {b.start for tb in bars for b in tb.hours if b.outcomes}
    return "1h" if len(hours) <= 2 else "24h"


async def api_endpoints(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    model, now = _model(request), ctx.now()
    live = await read.model_live(ctx.engine, ctx.site, model, now, ctx.cache)
    if not live.statuses:
        raise web.HTTPNotFound(reason=f"no model {model!r} is configured or measured")
    return _json(live.endpoints(ctx.site, now))


def _choice(request: web.Request, name: str, default: str, allowed: Any) -> str:
    value = request.query.get(name, default)
    if value not in allowed:
        raise web.HTTPBadRequest(reason=f"{name} must be one of: {', '.join(allowed)}")
    return value


def _int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query.get(name, str(default))
    if not text.isdigit() or not low <= int(text) <= high:
        raise web.HTTPBadRequest(reason=f"{name} must be a whole number from {low} to {high}")
    return int(text)


async def api_series(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    metric = _choice(request, "metric", "ttft_ms", METRICS)
    window = _choice(request, "window", "24h", WINDOWS)
    doc = await read.model_series(
        ctx.engine, ctx.site, _model(request), metric, window, ctx.now(), ctx.cache
    )
    return _json(doc)


async def api_uptime(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    days = _int(request, "days", 30, 1, MAX_DAYS)
    now = ctx.now()
    bars, incidents = await read.model_uptime(
        ctx.engine, ctx.site, _model(request), now, days, ctx.cache
    )
    return _json(
        {
            "data": {
                "id": _model(request),
                "days": days,
                "targets": [tb.to_json() for tb in bars],
                "incidents": [i.to_json() for i in incidents],
            },
            "generated_at": now.isoformat(),
        }
    )


def _since(request: web.Request, now: datetime) -> datetime:
    text = request.query.get("since")
    if text is None:
        return now - timedelta(days=30)
    try:
        since = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise web.HTTPBadRequest(reason="since must be an ISO-8601 timestamp") from None
    return since if since.tzinfo is not None else since.replace(tzinfo=now.tzinfo)


async def api_incidents(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    now = ctx.now()
    found = await incidents_since(ctx.engine, _since(request, now), request.query.get("model"))
    return _json({"data": [i.to_json() for i in found], "generated_at": now.isoformat()})


async def badge_svg(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    metric = _choice(request, "metric", "uptime", ("uptime", "ttft"))
    model, provider = _model(request), request.match_info["provider"]
    live = await read.model_live(ctx.engine, ctx.site, model, ctx.now(), ctx.cache)
    mine = [s for s in live.statuses if s.provider == provider]
    route = request.query.get("route")
    if route is not None:
        mine = [s for s in mine if s.route == route]
    mine.sort(key=lambda s: s.route != "openrouter")  # openrouter first when both are probed
    if not mine:
        raise web.HTTPNotFound(reason="no such target")
    s = mine[0]
    if metric == "uptime":
        svg = badge.uptime_badge(s.windows["1d"].uptime_pct)
    else:
        svg = badge.ttft_badge(s.windows["30m"].ttft_p50_ms)
    return web.Response(
        text=svg, content_type="image/svg+xml", headers={"Cache-Control": "max-age=60"}
    )


async def healthz(request: web.Request) -> web.StreamResponse:
    return _json({"status": "ok", "pid": os.getpid()})


async def readyz(request: web.Request) -> web.StreamResponse:
    problem = await readiness(request.app[CONTEXT].engine)
    if problem is not None:
        return _json({"status": "unavailable", "reason": problem}, 503)
    return _json({"status": "ready"})


def make_app(
    engine: Engine,
    site: Site,
    *,
    token: str | None = None,
    now: Callable[[], datetime] = utc_now,
    cache: SettledCache | None = None,
    memo_s: float = 0.0,
) -> web.Application:
    """The application. `cache` keeps settled history between requests; `memo_s` > 0 reuses
    each URL's answer that long (`running` does both; without, every request reads and
    computes all it shows)."""
    app = web.Application(middlewares=[guard, memoized])
    memo = ResponseMemo(memo_s) if memo_s > 0 else None
    app[CONTEXT] = WebContext(engine, site, token, cache, now, memo)

    async def close_cache(app: web.Application) -> None:
        if cache is not None:
            await cache.close()

    app.on_cleanup.append(close_cache)
    app.add_routes(
        [
            web.get("/", index),
            web.get("/healthz", healthz),
            web.get("/readyz", readyz),
            web.get("/api/v1/models", api_models),
            web.get("/api/v1/models/{model:.+}/endpoints", api_endpoints),
            web.get("/api/v1/models/{model:.+}/series", api_series),
            web.get("/api/v1/models/{model:.+}/uptime", api_uptime),
            web.get("/api/v1/incidents", api_incidents),
            web.get("/models/{model:.+}", model_page),
            web.get("/badge/{model:.+}/{provider}.svg", badge_svg),
            web.static("/static", STATIC, show_index=False, follow_symlinks=False),
        ]
    )
    return app


MEMO_S = 1.0
"""How long an answer is reused: well under the pages' refresh interval."""


@contextlib.asynccontextmanager
async def running(
    engine: Engine,
    site: Site,
    listen: Listen,
    *,
    token: str | None = None,
    memo_s: float = MEMO_S,
) -> AsyncIterator[str]:
    """Serve on `listen` (port 0: any free one) until the block ends; yields the base URL.

    While it serves, what exists when it starts (modules, config, the app: some 130,000
    objects that live as long as the process) is frozen out of the garbage collector's full
    passes (`gc.freeze`): each pass over them took 120–150 ms, and a page that triggered one
    took that much longer (the p99 of `/` and the model page); passes over the rest take a
    few. Unfrozen when the block ends."""
    app = make_app(engine, site, token=token, cache=SettledCache(), memo_s=memo_s)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    heap.freeze()
    try:
        await web.TCPSite(runner, listen.host, listen.port).start()
        port = runner.addresses[0][1] if runner.addresses else listen.port
        yield Listen(listen.host, port).url()
    finally:
        heap.thaw()
        await runner.cleanup()
