"""Value types and checks for config fields: numbers that are finite, bounded and not booleans;
URLs that say what to write instead when they are wrong; listen addresses, and whether one is
loopback. Pure."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field

DAY_S = 86_400.0
HOUR_S = 3_600.0


def _number(*, gt: float | None = None, ge: float | None = None, le: float | None = None) -> object:
    """A finite float (an int is fine, a boolean is not) within the bounds."""
    return Field(strict=True, allow_inf_nan=False, gt=gt, ge=ge, le=le)


PositiveNumber = Annotated[float, _number(gt=0, le=1e12)]
"""Any finite positive number (a bound in ms or tokens/s)."""
PositiveSeconds = Annotated[float, _number(gt=0, le=DAY_S)]
"""A duration: positive, at most a day."""
IntervalSeconds = Annotated[float, _number(ge=1, le=DAY_S)]
"""How often a target is probed: at least a second, at most a day."""
PeriodSeconds = Annotated[float, _number(ge=0.1, le=DAY_S)]
"""How often the monitor's own work runs (checks, reminders, windows): 0.1 s to a day."""
TimeoutSeconds = Annotated[float, _number(gt=0, le=HOUR_S)]
"""A deadline: positive, at most an hour."""
WaitSeconds = Annotated[float, _number(ge=0, le=HOUR_S)]
"""A wait that may be zero: at most an hour."""
Share = Annotated[float, _number(gt=0, le=1)]
"""A fraction in (0, 1]."""
Percent = Annotated[float, _number(ge=0, le=100)]
"""A percentage in [0, 100]."""
Usd = Annotated[float, _number(ge=0, le=1e6)]
"""A price or budget in USD (per million tokens, or per day)."""
Rate = Annotated[float, _number(gt=0, le=100_000)]
"""Requests per second."""


def count(low: int, high: int) -> object:
    """A whole number in [low, high] (a boolean or a float is not one)."""
    return Field(strict=True, ge=low, le=high)


def http_url(url: str, *, base: bool) -> str:
    """An http(s) URL with a host and a valid port, no credentials; a `base` URL also has no
    query or fragment and does not end with the endpoint path provmon appends. Returns it
    without a trailing slash; raises ValueError saying what to write instead."""
    if url != url.strip() or any(c.isspace() for c in url):
        raise ValueError("the URL contains white space")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError("must start with http:// or https://")
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            "must not carry credentials (user:password@): give the key by environment "
            "variable name (api_key_env, url_env)"
        )
    if not parts.hostname:
        raise ValueError("has no host")
    try:
        parts.port  # noqa: B018 - raises ValueError when out of range
    except ValueError:
        raise ValueError("port must be a number from 1 to 65535") from None
    if parts.port == 0:
        raise ValueError("port must be a number from 1 to 65535")
    if base:
        if parts.query or parts.fragment or url.endswith(("?", "#")):
            raise ValueError("a base URL must not have a query (?...) or fragment (#...)")
        path = parts.path.rstrip("/")
        for suffix in ("/chat/completions", "/completions"):
            if path.endswith(suffix):
                fixed = url[: url.rindex(suffix)]
                raise ValueError(f"give the base URL without {suffix} (provmon adds it): {fixed!r}")
    return url.rstrip("/") if base else url


def _base_url(url: str) -> str:
    return http_url(url, base=True)


def _any_url(url: str) -> str:
    return http_url(url, base=False)


BaseUrl = Annotated[str, AfterValidator(_base_url)]
"""An OpenAI-compatible API base, e.g. https://api.deepinfra.com/v1/openai."""
HttpUrl = Annotated[str, AfterValidator(_any_url)]
"""An http(s) URL (a webhook or connectivity check): queries allowed, credentials not."""


ENDPOINT_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9._-]+)*$")
EndpointTag = Annotated[str, Field(pattern=ENDPOINT_TAG.pattern, max_length=100)]
"""An OpenRouter endpoint's tag (`deepinfra/fp8`), or a provider slug (`deepinfra`: any of its
endpoints)."""


def endpoint_label(provider: str, endpoint: str | None) -> str:
    """The `provider` of a target that pins an OpenRouter endpoint: the provider's name and
    what the tag adds after the slug (`DeepInfra` + `deepinfra/fp8` → `DeepInfra/fp8`), so two
    endpoints of one provider are two targets; a bare slug adds nothing."""
    suffix = (endpoint or "").partition("/")[2]
    return f"{provider}/{suffix}" if suffix else provider


LISTEN = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(?P<port>[0-9]{1,5})$")


def parse_listen(text: str) -> tuple[str, int]:
    """`HOST:PORT` (an IPv6 host in brackets) as (host, port); port 0 means any free port.
    Raises ValueError saying what is wrong."""
    m = LISTEN.match(text.strip())
    if m is None:
        raise ValueError(f"{text!r} is not HOST:PORT (e.g. 127.0.0.1:9464, [::1]:9464)")
    port = int(m["port"])
    if port > 65535:
        raise ValueError(f"port {port} is out of range (0-65535)")
    return m["host"].strip("[]"), port


def is_loopback(host: str) -> bool:
    """`localhost` or a loopback address (127.0.0.0/8, ::1); anything else is not."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure_problem(host: str, has_token: bool, allow_anonymous: bool) -> str | None:
    """Why serving the live pages on `host` is refused, or None: an address other than
    loopback needs a token (`[web] auth_token_env`) or an explicit `allow_anonymous = true`."""
    if is_loopback(host) or has_token or allow_anonymous:
        return None
    return (
        f"{host} is not a loopback address: set [web] auth_token_env (a bearer token or "
        "basic-auth password from that environment variable) or allow_anonymous = true"
    )
