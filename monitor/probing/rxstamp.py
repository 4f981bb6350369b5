"""When response bytes reached this machine: the kernel's receive stamps.

A probe's TTFT must not include the time its bytes waited for a busy event loop (other streams,
a garbage collection, a slow machine). On Linux the kernel stamps every packet it receives for a
socket that asks (`SO_TIMESTAMPNS`), and a `recvmsg` returns the stamp of the last packet the
read consumed beside the bytes. `StampedSocket` reads that way (for asyncio's transport, which
calls `recv`/`recv_into`) and keeps the stamp of its latest read as `perf_counter_ns`.

One stamp per read is not enough when the loop is late: a packet that waits in the kernel until
the next one arrives is read with it, and the kernel keeps only the later stamp (it even merges
the two in its queue). So a watcher thread (`ArrivalWatcher`) is woken by every arrival on every
stamped socket, and notes at once how many bytes the socket then held and the kernel's stamp of
the newest packet (a peek, which consumes nothing). A read then takes no more than what one
noted arrival brought, and that arrival's time: what the loop reads late keeps the time it came. The
thread does nothing else, so only a stall of the whole process for a packet gap moves a stamp.

Where the stamp is not available (another OS or architecture, or the kernel sent none) it is the
time of the read, as a plain socket would give. `rx_stamps_supported()` says which.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import platform
import select
import socket
import struct
import sys
import threading
import time
import weakref
from typing import Any

if sys.platform == "linux":
    import fcntl
    import termios

# <asm-generic/socket.h>: SO_TIMESTAMPNS (the _OLD value, which is the one on 64-bit
# kernels), delivered as the control message SCM_TIMESTAMPNS of the same number with a
# struct timespec. Only architectures known to use these values enable it.
SO_TIMESTAMPNS = 35
_TIMESPEC = struct.Struct("@qq")
_INT = struct.Struct("@i")
_INT_ZERO = bytes(_INT.size)
_CMSG_SPACE = socket.CMSG_SPACE(_TIMESPEC.size) if hasattr(socket, "CMSG_SPACE") else 0
_ARCHES = frozenset({"x86_64", "amd64", "aarch64", "arm64"})
log = logging.getLogger(__name__)

STALE_NS = 60 * 1_000_000_000
"""A kernel stamp older than this (a clock step) is not believed."""
PEEK_BYTES = 65536
"""The watcher looks this far into a socket's queue: further, its stamp is of the packet here."""
BATCH_S = 0.002
"""The watcher's pause after each round (fewer wake-ups): packets closer than this on one socket
may be noted as one arrival, with the later stamp, when the event loop also reads them late."""
MAX_ARRIVALS = 1024
"""Arrivals noted per socket and not yet read; beyond, the newest absorbs the next ones."""


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
    """A socket whose reads keep the kernel's receive stamp of their bytes (`rx_ns`).

    With the `ArrivalWatcher` on, `arrivals` holds (bytes read by the end of that arrival, its
    stamp) for what has arrived and not been read, and a read stops at the end of the oldest:
    `consumed` counts the bytes read, both guarded by `rx_lock` against the watcher."""

    __slots__ = ("_stamped", "_watched", "arrivals", "consumed", "rx_lock", "rx_ns")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rx_ns = 0
        self.consumed = 0
        self.arrivals: collections.deque[tuple[int, int]] = collections.deque()
        self.rx_lock = threading.Lock()
        self._stamped = self._watched = False
        if rx_stamps_supported():
            try:
                self.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
                self._stamped = True
            except OSError:
                pass
            else:
                self._watched = watcher().watch(self)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if not self._stamped:
            data = super().recv(bufsize, flags)
            self.rx_ns = time.perf_counter_ns()
            return data
        with self.rx_lock:
            limit, noted = self._oldest(bufsize)
            data, ancillary, _flags, _addr = self.recvmsg(limit, _CMSG_SPACE, flags)
            self.consumed += len(data)
        self._stamp(ancillary, noted)
        return data

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        if not self._stamped:
            n = super().recv_into(buffer, nbytes, flags)
            self.rx_ns = time.perf_counter_ns()
            return n
        view = memoryview(buffer)
        with self.rx_lock:
            limit, noted = self._oldest(nbytes or len(view))
            n, ancillary, _flags, _addr = self.recvmsg_into([view[:limit]], _CMSG_SPACE, flags)
            self.consumed += n
        self._stamp(ancillary, noted)
        return n

    def close(self) -> None:
        with self.rx_lock:
            self._unwatch()
            super().close()

    def detach(self) -> int:
        with self.rx_lock:
            self._unwatch()
            return super().detach()

    def _unwatch(self) -> None:
        if self._watched:
            watcher().forget(self)
            self._watched = False

    def note_arrival(self, buf: bytearray) -> None:
        """The watcher's peek: what the socket holds now, and the newest packet's stamp."""
        with self.rx_lock:
            fd = self.fileno()
            if fd < 0:  # closed or detached by a path that did not tell the watcher
                return
            try:
                # Peek only at bytes that are there: on an empty socket the peek would take a
                # pending error (a refused connection, a reset) that the event loop must see.
                if _INT.unpack(fcntl.ioctl(fd, termios.FIONREAD, _INT_ZERO))[0] <= 0:
                    return
                n, ancillary, _flags, _addr = self.recvmsg_into(
                    [buf], _CMSG_SPACE, socket.MSG_PEEK | socket.MSG_DONTWAIT
                )
            except OSError:  # closed meanwhile
                return
            end = self.consumed + n
            arrivals = self.arrivals
            if n <= 0 or (arrivals and end <= arrivals[-1][0]):
                return
            t = kernel_ns(ancillary, time.time_ns(), time.perf_counter_ns())
            if len(arrivals) >= MAX_ARRIVALS:
                arrivals[-1] = (end, t)
            else:
                arrivals.append((end, t))

    def _oldest(self, bufsize: int) -> tuple[int, int]:
        """How much the next read may take (up to the end of the oldest arrival not yet read)
        and that arrival's stamp (0: none noted)."""
        arrivals, consumed = self.arrivals, self.consumed
        while arrivals and arrivals[0][0] <= consumed:
            arrivals.popleft()
        if not arrivals:
            return bufsize, 0
        end, t = arrivals[0]
        return min(bufsize, end - consumed), t

    def _stamp(self, ancillary: list[tuple[int, int, bytes]], noted: int) -> None:
        now = time.perf_counter_ns()
        t = kernel_ns(ancillary, time.time_ns(), now)
        self.rx_ns = min(t, noted) if noted else t


class ArrivalWatcher:
    """The thread that notes every arrival on the stamped sockets (`StampedSocket.note_arrival`),
    woken by an edge-triggered epoll, which fires again for each new packet even while earlier
    ones wait unread. It takes the GIL only for that: the event loop's work cannot delay it
    beyond the interpreter's switch interval (5 ms), a garbage collection aside."""

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._sockets: weakref.WeakValueDictionary[int, StampedSocket] = (
            weakref.WeakValueDictionary()
        )
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def watch(self, sock: StampedSocket) -> bool:
        fd = sock.fileno()
        with self._lock:
            try:
                self._epoll.register(fd, select.EPOLLIN | select.EPOLLET)
            except OSError:
                return False
            self._sockets[fd] = sock
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="provmon-arrivals", daemon=True
                )
                self._thread.start()
        return True

    def forget(self, sock: StampedSocket, fd: int | None = None) -> None:
        fd = sock.fileno() if fd is None else fd
        with self._lock:
            if self._sockets.get(fd) is sock:
                del self._sockets[fd]
                with contextlib.suppress(OSError):
                    self._epoll.unregister(fd)

    def watched(self) -> int:
        with self._lock:
            return len(self._sockets)

    def _run(self) -> None:
        buf = bytearray(PEEK_BYTES)
        while True:
            try:
                events = self._epoll.poll()
            except InterruptedError:
                continue
            except OSError:  # the epoll was closed: the process is going (or forked)
                return
            for fd, _mask in events:
                with self._lock:
                    sock = self._sockets.get(fd)
                if sock is None:
                    continue
                try:
                    sock.note_arrival(buf)
                except Exception:  # never let one socket stop the stamps of all
                    log.debug("noting an arrival failed", exc_info=True)
                    self.forget(sock, fd)
            time.sleep(BATCH_S)  # let arrivals gather: fewer wake-ups, the same stamps


_watcher: ArrivalWatcher | None = None
_watcher_lock = threading.Lock()


def watcher() -> ArrivalWatcher:
    """The process's arrival watcher (made on first use)."""
    global _watcher
    with _watcher_lock:
        if _watcher is None:
            _watcher = ArrivalWatcher()
        return _watcher


def _forget_watcher_in_child() -> None:
    global _watcher, _watcher_lock
    _watcher = None  # a forked child has the epoll but not its thread; it makes its own
    _watcher_lock = threading.Lock()  # another thread may have held it at the fork


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_watcher_in_child)


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
