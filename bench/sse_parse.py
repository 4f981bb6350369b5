"""Parser throughput: SSE framing + chunk reading of a realistic stream, on one core.

Target (issue 2): ≥ 100,000 events/s. Prints events/s for the SSE parser alone and for the
parser plus the chunk reader and meter (what a probe does per event), for reads of several sizes.
"""

from __future__ import annotations

import json
import time

from monitor.probing.chunks import Chunk, read_event
from monitor.probing.metrics import StreamMeter
from monitor.probing.sse import SSEEvent, SSEParser

TARGET_EVENTS_PER_S = 100_000


def make_stream(events: int) -> bytes:
    parts = []
    for i in range(events):
        obj = {
            "id": "chatcmpl-123",
            "object": "chat.completion.chunk",
            "created": 1_713_225_600,
            "model": "microsoft/wizardlm-2-8x22b",
            "choices": [
                {"index": 0, "delta": {"content": f" word{i % 97}"}, "finish_reason": None}
            ],
        }
        parts.append(b"data: " + json.dumps(obj).encode() + b"\n\n")
        if i % 50 == 0:
            parts.append(b": OPENROUTER PROCESSING\n\n")
    parts.append(b"data: [DONE]\n\n")
    return b"".join(parts)


def run(stream: bytes, read_size: int, full: bool) -> tuple[int, float]:
    reads = [stream[i : i + read_size] for i in range(0, len(stream), read_size)]
    start = time.perf_counter()
    parser = SSEParser()
    meter = StreamMeter(0)
    events = 0
    for t, data in enumerate(reads):
        for item in parser.feed(data):
            if isinstance(item, SSEEvent):
                events += 1
                if full:
                    chunk = read_event(item)
                    if isinstance(chunk, Chunk):
                        meter.add(t, chunk)
    return events, time.perf_counter() - start


def main() -> None:
    stream = make_stream(200_000)
    target = f"target ≥ {TARGET_EVENTS_PER_S:,} events/s"
    print(f"stream: {len(stream) / 1e6:.1f} MB, 200,001 events; {target}")
    for full in (False, True):
        label = "parser + chunk reader + meter" if full else "SSE parser alone"
        for read_size in (64, 1024, 16384):
            best = 0.0
            for _ in range(3):
                events, elapsed = run(stream, read_size, full)
                best = max(best, events / elapsed)
            verdict = "ok" if best >= TARGET_EVENTS_PER_S else "BELOW TARGET"
            print(f"  {label:<32} reads of {read_size:>5} B: {best:>10,.0f} events/s  {verdict}")


if __name__ == "__main__":
    main()
