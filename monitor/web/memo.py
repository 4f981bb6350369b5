"""The reuse of answers: the last answer to each page and API URL, for a second."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class _Made:
    at: float
    status: int
    content_type: str
    charset: str | None
    body: bytes
    headers: tuple[tuple[str, str], ...]


class ResponseMemo:
    """The last answer to each page and API URL, reused for `ttl_s`: many viewers (a browser
    refreshing, scripts polling) cost one computation per URL and interval, and requests for
    the same URL while it is being computed wait for that one computation."""

    def __init__(self, ttl_s: float, max_entries: int = 256) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._made: dict[str, _Made] = {}
        self._pending: dict[str, asyncio.Future[_Made | None]] = {}

    @staticmethod
    def _response(m: _Made) -> web.Response:
        return web.Response(
            body=m.body,
            status=m.status,
            content_type=m.content_type,
            charset=m.charset,
            headers=dict(m.headers),
        )

    async def get(self, key: str, make: Handler, request: web.Request) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        made = self._made.get(key)
        if made is not None and loop.time() - made.at < self.ttl_s:
            return self._response(made)
        pending = self._pending.get(key)
        if pending is not None:
            shared = await asyncio.shield(pending)
            if shared is not None:
                return self._response(shared)
        future: asyncio.Future[_Made | None] = loop.create_future()
        self._pending[key] = future
        kept: _Made | None = None
        try:
            response = await make(request)
            if isinstance(response, web.Response) and response.status == 200:
                assert response.body is None or isinstance(response.body, bytes)
                kept = _Made(
                    loop.time(),
                    response.status,
                    response.content_type,
                    response.charset,
                    response.body or b"",
                    (("Cache-Control", response.headers.get("Cache-Control", "no-store")),),
                )
                self._made.pop(key, None)
                self._made[key] = kept
                while len(self._made) > self.max_entries:
                    del self._made[next(iter(self._made))]
            return response
        finally:
            self._pending.pop(key, None)
            future.set_result(kept)
