"""The web server's guards, pure: the listen address and whether it is loopback, the
credential check (bearer token or basic-auth password), and the headers on every response."""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
from dataclasses import dataclass

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

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def is_loopback(host: str) -> bool:
    """`localhost` or a loopback address (127.0.0.0/8, ::1); anything else is not."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_listen(text: str) -> Listen:
    """`HOST:PORT`, `[IPv6]:PORT` or `:PORT` (loopback); ValueError says what is wrong."""
    text = text.strip()
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError(f"{text!r}: expected HOST:PORT, e.g. {DEFAULT_LISTEN}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"{text!r}: write an IPv6 address in brackets, e.g. [::1]:8787")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ValueError(f"{text!r}: port must be 0-65535")
    return Listen(host or "127.0.0.1", port)


def exposure_problem(listen: Listen, has_token: bool, allow_anonymous: bool) -> str | None:
    """Why serving on `listen` is refused, or None: an address other than loopback needs a
    token (auth_token_env) or an explicit allow_anonymous = true."""
    if listen.loopback or has_token or allow_anonymous:
        return None
    return (
        f"{listen.host} is not a loopback address: set [web] auth_token_env (a bearer token or "
        "basic-auth password from that environment variable) or allow_anonymous = true"
    )


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
