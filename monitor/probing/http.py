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
from monitor.redact import short_message

ClientSession = aiohttp.ClientSession
USER_AGENT = "provmon/0.1 (+https://github.com/provmon/provmon)"


@contextlib.asynccontextmanager
async def client_session() -> AsyncIterator[aiohttp.ClientSession]:
    """One HTTP session for all probes; no connection cap (per-provider gates bound it).

    Every probe opens its own connection (`force_close`): whether a kept-alive connection
    survived since the last probe depends on the provider's idle timeout, and TTFT would
    include the TCP and TLS handshakes only sometimes. This way it always does.
    """
    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, force_close=True)
    async with aiohttp.ClientSession(
        connector=connector,
        trust_env=False,
        timeout=aiohttp.ClientTimeout(total=None),
        headers={"User-Agent": USER_AGENT},
    ) as session:
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
