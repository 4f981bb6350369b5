"""The probe writer: keeps the database out of the probe path.

Probes hand results to `submit` (never blocks). One task takes them from a bounded queue and
inserts them in batches. When the database fails, batches go to the spill file instead, and the
writer retries the database every `retry_interval_s`; once it answers, the spill is replayed
(idempotent by probe id) and dropped. Nothing is lost, nothing is written twice.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from monitor.errors import StoreRejected, StoreUnavailable
from monitor.results import ProbeResult
from monitor.spill import SpillFile, SpillRecord
from monitor.storage.store import Store

log = logging.getLogger(__name__)
REPLAY_BATCH = 1_000
REPLAY_SLICE_BYTES = 1024 * 1024  # about 1,000 records: replay memory stays small


@dataclass(slots=True)
class WriterStats:
    submitted: int = 0
    inserted: int = 0
    spilled: int = 0
    replayed: int = 0
    rejected: int = 0
    db_failures: int = 0


def new_probe_id() -> str:
    return uuid.uuid4().hex


class ProbeWriter:
    def __init__(
        self,
        store: Store,
        spill: SpillFile,
        *,
        max_queue: int = 20_000,
        batch_max: int = 5_000,
        flush_interval_s: float = 0.25,
        retry_interval_s: float = 2.0,
        db_timeout_s: float = 30.0,
        on_stored: Callable[[Sequence[ProbeResult]], Awaitable[None]] | None = None,
    ) -> None:
        self._store = store
        self._spill = spill
        self._queue: asyncio.Queue[SpillRecord] = asyncio.Queue(max_queue)
        self._batch_max = batch_max
        self._flush_interval_s = flush_interval_s
        self._retry_interval_s = retry_interval_s
        self._db_timeout_s = db_timeout_s
        self._on_stored = on_stored
        self._db_down = spill.size() > 0  # a spill left by an earlier run: replay it first
        self._next_retry = 0.0
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._held: list[SpillRecord] = []
        self._current: list[SpillRecord] = []
        self.stats = WriterStats()

    @property
    def db_down(self) -> bool:
        return self._db_down

    @property
    def backlog(self) -> int:
        return self._queue.qsize()

    def submit(self, result: ProbeResult) -> str:
        """Queue a result for storage; returns its probe id. Never blocks, never drops."""
        pid = new_probe_id()
        self.stats.submitted += 1
        try:
            self._queue.put_nowait((pid, result))
        except asyncio.QueueFull:
            # The database is far behind: straight to disk rather than grow without bound.
            self._spill.append([(pid, result)])
            self.stats.spilled += 1
            self._db_down = True
        return pid

    async def _next_batch(self) -> list[SpillRecord]:
        batch, self._held = self._held[: self._batch_max], self._held[self._batch_max :]
        if batch:
            await asyncio.sleep(self._flush_interval_s)  # held after a disk error: pace retries
            return batch
        try:
            first = await asyncio.wait_for(self._queue.get(), self._flush_interval_s)
        except TimeoutError:
            return batch
        batch.append(first)
        while len(batch) < self._batch_max:
            try:
                batch.append(self._queue.get_nowait())
            except asyncio.QueueEmpty:
                break
        return batch

    async def _insert(self, batch: Sequence[SpillRecord]) -> int:
        async with asyncio.timeout(self._db_timeout_s):
            n = await self._store.insert_probes(batch)
        if self._on_stored is not None:
            try:
                await self._on_stored([r for _, r in batch])
            except Exception:  # the probes are stored; a listener's fault must not undo that
                log.exception("after-store hook failed")
        return n

    async def _store_batch(self, batch: Sequence[SpillRecord]) -> bool:
        """Store `batch`; False when the database is away. When the database answers but
        refuses the batch, the records it cannot take are found by halving and set aside in
        the rejected file, so one bad value never blocks everything behind it."""
        try:
            self.stats.inserted += await self._insert(batch)
            return True
        except StoreRejected as exc:
            if len(batch) == 1:
                log.error(
                    "probe %s cannot be stored, set aside in %s: %s",
                    batch[0][0],
                    self._spill.rejected_path,
                    exc,
                )
                await asyncio.to_thread(self._spill.reject, batch)
                self.stats.rejected += 1
                return True
        except (StoreUnavailable, TimeoutError) as exc:
            # Said once when it goes away (by _write); retries while it is away stay quiet.
            (log.debug if self._db_down else log.warning)("database unavailable: %s", exc)
            return False
        mid = len(batch) // 2
        return await self._store_batch(batch[:mid]) and await self._store_batch(batch[mid:])

    async def _write(self, batch: list[SpillRecord]) -> None:
        if not batch:
            return
        if not self._db_down:
            if await self._store_batch(batch):
                return
            log.warning("spilling to %s until the database is back", self._spill.path)
            self._mark_down()
        try:
            await asyncio.to_thread(self._spill.append, batch)
        except OSError:
            log.exception("cannot write the spill file %s; holding probes", self._spill.path)
            self._held.extend(batch)
            return
        self.stats.spilled += len(batch)

    def _mark_down(self) -> None:
        self.stats.db_failures += 1
        self._db_down = True
        self._next_retry = time.monotonic() + self._retry_interval_s

    async def _try_replay(self) -> None:
        """Database down: when it is time, replay the spill a slice at a time (memory stays
        bounded however long the outage was); when it is empty, resume direct writes.
        Replays are idempotent (probe ids), so a slice stored twice is stored once."""
        if not self._db_down or time.monotonic() < self._next_retry:
            return
        if not await self._store.ping():
            self._next_retry = time.monotonic() + self._retry_interval_s
            return
        replayed = 0
        while True:
            records, offset = await asyncio.to_thread(self._spill.read, REPLAY_SLICE_BYTES)
            if offset == 0:
                break  # empty, or only a torn last line (the next append completes it)
            for start in range(0, len(records), REPLAY_BATCH):
                chunk = records[start : start + REPLAY_BATCH]
                if not await self._store_batch(chunk):
                    self.stats.db_failures += 1
                    self._next_retry = time.monotonic() + self._retry_interval_s
                    return
                self.stats.replayed += len(chunk)
            replayed += len(records)
            await asyncio.to_thread(self._spill.drop_through, offset)
        self._db_down = self._spill.size() > 0
        if replayed:
            log.warning("database back: replayed %d spilled probes", replayed)
            gc.collect()  # the replay's garbage, before the allocator grows around it

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="probe-writer")

    async def _run(self) -> None:
        while not (self._closing and self._queue.empty() and not self._held):
            try:
                await self._try_replay()
                self._current = await self._next_batch()
                await self._write(self._current)
                self._current = []
            except Exception:  # a bug of ours: log it and keep the writer alive
                log.exception("probe writer failed; retrying")
                await asyncio.sleep(self._retry_interval_s)

    async def close(self, timeout_s: float = 60.0) -> None:
        """Write what is queued (to the database, or to the spill if it is down), then stop.
        After `timeout_s`, whatever is still queued goes to the spill file as it is."""
        self._closing = True
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
        except TimeoutError:
            self._task.cancel()
            queued = [self._queue.get_nowait() for _ in range(self._queue.qsize())]
            left = self._current + self._held + queued  # a replay of stored ones is harmless
            self._held = []
            self._spill.append(left)
            self.stats.spilled += len(left)
            log.error(
                "writer did not finish in %.0fs: %d probes left in the spill", timeout_s, len(left)
            )
        self._task = None
