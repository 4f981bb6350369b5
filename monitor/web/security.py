"""The web server's guards, pure: the listen address and whether it is loopback, the
credential check (bearer token or basic-auth password), and the headers on every response."""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass

from monitor.config.checks import exposure_problem as config_exposure
from monitor.config.checks import is_loopback
from monitor.config.checks import parse_listen as config_listen

DEFAULT_LISTEN = "127.0.0.1:8787"

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
"""Scripts, styles, images and requests from provmon itself only: no inline script or style,
no other origin."""

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
}


@dataclass(frozen=True, slots=True)
class Listen:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Listen:
        """`HOST:PORT` or `[IPv6]:PORT` (`monitor.config.checks.parse_listen`, the one parser)."""
        return cls(*config_listen(text))

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def parse_listen(text: str) -> Listen:
    return Listen.parse(text)


def exposure_problem(listen: Listen, has_token: bool, allow_anonymous: bool) -> str | None:
    """Why serving on `listen` is refused (the config's rule), or None."""
    return config_exposure(listen.host, has_token, allow_anonymous)


def authorized(header: str | None, token: str | None) -> bool:
    """The `Authorization` header carries the token: `Bearer TOKEN`, or basic auth with TOKEN
    as the password (any user name). No token configured: everyone is."""
    if token is None:
        return True
    if not header:
        return False
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        given = value
    elif scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        given = decoded.partition(":")[2]
    else:
        return False
    return hmac.compare_digest(given.encode(), token.encode())
