"""The probes' HTTP session: a fresh connection per probe, and trace hooks that stamp its phases.

aiohttp's `TraceConfig` reports DNS, connection set-up, the request written and the response
headers; it has no TLS signal, so the SSL context stamps the start of the handshake (Python
creates the TLS object right after the TCP connection is up, in the task making the request,
which a context variable names). Each stamp is `perf_counter_ns` into the request's `Phases`
(`trace_request_ctx`); requests without one are not traced.

The body's bytes are timed apart, by when they reached the machine: the connector makes every
socket a `StampedSocket` (kernel receive stamps, through aiohttp's `socket_factory`) and every
connection a `StampingHandler`, which notes each socket read's arrival for the probe's reader.
It reads aiohttp's `ResponseHandler._payload` and sets the connector's `_factory`; the tests in
tests/test_rxstamp.py fail when an aiohttp release changes either.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import functools
import socket
import ssl
import time
import weakref
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import aiohttp
from aiohappyeyeballs import AddrInfoType
from aiohttp.client_proto import ResponseHandler

from monitor.probing.phases import Phases
from monitor.probing.rxstamp import StampedSocket, stamp_keeper, stamped_socket

USER_AGENT = "provmon/0.1 (+https://github.com/provmon/provmon)"
_TLS_PHASES: contextvars.ContextVar[Phases | None] = contextvars.ContextVar(
    "provmon_tls_phases", default=None
)


class TimedSSLContext(ssl.SSLContext):
    """An SSL context that stamps when a TLS handshake starts for the current probe."""

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:
        phases = _TLS_PHASES.get()
        if phases is not None and phases.tls_start_ns is None:
            phases.tls_start_ns = time.perf_counter_ns()
        return super().wrap_bio(*args, **kwargs)


def timed_ssl_context(cafile: str | None = None) -> TimedSSLContext:
    """Verifying context like `ssl.create_default_context`, with the handshake stamp."""
    ctx = TimedSSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cafile is not None:
        ctx.load_verify_locations(cafile)
    else:
        ctx.load_default_certs()
    return ctx


@contextlib.contextmanager
def tracing(phases: Phases) -> Any:
    """Within it, a TLS handshake of this task stamps `phases`."""
    token = _TLS_PHASES.set(phases)
    try:
        yield
    finally:
        _TLS_PHASES.reset(token)


def _phases(ctx: SimpleNamespace) -> Phases | None:
    p = ctx.trace_request_ctx
    return p if isinstance(p, Phases) else None


async def _connect_start(_s: object, ctx: SimpleNamespace, _p: object) -> None:
    if (p := _phases(ctx)) is not None:
        p.connect_start_ns = time.perf_counter_ns()


async def _connect_end(_s: object, ctx: SimpleNamespace, _p: object) -> None:
    if (p := _phases(ctx)) is not None:
        p.connect_end_ns = time.perf_counter_ns()


async def _dns_start(_s: object, ctx: SimpleNamespace, _p: object) -> None:
    if (p := _phases(ctx)) is not None:
        p.dns_start_ns = time.perf_counter_ns()


async def _dns_end(_s: object, ctx: SimpleNamespace, _p: object) -> None:
    if (p := _phases(ctx)) is not None:
        p.dns_end_ns = time.perf_counter_ns()


async def _sent(_s: object, ctx: SimpleNamespace, _p: object) -> None:
    # Called right before each write of the request (headers are buffered and go out with the
    # body): the last stamp is when the request was written.
    if (p := _phases(ctx)) is not None:
        p.note_sent(time.perf_counter_ns())


async def _headers(_s: object, ctx: SimpleNamespace, _p: object) -> None:
    if (p := _phases(ctx)) is not None:
        p.headers_ns = time.perf_counter_ns()


class PhaseTrace(aiohttp.TraceConfig):
    """The trace hooks that fill a request's `Phases`."""

    def __init__(self) -> None:
        super().__init__()
        self.on_connection_create_start.append(_connect_start)
        self.on_connection_create_end.append(_connect_end)
        self.on_dns_resolvehost_start.append(_dns_start)
        self.on_dns_resolvehost_end.append(_dns_end)
        self.on_request_headers_sent.append(_sent)
        self.on_request_chunk_sent.append(_sent)
        self.on_request_end.append(_headers)


class StampingHandler(ResponseHandler):
    """aiohttp's protocol for one connection, noting when each piece of a response body
    reached the machine: `feeds` holds (body bytes received so far, its arrival as
    perf_counter_ns) for every socket read that added body bytes, and `headers_ns` the arrival
    of the read that completed the response headers. The arrival is the kernel's
    receive stamp when the socket is a `StampedSocket`, else the time of the read. The probe's
    reader takes its times from here, so a busy event loop delays its work, not its stamps."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sockets: _Sockets) -> None:
        super().__init__(loop)
        self.feeds: collections.deque[tuple[int, int]] = collections.deque()
        self.headers_ns: int | None = None
        self._sockets = sockets
        self._sock: StampedSocket | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        raw = transport.get_extra_info("socket")
        if raw is not None:
            self._sock = self._sockets.pop(raw.fileno(), None)

    def data_received(self, data: bytes) -> None:
        sock = self._sock
        t = sock.rx_ns if sock is not None and sock.rx_ns else time.perf_counter_ns()
        before = self._payload
        super().data_received(data)
        payload = self._payload or before
        if payload is None:
            return  # the headers are not all here yet
        if self.headers_ns is None:
            self.headers_ns = t
        if not self.feeds or payload.total_bytes > self.feeds[-1][0]:
            self.feeds.append((payload.total_bytes, t))


_Sockets = weakref.WeakValueDictionary[int, StampedSocket]


class StampingConnector(aiohttp.TCPConnector):
    """A TCPConnector whose sockets keep kernel receive stamps and whose connections are
    `StampingHandler`s (each finds its socket by file descriptor)."""

    def __init__(self, **kwargs: Any) -> None:
        self._stamped: _Sockets = weakref.WeakValueDictionary()
        super().__init__(socket_factory=self._new_socket, **kwargs)
        factory = functools.partial(StampingHandler, loop=self._loop, sockets=self._stamped)
        self._factory = factory  # type: ignore[assignment]
        self._keeper = stamp_keeper()

    async def close(self, *, abort_ssl: bool = False) -> None:
        if self._keeper is not None:
            self._keeper.close()
            self._keeper = None
        await super().close(abort_ssl=abort_ssl)

    def _new_socket(self, addr_info: AddrInfoType) -> socket.socket:
        sock = stamped_socket(addr_info)
        self._stamped[sock.fileno()] = sock
        return sock


def is_traced(session: aiohttp.ClientSession) -> bool:
    """True when `session` stamps phases (it was made by `probe_session`)."""
    return any(isinstance(t, PhaseTrace) for t in session.trace_configs)


@contextlib.asynccontextmanager
async def probe_session(cafile: str | None = None) -> AsyncIterator[aiohttp.ClientSession]:
    """One HTTP session for all probes; no connection cap (per-provider gates bound it).

    Every probe opens its own connection (`force_close`): whether a kept-alive connection
    survived since the last probe depends on the provider's idle timeout. This way the
    connection phases are always there, measured apart from TTFT. `cafile` adds a CA to trust
    (tests with a local TLS server).
    """
    connector = StampingConnector(
        limit=0, ttl_dns_cache=300, force_close=True, ssl=timed_ssl_context(cafile)
    )
    async with aiohttp.ClientSession(
        connector=connector,
        trust_env=False,
        timeout=aiohttp.ClientTimeout(total=None),
        headers={"User-Agent": USER_AGENT},
        trace_configs=[PhaseTrace()],
    ) as session:
        yield session
