"""The baseline clients of bench/probe_accuracy.py: a plain aiohttp client and the official openai
SDK, each stamping `perf_counter_ns` before the request and as each content chunk is yielded,
as a careful script would. Also their hostile-neighbour loops (the same library reading a hostile
stream) and what they print per result (a plain, blocking `print`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import aiohttp
    import openai

NS_PER_MS = 1_000_000


@dataclass(frozen=True, slots=True)
class Stamps:
    """What a baseline saw of one stream: t0, each content chunk's arrival and sent stamp."""

    t0_ns: int
    chunks: list[tuple[int, int | None]]
    tokens: int | None
    why: str = ""


def chat_body(model: str, prompt: str, max_tokens: int) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def make_aiohttp(
    session: aiohttp.ClientSession, url: str, api_key: str, model: str, max_tokens: int
) -> Callable[[str], Awaitable[Stamps]]:
    """A plain aiohttp client: POST, then `async for line in resp.content`."""
    import aiohttp

    headers = {"Authorization": f"Bearer {api_key}"}

    async def one(prompt: str) -> Stamps:
        chunks: list[tuple[int, int | None]] = []
        tokens: int | None = None
        t0 = time.perf_counter_ns()
        try:
            async with session.post(
                url, json=chat_body(model, prompt, max_tokens), headers=headers
            ) as resp:
                async for line in resp.content:
                    t = time.perf_counter_ns()
                    if not line.startswith(b"data: ") or line.startswith(b"data: [DONE]"):
                        continue
                    obj = json.loads(line[6:])
                    choices = obj.get("choices") or []
                    if choices and (choices[0].get("delta") or {}).get("content"):
                        chunks.append((t, obj.get("x_sent_ns")))
                    if obj.get("usage"):
                        tokens = obj["usage"].get("completion_tokens")
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
            return Stamps(t0, chunks, tokens, type(exc).__name__)
        return Stamps(t0, chunks, tokens)

    return one


def make_sdk(
    client: openai.AsyncOpenAI, model: str, max_tokens: int
) -> Callable[[str], Awaitable[Stamps]]:
    """The openai SDK, stamped before `create` and as each chunk is yielded."""
    import httpx2
    import openai

    async def one(prompt: str) -> Stamps:
        chunks: list[tuple[int, int | None]] = []
        tokens: int | None = None
        t0 = time.perf_counter_ns()
        try:
            stream = await client.chat.completions.create(
                model=model,
                messages=[{"role": "user", "content": prompt}],
                max_tokens=max_tokens,
                temperature=0,
                stream=True,
                stream_options={"include_usage": True},
            )
            async for chunk in stream:
                t = time.perf_counter_ns()
                if chunk.choices and chunk.choices[0].delta.content:
                    chunks.append((t, (chunk.model_extra or {}).get("x_sent_ns")))
                if chunk.usage is not None:
                    tokens = chunk.usage.completion_tokens
        except (openai.APIError, httpx2.HTTPError, OSError, ValueError) as exc:
            cause = f" ({type(exc.__cause__).__name__})" if exc.__cause__ is not None else ""
            return Stamps(t0, chunks, tokens, type(exc).__name__ + cause)
        return Stamps(t0, chunks, tokens)

    return one


async def hostile_loop(
    read: Callable[[str], Awaitable[object]], urls: list[str], stop: asyncio.Event, done: list[int]
) -> None:
    """Stream from the hostile URLs one after another until `stop` (or cancelled); `done[0]`
    counts the streams started."""
    while not stop.is_set():
        for url in urls:
            if stop.is_set():
                break
            done[0] += 1
            with contextlib.suppress(Exception):  # a hostile stream may break the client
                await read(url)


def aiohttp_reader(session: aiohttp.ClientSession) -> Callable[[str], Awaitable[object]]:
    """Reads a whole hostile stream as the plain client does (decompressing, line by line)."""

    async def read(url: str) -> object:
        body = chat_body("m", "hi", 20)
        async with session.post(url, json=body) as resp:
            n = 0
            async for line in resp.content:
                if line.startswith(b"data: {"):
                    json.loads(line[6:])
                n += len(line)
                if n > 64 * 1024 * 1024:
                    break
            return n

    return read


def sdk_reader(base_url_of: Callable[[str], Any]) -> Callable[[str], Awaitable[object]]:
    """Reads a hostile stream through the SDK (`base_url_of(url)` is a client for that URL)."""

    async def read(url: str) -> object:
        client = base_url_of(url)
        stream = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], max_tokens=20, stream=True
        )
        n = 0
        async for _chunk in stream:
            n += 1
            if n > 200_000:
                break
        return n

    return read


def print_line(record: dict[str, Any]) -> None:
    """What a script does with each result: print it (blocks while stdout's pipe is full)."""
    print(json.dumps(record), flush=True)
