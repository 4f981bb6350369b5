"""Reads OpenRouter's endpoints API over HTTP: one GET per model, with the key when there is one.

OpenRouter answers the listing without a key too, but only an authenticated request gets
`latency_last_30m` and `throughput_last_30m`. The key goes in `Authorization: Bearer` and is
kept out of every message. The document is parsed by the pure `monitor.catalogue.listing`.
"""

from __future__ import annotations

from urllib.parse import quote

from monitor.catalogue.listing import Endpoint, parse_endpoints
from monitor.config import Secret
from monitor.errors import DiscoverError, EndpointsError, FetchError
from monitor.probing.http import ClientSession, get_json


def endpoints_url(base_url: str, model: str) -> str:
    return f"{base_url.rstrip('/')}/models/{quote(model, safe='/:')}/endpoints"


async def read_endpoints(
    session: ClientSession,
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
        doc = await get_json(session, url, headers=headers, timeout_s=timeout_s, secrets=secrets)
        return parse_endpoints(doc)
    except (FetchError, EndpointsError) as exc:
        raise DiscoverError(f"{url}: {exc}") from None
