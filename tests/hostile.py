"""Hostile OpenAI-compatible providers for tests and benches, served in-process by aiohttp.web on
an ephemeral loopback port: a gzip bomb, 1 MiB events, a never-ending fast stream, absurd usage
and cost values, deep JSON, redirects, echoed keys and control characters.

Each behaviour is a path prefix: `{url}/{name}/v1` is a base URL for a direct target.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import ssl
import subprocess
import sys
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

HOSTILE_KEY = "sk-hostile-test-key-0123456789abcdef"
MIB = 1024 * 1024


def event(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def content(text: str, **extra: Any) -> bytes:
    return event({"choices": [{"index": 0, "delta": {"content": text}}], **extra})


def finish(usage: dict[str, Any] | None = None, reason: str = "stop") -> bytes:
    obj: dict[str, Any] = {"choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}
    if usage is not None:
        obj["usage"] = usage
    return event(obj) + b"data: [DONE]\n\n"


def gzip_bomb(decoded_bytes: int) -> bytes:
    """A gzip body that inflates to `decoded_bytes` of valid token events (about 1000:1)."""
    block = content("bomb ") * (MIB // len(content("bomb ")))
    z = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [z.compress(block) for _ in range(max(1, decoded_bytes // len(block)))]
    return b"".join([*parts, z.flush()])


@dataclass
class Hostile:
    url: str = ""
    hits: dict[str, int] = field(default_factory=dict)
    bomb: bytes = b""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        self.hits[name] = self.hits.get(name, 0) + 1
        await request.read()
        handler = getattr(self, "_" + name.replace("-", "_"), None)
        if handler is None:
            return web.Response(status=404)
        try:
            response: web.StreamResponse = await handler(request)
        except ConnectionError:  # the client went away (it may, when a probe ends early)
            return web.Response(status=499)
        return response

    async def _start(self, request: web.Request, **headers: str) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", **headers})
        await resp.prepare(request)
        return resp

    async def _gzip_bomb(self, request: web.Request) -> web.StreamResponse:
        resp = await self._start(request, **{"Content-Encoding": "gzip"})
        with contextlib.suppress(ConnectionError):
            for i in range(0, len(self.bomb), 64 * 1024):
                await resp.write(self.bomb[i : i + 64 * 1024])
        return resp

    async def _big_chunks(self, request: web.Request) -> web.StreamResponse:
        resp = await self._start(request)
        piece = content("x" * (MIB // 2))
        with contextlib.suppress(ConnectionError):
            while True:
                await resp.write(piece)
        return resp

    async def _endless(self, request: web.Request) -> web.StreamResponse:
        resp = await self._start(request)
        block = content(" tok") * 2000
        with contextlib.suppress(ConnectionError):
            while True:
                await resp.write(block)
        return resp

    async def _deep_json(self, request: web.Request) -> web.StreamResponse:
        resp = await self._start(request)
        await resp.write(content("hi"))
        await resp.write(b"data: " + b"[" * 100_000 + b"]" * 100_000 + b"\n\n")
        await resp.write(finish())
        return resp

    async def _redirect(self, request: web.Request) -> web.StreamResponse:
        location = f"http://user:pw@127.0.0.1:1/elsewhere/v1/chat/completions?key={HOSTILE_KEY}"
        return web.Response(status=302, headers={"Location": location})

    async def _values(self, request: web.Request, usage: dict[str, Any]) -> web.StreamResponse:
        resp = await self._start(request)
        for word in ("one", " two", " three"):
            await resp.write(content(word))
        await resp.write(finish(usage))
        return resp

    async def _cost_huge(self, request: web.Request) -> web.StreamResponse:
        return await self._values(
            request, {"prompt_tokens": 5, "completion_tokens": 3, "cost": 1e308}
        )

    async def _cost_negative(self, request: web.Request) -> web.StreamResponse:
        return await self._values(
            request, {"prompt_tokens": 5, "completion_tokens": 3, "cost": -0.5}
        )

    async def _tokens_huge(self, request: web.Request) -> web.StreamResponse:
        return await self._values(request, {"prompt_tokens": 5, "completion_tokens": 2**31 - 1})

    async def _echo_key(self, request: web.Request) -> web.StreamResponse:
        resp = await self._start(request)
        await resp.write(content("hi", provider=f"Echo {HOSTILE_KEY}\x1b[2J"))
        await resp.write(finish(reason=f"stop{HOSTILE_KEY[:12]}"))
        return resp

    async def _key_after_cut(self, request: web.Request) -> web.StreamResponse:
        return web.Response(status=500, body=b" " * 4085 + HOSTILE_KEY.encode())

    async def _control_chars(self, request: web.Request) -> web.StreamResponse:
        body = "\x1b[31mred alert\x1b[0m\x00 \x1b]0;owned\x07 \u009b6n done"
        return web.Response(status=500, text=body)


@contextlib.asynccontextmanager
async def run_hostile(
    bomb_bytes: int = 64 * MIB, ssl_context: ssl.SSLContext | None = None, host: str = "127.0.0.1"
) -> AsyncIterator[Hostile]:
    """Serve the hostile providers in this event loop (HTTPS with `ssl_context`)."""
    hostile = Hostile(bomb=await asyncio.to_thread(gzip_bomb, bomb_bytes))
    app = web.Application()
    app.router.add_post("/{name}/v1/chat/completions", hostile.handle)
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        port = runner.addresses[0][1]
        scheme = "https" if ssl_context is not None else "http"
        hostile.url = f"{scheme}://{host}:{port}"
        yield hostile
    finally:
        await runner.cleanup()


@contextlib.contextmanager
def hostile_process(bomb_bytes: int = 64 * MIB, cpu: int | None = None) -> Iterator[str]:
    """The hostile providers in a child process (on loopback); yields their base URL. What
    serving them costs then lands neither in the event loop nor on the GIL of the client under
    test. The child is killed on exit."""
    code = (
        "import asyncio, sys\n"
        "from tests.hostile import run_hostile\n"
        "async def main():\n"
        f"    async with run_hostile({bomb_bytes}) as h:\n"
        "        print(h.url, flush=True)\n"
        "        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)\n"
        "asyncio.run(main())\n"
    )
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        cwd=root,
        text=True,
    ) as child:
        try:
            assert child.stdout is not None
            if cpu is not None and (os.cpu_count() or 1) >= 2:
                with contextlib.suppress(OSError, AttributeError):
                    os.sched_setaffinity(child.pid, {cpu})
            url = child.stdout.readline().strip()
            if not url.startswith("http"):
                raise RuntimeError("hostile server did not start")
            yield url
        finally:
            child.kill()
            child.wait(10)
