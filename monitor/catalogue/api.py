"""Reads OpenRouter's endpoints API over HTTP: one GET per model, with the key when there is one.

OpenRouter answers the listing without a key too, but only an authenticated request gets
`latency_last_30m` and `throughput_last_30m`. The key goes in `Authorization: Bearer` and is
redacted from every message. The document is parsed by the pure `monitor.catalogue.listing`.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import aiohttp

from monitor.catalogue.listing import Endpoint, parse_endpoints
from monitor.config import Secret
from monitor.errors import DiscoverError
from monitor.redact import short_message

MAX_BODY_BYTES = 8 * 1024 * 1024


def endpoints_url(base_url: str, model: str) -> str:
    return f"{base_url.rstrip('/')}/models/{quote(model, safe='/:')}/endpoints"


async def read_endpoints(
    session: aiohttp.ClientSession,
    base_url: str,
    model: str,
    api_key: Secret | None,
    *,
    timeout_s: float = 30.0,
) -> list[Endpoint]:
    """The model's endpoints; DiscoverError (key redacted) when they cannot be read."""
    url = endpoints_url(base_url, model)
    headers = {"Authorization": f"Bearer {api_key.reveal()}"} if api_key else {}
    secrets = [api_key.reveal()] if api_key else []
    try:
        async with session.get(
            url, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout_s)
        ) as resp:
            body = await resp.content.read(MAX_BODY_BYTES + 1)
            if resp.status != 200:
                raise DiscoverError(f"{url}: HTTP {resp.status}: {short_message(body, secrets)}")
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        reason = short_message(str(exc) or type(exc).__name__, secrets)
        raise DiscoverError(f"{url}: {reason}") from None
    if len(body) > MAX_BODY_BYTES:
        raise DiscoverError(f"{url}: the listing is larger than {MAX_BODY_BYTES} bytes")
    try:
        doc = json.loads(body)
    except ValueError:
        raise DiscoverError(f"{url}: not JSON: {short_message(body, secrets)}") from None
    try:
        return parse_endpoints(doc)
    except DiscoverError as exc:
        raise DiscoverError(f"{url}: {exc}") from None
