"""Arrival stamps: a probe's times are when the provider's bytes reached the machine, not when a
busy event loop got round to them (monitor.probing.rxstamp, StampingHandler)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
import struct
import threading
import time
from collections.abc import Iterator

import aiohttp
import pytest

from monitor.config import parse_config
from monitor.probing.rxstamp import (
    SO_TIMESTAMPNS,
    STALE_NS,
    StampedSocket,
    arrival,
    kernel_ns,
    rx_stamps_supported,
    stamp_keeper,
    watcher,
)
from monitor.results import Outcome
from monitor.runtime import make_prober
from tests.conftest import only
from tests.hostile import content, finish

S = 1_000_000_000


def stamp(real_ns: int) -> list[tuple[int, int, bytes]]:
    return [(socket.SOL_SOCKET, SO_TIMESTAMPNS, struct.pack("@qq", real_ns // S, real_ns % S))]


def test_kernel_stamp_moves_the_read_time_back_by_the_packets_age() -> None:
    real_now, now = 1_700_000_000 * S + 500, 42 * S
    assert kernel_ns(stamp(real_now - 150_000_000), real_now, now) == now - 150_000_000
    assert kernel_ns(stamp(real_now), real_now, now) == now


def test_missing_stale_or_future_kernel_stamps_are_not_believed() -> None:
    real_now, now = 1_700_000_000 * S, 42 * S
    assert kernel_ns([], real_now, now) == now
    assert kernel_ns(stamp(real_now - STALE_NS - 1), real_now, now) == now  # a clock step
    assert kernel_ns(stamp(real_now + 5 * S), real_now, now) == now  # from the future
    other = [(socket.SOL_SOCKET, SO_TIMESTAMPNS + 1, struct.pack("@qq", 1, 2))]
    assert kernel_ns(other, real_now, now) == now
    assert kernel_ns([(socket.SOL_SOCKET, SO_TIMESTAMPNS, b"\x01")], real_now, now) == now


def test_arrival_is_the_socket_read_that_brought_the_byte() -> None:
    feeds = collections.deque([(100, 10), (250, 20), (400, 30)])
    assert arrival(feeds, 100, 99) == 10
    assert arrival(feeds, 101, 99) == 20
    assert arrival(feeds, 400, 99) == 30
    assert arrival(feeds, 401, 99) == 99  # not noted: the time of the read
    assert arrival(None, 1, 99) == 99
    assert arrival(collections.deque([(100, 500)]), 50, 99) == 99  # never after the read


@contextlib.contextmanager
def stamped_pair() -> Iterator[tuple[StampedSocket, socket.socket]]:
    """A connected StampedSocket (the probe's end) and the server's end, on loopback, with
    stamping switched on for the whole block."""
    keeper = stamp_keeper()
    assert keeper is not None
    time.sleep(0.05)  # Linux turns stamping on a moment after the first socket asks
    with (
        keeper,
        socket.create_server(("127.0.0.1", 0)) as listener,
        StampedSocket(socket.AF_INET, socket.SOCK_STREAM) as c,
    ):
        c.connect(listener.getsockname())
        server, _ = listener.accept()
        with server:
            yield c, server


@pytest.mark.skipif(not rx_stamps_supported(), reason="kernel receive stamps are Linux-only")
def test_a_stamped_socket_reports_when_bytes_arrived_not_when_they_were_read() -> None:
    with stamped_pair() as (c, server):
        server.sendall(b"first")
        sent = time.perf_counter_ns()
        time.sleep(0.2)  # the reader is busy: the bytes wait in the kernel
        assert c.recv(100) == b"first"
        assert abs(c.rx_ns - sent) < 50_000_000, (c.rx_ns - sent) / 1e6
        server.sendall(b"second")
        time.sleep(0.1)
        buf = bytearray(100)
        before = time.perf_counter_ns()
        assert c.recv_into(buf) == 6 and bytes(buf[:6]) == b"second"
        assert c.rx_ns <= before - 50_000_000


@pytest.mark.skipif(not rx_stamps_supported(), reason="kernel receive stamps are Linux-only")
@pytest.mark.parametrize("into", [False, True], ids=["recv", "recv_into"])
def test_packets_that_wait_together_keep_their_own_arrival(into: bool) -> None:
    # The kernel keeps one stamp per read (the last packet's), and merges queued packets; the
    # watcher thread noted each arrival, so each read stops at one and has its time.
    with stamped_pair() as (c, server):
        server.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sent = []
        for piece in (b"first", b"second", b"third"):
            server.sendall(piece)
            sent.append(time.perf_counter_ns())
            time.sleep(0.15)  # nobody reads: all three wait in the kernel
        got = []
        buf = bytearray(100)
        while sum(len(g) for g, _ in got) < 16:
            if into:
                n = c.recv_into(buf)
                got.append((bytes(buf[:n]), c.rx_ns))
            else:
                got.append((c.recv(100), c.rx_ns))
    assert [g for g, _ in got] == [b"first", b"second", b"third"]
    for (_, rx), t in zip(got, sent, strict=True):
        assert abs(rx - t) < 30_000_000, [
            (r - s) / 1e6 for (_, r), s in zip(got, sent, strict=True)
        ]


@pytest.mark.skipif(not rx_stamps_supported(), reason="kernel receive stamps are Linux-only")
def test_the_watcher_forgets_closed_sockets_and_reads_stay_whole() -> None:
    before = watcher().watched()
    socks = [StampedSocket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(20)]
    assert watcher().watched() == before + 20
    for sock in socks[:10]:
        sock.close()
    for sock in socks[10:]:
        socket.socket(fileno=sock.detach()).close()  # detached: no longer ours to watch
    assert watcher().watched() == before
    # The watcher may pick a socket just before the loop closes it: noting it then is a no-op.
    socks[0].note_arrival(bytearray(16))
    with stamped_pair() as (c, server):
        payload = bytes(range(256)) * 4096  # 1 MiB, more than the watcher peeks
        threading.Thread(target=server.sendall, args=(payload,), daemon=True).start()
        c.settimeout(5)
        got = bytearray()
        while len(got) < len(payload):
            got += c.recv(1 << 20)
        assert got == payload
        assert not c.arrivals or c.arrivals[-1][0] <= c.consumed + 2 * 65536
        assert c.consumed == len(payload)


@pytest.mark.skipif(not rx_stamps_supported(), reason="kernel receive stamps are Linux-only")
def test_the_watcher_leaves_a_reset_for_the_reader() -> None:
    # A peek at an empty socket would take its pending error: the reader must still see it.
    with stamped_pair() as (c, server):
        server.sendall(b"data")
        time.sleep(0.05)
        assert c.recv(100) == b"data"
        server.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        server.close()  # a reset
        time.sleep(0.1)  # the watcher is woken by it first
        with pytest.raises(ConnectionResetError):
            c.recv(100)


# --- a provider in its own thread, so it keeps time while the probe's event loop is blocked ---


@contextlib.contextmanager
def timed_provider(first_token_s: float, then_s: float, asked: threading.Event) -> Iterator[str]:
    """An OpenAI-compatible stream served by a thread: headers at once, the first token after
    `first_token_s`, two more and the end `then_s` later. `asked` is set when the request
    has been read."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.lower().split(b"\r\n")
                    if line.startswith(b"content-length:")
                )
                while len(body) < length:
                    body += conn.recv(65536)
                asked.set()
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                    b"Connection: close\r\n\r\n"
                )
                time.sleep(first_token_s)
                conn.sendall(content("Hello"))
                time.sleep(then_s)
                usage = {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}
                conn.sendall(content(" there") + content(" friend") + finish(usage))
                conn.sendall(b"data: [DONE]\n\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    finally:
        stop.set()
        thread.join(5)
        listener.close()


@pytest.mark.skipif(not rx_stamps_supported(), reason="kernel receive stamps are Linux-only")
@pytest.mark.parametrize("then_s", [0.6, 0.15], ids=["read-alone", "read-with-the-next"])
async def test_a_blocked_event_loop_does_not_move_ttft(
    session: aiohttp.ClientSession, then_s: float
) -> None:
    # With then_s 0.15 the next tokens arrive while the loop is still blocked too: the first
    # token keeps its own arrival, and the gap between them is still measured.
    asked = threading.Event()
    with timed_provider(0.1, then_s, asked) as base_url:
        doc = {
            "targets": [{"route": "direct", "model": "m", "provider": "p", "base_url": base_url}]
        }
        cfg = parse_config(doc, {})
        prober = make_prober(session, cfg)

        async def block_the_loop() -> None:
            await asyncio.to_thread(asked.wait, 10)
            time.sleep(0.4)  # noqa: ASYNC251 - a task hogs the loop while the first token arrives

        hog = asyncio.create_task(block_the_loop())
        result = await prober.probe(only(cfg), cfg.workloads["heartbeat"])
        await hog
    assert result.outcome is Outcome.OK, result
    # Served 100 ms after the request was read; read off the socket some 300 ms later.
    assert result.ttft_ms is not None and 95 <= result.ttft_ms < 180, result.ttft_ms
    # The headers went out at once: their arrival is stamped like the body's, not when the
    # blocked loop got to them, so they never come after the first token.
    assert result.ttfb_ms is not None and result.ttfb_ms < 50, result.ttfb_ms
    assert result.ttfb_ms <= result.ttft_ms
    assert result.output_tokens == 3
    gap_ms = then_s * 1000
    assert result.max_gap_ms is not None and gap_ms - 5 <= result.max_gap_ms < gap_ms + 60
