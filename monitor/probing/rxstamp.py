"""When response bytes reached this machine: the kernel's receive stamps.

A probe's TTFT must not include the time its bytes waited for a busy event loop (other streams,
a garbage collection, a slow machine). On Linux the kernel stamps every packet it receives for a
socket that asks (`SO_TIMESTAMPNS`), and a `recvmsg` returns the stamp of the last packet the
read consumed beside the bytes. `StampedSocket` reads that way (for asyncio's transport, which
calls `recv`/`recv_into`) and keeps the stamp of its latest read as `perf_counter_ns`.

Where the stamp is not available (another OS or architecture, or the kernel sent none) it is the
time of the read, as a plain socket would give. `rx_stamps_supported()` says which.
"""

from __future__ import annotations

import collections
import platform
import socket
import struct
import sys
import time
from typing import Any

# <asm-generic/socket.h>: SO_TIMESTAMPNS (the _OLD value, which is the one on 64-bit
# kernels), delivered as the control message SCM_TIMESTAMPNS of the same number with a
# struct timespec. Only architectures known to use these values enable it.
SO_TIMESTAMPNS = 35
_TIMESPEC = struct.Struct("@qq")
_CMSG_SPACE = socket.CMSG_SPACE(_TIMESPEC.size) if hasattr(socket, "CMSG_SPACE") else 0
_ARCHES = frozenset({"x86_64", "amd64", "aarch64", "arm64"})
STALE_NS = 60 * 1_000_000_000
"""A kernel stamp older than this (a clock step) is not believed."""


def rx_stamps_supported() -> bool:
    return sys.platform == "linux" and platform.machine().lower() in _ARCHES and _CMSG_SPACE > 0


def kernel_ns(ancillary: list[tuple[int, int, bytes]], real_now_ns: int, now_ns: int) -> int:
    """`now_ns` (perf_counter_ns) moved back to the kernel's stamp in `ancillary`, when it holds
    a believable one. The stamp is wall-clock time: its distance from `real_now_ns` (the wall
    clock read with `now_ns`) is how long before `now_ns` the packet arrived."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            sec, nsec = _TIMESPEC.unpack_from(data)
            age = real_now_ns - (int(sec) * 1_000_000_000 + int(nsec))
            if 0 <= age <= STALE_NS:
                return now_ns - age
    return now_ns


def stamp_keeper() -> socket.socket | None:
    """A socket that only asks for receive stamps, to hold open while probing: Linux turns
    packet stamping on when a first socket asks, a moment later (so the first packets after
    that go unstamped), and off when the last one closes. None where there are no stamps."""
    if not rx_stamps_supported():
        return None
    keeper = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        keeper.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        keeper.close()
        return None
    return keeper


class StampedSocket(socket.socket):
    """A socket whose reads keep the kernel's receive stamp of their last packet (`rx_ns`)."""

    __slots__ = ("_stamped", "rx_ns")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rx_ns = 0
        self._stamped = False
        if rx_stamps_supported():
            try:
                self.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
                self._stamped = True
            except OSError:
                pass

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if not self._stamped:
            data = super().recv(bufsize, flags)
            self.rx_ns = time.perf_counter_ns()
            return data
        data, ancillary, _flags, _addr = self.recvmsg(bufsize, _CMSG_SPACE, flags)
        self._stamp(ancillary)
        return data

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        if not self._stamped:
            n = super().recv_into(buffer, nbytes, flags)
            self.rx_ns = time.perf_counter_ns()
            return n
        view = memoryview(buffer)
        if nbytes:
            view = view[:nbytes]
        n, ancillary, _flags, _addr = self.recvmsg_into([view], _CMSG_SPACE, flags)
        self._stamp(ancillary)
        return n

    def _stamp(self, ancillary: list[tuple[int, int, bytes]]) -> None:
        now = time.perf_counter_ns()
        self.rx_ns = kernel_ns(ancillary, time.time_ns(), now)


def stamped_socket(addr_info: tuple[Any, ...]) -> StampedSocket:
    """aiohttp's `socket_factory`: a `StampedSocket` for the address (family, type, proto)."""
    family, type_, proto = addr_info[0], addr_info[1], addr_info[2]
    return StampedSocket(family=family, type=type_, proto=proto)


def arrival(feeds: collections.deque[tuple[int, int]] | None, upto: int, now_ns: int) -> int:
    """When the body's byte `upto` reached the machine: the stamp of the first socket read that
    brought it (`StampingHandler.feeds`; `now_ns`, the time it was read, when not noted)."""
    if feeds:
        for end, t in feeds:
            if end >= upto:
                return min(t, now_ns)
    return now_ns
