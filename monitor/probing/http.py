"""The HTTP session provmon's probes, checks and channels share, and plain JSON GETs.

With `client`, the one place outside the simulator that opens aiohttp sessions: the composition
root and the daemon build take sessions from here and never import aiohttp themselves.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import aiohttp

from monitor.errors import FetchError
from monitor.probing.session import probe_session
from monitor.redact import short_message

ClientSession = aiohttp.ClientSession


@contextlib.asynccontextmanager
async def client_session() -> AsyncIterator[aiohttp.ClientSession]:
    """One HTTP session for all probes, checks and channels: `session.probe_session`, a fresh
    connection per probe with its phases traced."""
    async with probe_session() as session:
        yield session


async def get_json(
    session: aiohttp.ClientSession,
    url: str,
    *,
    headers: Mapping[str, str],
    timeout_s: float,
    secrets: Sequence[str] = (),
) -> Any:
    """GET `url` and decode its JSON body. Raises FetchError (`secrets` kept out of it) for a
    status other than 200, a network failure or timeout, or a body that is not JSON."""
    try:
        async with session.get(
            url, headers=dict(headers), timeout=aiohttp.ClientTimeout(total=timeout_s)
        ) as resp:
            body = await resp.read()
            if resp.status != 200:
                raise FetchError(f"HTTP {resp.status}: {short_message(body, secrets)}")
            return await resp.json(content_type=None)
    except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
        raise FetchError(short_message(str(exc) or type(exc).__name__)) from None
