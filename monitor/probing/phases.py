"""The phases of one probe's HTTP request: stamps set by the transport's trace hooks, and the
durations DESIGN.md section 2 reports from them (`dns_ms`, `connect_ms`, `tls_ms`, `ttfb_ms`).

Pure: the stamps are `perf_counter_ns` values taken by `monitor.probing.session`; nothing here
reads a clock. A phase that did not happen (no DNS lookup for an IP address or a cached name, no
TLS over plain HTTP) stays None.
"""

from __future__ import annotations

from dataclasses import dataclass

NS_PER_MS = 1_000_000


@dataclass(slots=True)
class Phases:
    """Stamps of one request, in the order they happen."""

    start_ns: int = 0
    """Before the request was handed to the HTTP client."""
    connect_start_ns: int | None = None
    dns_start_ns: int | None = None
    dns_end_ns: int | None = None
    tls_start_ns: int | None = None
    """The TLS handshake began (the TCP connection was up)."""
    connect_end_ns: int | None = None
    """The connection was ready (after TLS, when there was TLS)."""
    sent_ns: int | None = None
    """The request (headers and body) was written on the connection."""
    headers_ns: int | None = None
    """The response headers had been read."""

    def note_sent(self, t_ns: int) -> None:
        self.sent_ns = t_ns if self.sent_ns is None else max(self.sent_ns, t_ns)

    @property
    def dns_ms(self) -> float | None:
        return _span(self.dns_start_ns, self.dns_end_ns)

    @property
    def connect_ms(self) -> float | None:
        """TCP connect: from the end of DNS (or the start of connecting) to TLS or ready."""
        start = self.dns_end_ns if self.dns_end_ns is not None else self.connect_start_ns
        end = self.tls_start_ns if self.tls_start_ns is not None else self.connect_end_ns
        return _span(start, end)

    @property
    def tls_ms(self) -> float | None:
        return _span(self.tls_start_ns, self.connect_end_ns)

    @property
    def ttfb_ms(self) -> float | None:
        """Request written → response headers."""
        return _span(self.sent_ns, self.headers_ns)

    @property
    def network_ms(self) -> float | None:
        """connect + TLS: the handshakes a fresh connection costs."""
        c, t = self.connect_ms, self.tls_ms
        return None if c is None else c + (t or 0.0)


def _span(start: int | None, end: int | None) -> float | None:
    if start is None or end is None or end < start:
        return None
    return (end - start) / NS_PER_MS
