"""Result output that never blocks the probe loop: lines go to an unbounded in-memory queue and
a writer thread copies them to the stream (stdout), however slowly it is read.

A paused or slow consumer (a full pipe) then delays output, never measurements: the event loop
that stamps bytes only appends to a queue.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from types import TracebackType
from typing import TextIO

_STOP = object()


class LineWriter:
    """`write` queues a line (without its newline); a thread writes and flushes them in order."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="provmon-output", daemon=True)
        self._started = False
        self.broken = False
        """True once the stream refused a write (e.g. the reader went away): the rest is dropped."""

    def start(self) -> LineWriter:
        if not self._started:
            self._started = True
            self._thread.start()
        return self

    def write(self, line: str) -> None:
        self._queue.put(line)

    def close(self, timeout_s: float | None = None) -> None:
        """Write everything queued, then stop (waits for the reader, up to `timeout_s`)."""
        if not self._started:
            return
        self._queue.put(_STOP)
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if self.broken:
                continue
            batch = [str(item)]
            with contextlib.suppress(queue.Empty):
                while len(batch) < 1000:  # whatever else is waiting goes in the same write
                    nxt = self._queue.get_nowait()
                    if nxt is _STOP:
                        self._queue.put(_STOP)
                        break
                    batch.append(str(nxt))
            try:
                self._stream.write("".join(f"{line}\n" for line in batch))
                self._stream.flush()
            except (OSError, ValueError):  # a closed pipe or stream: nobody reads any more
                self.broken = True

    def __enter__(self) -> LineWriter:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
