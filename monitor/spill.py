"""The spill file: probe results kept on local disk while the database is unreachable.

Append-only JSON lines, flushed and fsynced per batch, so a `kill -9` loses nothing that was
appended. A torn last line (killed mid-write) is skipped on reading.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path

from monitor.results import ProbeResult

log = logging.getLogger(__name__)

SpillRecord = tuple[str, ProbeResult]
"""(probe id, result): the id makes replays idempotent."""
COPY_BYTES = 1024 * 1024


class SpillFile:
    """Safe to use from the event loop and worker threads at once: every operation holds a lock,
    so an append can never land in a file that `drop_through` is replacing."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def append(self, records: Sequence[SpillRecord]) -> None:
        if not records:
            return
        with self._lock:
            self._append(records)

    def _append(self, records: Sequence[SpillRecord]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = "".join(
            json.dumps({"id": pid, "result": r.to_json()}, separators=(",", ":")) + "\n"
            for pid, r in records
        )
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                # A torn line left by a killed writer: end it, so it cannot swallow this record.
                data = "\n" + data
            _write_all(fd, data.encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def check_writable(self) -> None:
        """Prove the spill can be written where it is configured: create, write, fsync and
        remove a probe file beside it (and append-open the spill itself if it exists). Raises
        OSError saying why not."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        probe = self.path.with_name(f".{self.path.name}.check-{os.getpid()}")
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"provmon spill check\n")
            os.fsync(fd)
        finally:
            os.close(fd)
            probe.unlink(missing_ok=True)
        if self.path.exists():
            os.close(os.open(self.path, os.O_WRONLY | os.O_APPEND))

    @property
    def rejected_path(self) -> Path:
        return self.path.with_name(self.path.name + ".rejected")

    def reject(self, records: Sequence[SpillRecord]) -> None:
        """Set aside records the database refused (kept for a person to look at)."""
        with self._lock:
            SpillFile(self.rejected_path)._append(records)

    def read(self, max_bytes: int | None = None, offset: int = 0) -> tuple[list[SpillRecord], int]:
        """Complete records from byte `offset` on (at most about `max_bytes` of them), and the
        byte offset just past the last one read (`offset` itself when there are none)."""
        try:
            with self._lock, self.path.open("rb") as f:
                f.seek(offset)
                data = f.read() if max_bytes is None else f.read(max_bytes)
        except (FileNotFoundError, NotADirectoryError):
            return [], offset
        end = data.rfind(b"\n") + 1  # a torn last line (no newline yet) is left alone
        if max_bytes is not None and end == 0 and len(data) == max_bytes:
            # One record longer than max_bytes: read on to its end rather than stall on it.
            with self._lock, self.path.open("rb") as f:
                f.seek(offset)
                data = f.readline()
            end = len(data) if data.endswith(b"\n") else 0
        out: list[SpillRecord] = []
        for line in data[:end].splitlines():
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                out.append((str(obj["id"]), ProbeResult.from_json(obj["result"])))
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("spill file %s: an unreadable record skipped: %s", self.path, exc)
        return out, offset + end

    def size(self) -> int:
        """Bytes in the spill; 0 when there is none (or it cannot be reached: then nothing
        was spilled there either)."""
        try:
            return self.path.stat().st_size
        except OSError:
            return 0

    def drop_through(self, offset: int) -> None:
        """Remove the first `offset` bytes (records now safely in the database), keeping any
        appended since they were read."""
        with self._lock:
            self._drop_through(offset)

    def _drop_through(self, offset: int) -> None:
        if offset <= 0 or not self.path.exists():
            return
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with self.path.open("rb") as src:  # in slices: memory stays flat however large
                src.seek(offset)
                while chunk := src.read(COPY_BYTES):
                    _write_all(fd, chunk)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
