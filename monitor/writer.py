"""The probe writer: keeps the database out of the probe path.

Probes hand results to `submit` (never blocks, never does I/O). One task takes them from a queue
and inserts them in batches. A batch the database has not acknowledged within `ack_s` of its
oldest result's submission is in the fsynced spill file by then (its write starts a quarter of
`ack_s`, at most 0.5 s, before) — whether the database refused, reset or simply stopped
answering — so a `kill -9` loses nothing measured more than `ack_s` earlier. While the database
is away every batch goes to the spill; the writer pings it every `retry_interval_s` and, once it
answers, replays the spill (idempotent by probe id) and drops it. While it pings or replays,
whatever is queued keeps going to the spill, so the bound holds however long they take.
Nothing is lost, nothing is written twice.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, TypeVar

from monitor.errors import StoreRejected, StoreUnavailable
from monitor.results import ProbeResult
from monitor.spill import SpillFile, SpillRecord
from monitor.storage.store import Store

log = logging.getLogger(__name__)
REPLAY_BATCH = 250
REPLAY_SLICE_BYTES = 256 * 1024  # about 250 records: the replay's peak memory stays small
T = TypeVar("T")


@dataclass(slots=True)
class WriterStats:
    submitted: int = 0
    inserted: int = 0
    spilled: int = 0
    replayed: int = 0
    rejected: int = 0
    db_failures: int = 0
    ack_timeouts: int = 0  # batches spilled because the database did not answer in ack_s
    spill_failures: int = 0  # failed attempts to write the spill file


class _Queued(NamedTuple):
    pid: str
    result: ProbeResult
    submitted_s: float  # time.monotonic() at submit: the ack deadline counts from here


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
        ack_s: float = 2.0,
        start_down: bool = False,
        on_stored: Callable[[], None] | None = None,
    ) -> None:
        """`on_stored` is a wake-up called after each batch reaches the database (the alert
        evaluator's: it reads what is new from the database itself)."""
        self._store = store
        self._spill = spill
        self._queue: asyncio.Queue[_Queued] = asyncio.Queue()
        self._max_queue = max_queue
        self._batch_max = batch_max
        self._flush_interval_s = flush_interval_s
        self._retry_interval_s = retry_interval_s
        self._db_timeout_s = db_timeout_s
        self._ack_s = ack_s
        self._spill_by_s = ack_s - min(0.5, ack_s / 4)  # the spill's fsync done by ack_s
        self._on_stored = on_stored
        # A spill left by an earlier run is replayed first; a database away at start too.
        self._db_down = start_down or spill.size() > 0
        self._next_retry = 0.0
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._late: asyncio.Task[bool] | None = None  # an insert still running past its ack
        self._held: list[SpillRecord] = []  # the spill could not be written: kept, retried
        self._spill_error: str | None = None
        self._current: list[SpillRecord] = []
        self._taps: list[Callable[[ProbeResult], None]] = []
        self.stats = WriterStats()

    def tap(self, listener: Callable[[ProbeResult], None]) -> None:
        """Call `listener` with every submitted result, as it is submitted (it must not block:
        the metrics endpoint counts probes this way)."""
        self._taps.append(listener)

    @property
    def running(self) -> bool:
        """The writer task is alive (started and neither finished nor crashed)."""
        return self._task is not None and not self._task.done()

    @property
    def db_down(self) -> bool:
        return self._db_down

    @property
    def spill_bytes(self) -> int:
        """Bytes waiting in the spill file (also what an earlier run left)."""
        return self._spill.size()

    @property
    def backlog(self) -> int:
        return self._queue.qsize() + len(self._held)

    def submit(self, result: ProbeResult) -> str:
        """Queue a result for storage; returns its probe id. Never blocks, never drops, never
        touches the disk: a queue past `max_queue` (the database far behind) only makes the
        writer send whole batches to the spill until it has caught up."""
        pid = new_probe_id()
        self.stats.submitted += 1
        self._queue.put_nowait(_Queued(pid, result, time.monotonic()))
        for listener in self._taps:
            listener(result)
        return pid

    async def _next_batch(self) -> tuple[list[SpillRecord], float]:
        """The next batch and the monotonic time by which it must be acknowledged."""
        now = time.monotonic()
        if self._held:
            await asyncio.sleep(self._flush_interval_s)  # the spill failed: pace the retries
            batch, self._held = self._held[: self._batch_max], self._held[self._batch_max :]
            return batch, now
        try:
            first = await asyncio.wait_for(self._queue.get(), self._flush_interval_s)
        except TimeoutError:
            return [], now
        items = [first]
        while len(items) < self._batch_max:
            try:
                items.append(self._queue.get_nowait())
            except asyncio.QueueEmpty:
                break
        return [(q.pid, q.result) for q in items], first.submitted_s + self._spill_by_s

    async def _insert(self, batch: Sequence[SpillRecord]) -> int:
        async with asyncio.timeout(self._db_timeout_s):
            n = await self._store.insert_probes(batch)
        if self._on_stored is not None:
            try:
                self._on_stored()
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

    async def _store_within(self, batch: list[SpillRecord], ack_by: float) -> bool:
        """Store `batch` if the database acknowledges it by `ack_by`; else leave the insert
        running (a replay of what it stores is harmless) and say False."""
        task = asyncio.create_task(self._store_batch(batch), name="probe-insert")
        try:
            done, _ = await asyncio.wait({task}, timeout=max(0.0, ack_by - time.monotonic()))
        except asyncio.CancelledError:
            task.cancel()  # close() gave up: the batch is in the spill or held for it
            raise
        if done:
            return task.result()
        self.stats.ack_timeouts += 1
        log.warning(
            "database did not acknowledge %d probes within %.1fs: spilling", len(batch), self._ack_s
        )
        self._late = task
        task.add_done_callback(self._late_done)
        return False

    def _late_done(self, task: asyncio.Task[bool]) -> None:
        if self._late is task:
            self._late = None
        if not task.cancelled() and task.exception() is not None:
            log.error("late insert failed: %s", task.exception())

    async def _write(self, batch: list[SpillRecord], ack_by: float) -> None:
        if not batch:
            return
        if not self._db_down:
            if self._queue.qsize() > self._max_queue:
                log.warning(
                    "database far behind (%d probes queued): spilling to %s until it catches up",
                    self._queue.qsize(),
                    self._spill.path,
                )
                self._mark_down()
            elif await self._store_within(batch, ack_by):
                return
            else:
                log.warning("spilling to %s until the database is back", self._spill.path)
                self._mark_down()
        await self._to_spill(batch)

    async def _to_spill(self, batch: list[SpillRecord]) -> None:
        try:
            await asyncio.to_thread(self._spill.append, batch)
        except OSError as exc:
            self.stats.spill_failures += 1
            if self._spill_error is None:
                self._spill_error = exc.strerror or str(exc)
                log.error(
                    "cannot write the spill file %s (%s): holding %d probes in memory, retrying",
                    self._spill.path,
                    self._spill_error,
                    len(batch),
                )
            self._held.extend(batch)
            return
        if self._spill_error is not None:
            log.warning(
                "spill file %s writable again after %d failed attempts (%s)",
                self._spill.path,
                self.stats.spill_failures,
                self._spill_error,
            )
            self._spill_error = None
        self.stats.spilled += len(batch)

    async def _during(self, aw: Awaitable[T]) -> T:
        """Await `aw` (a ping, a replay step: the database is away) while what is queued keeps
        going to the spill, every `flush_interval_s`: durable within ack_s however long it
        takes. The spill keeps their order: the replay reaches them in turn."""
        task = asyncio.ensure_future(aw)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=self._flush_interval_s)
                queued = [self._queue.get_nowait() for _ in range(self._queue.qsize())]
                if queued:
                    self._current = [(q.pid, q.result) for q in queued]  # close() sees them
                    await self._to_spill(self._current)
                    self._current = []
                if done:
                    return task.result()
        finally:
            task.cancel()  # close() gave up on us: no orphan left running

    def _mark_down(self) -> None:
        self.stats.db_failures += 1
        self._db_down = True
        self._next_retry = time.monotonic() + self._retry_interval_s

    async def _ping(self) -> bool:
        try:
            async with asyncio.timeout(max(self._ack_s, 1.0)):
                return await self._store.ping()
        except TimeoutError:
            return False

    async def _try_replay(self) -> None:
        """Database down: when it is time, replay the spill a slice at a time (memory stays
        bounded however long the outage was) and drop what was replayed; when it is empty,
        resume direct writes. Replays are idempotent (probe ids): a slice stored twice (a kill
        before the drop) is stored once."""
        if not self._db_down or time.monotonic() < self._next_retry or self._late is not None:
            return
        if not await self._during(self._ping()):
            self._next_retry = time.monotonic() + self._retry_interval_s
            return
        while self._held:  # the spill could not take these: straight to the database
            batch = self._held[: self._batch_max]
            if not await self._during(
                self._store_within(batch, time.monotonic() + self._db_timeout_s)
            ):
                self._next_retry = time.monotonic() + self._retry_interval_s
                return
            del self._held[: len(batch)]
        offset = replayed = 0
        try:
            while True:
                records, end = await asyncio.to_thread(self._spill.read, REPLAY_SLICE_BYTES, offset)
                if end == offset:
                    break  # the end, or only a torn last line (the next append completes it)
                for start in range(0, len(records), REPLAY_BATCH):
                    chunk = records[start : start + REPLAY_BATCH]
                    if not await self._during(
                        self._store_within(chunk, time.monotonic() + self._db_timeout_s)
                    ):
                        self.stats.db_failures += 1
                        self._next_retry = time.monotonic() + self._retry_interval_s
                        return
                    self.stats.replayed += len(chunk)
                    replayed += len(chunk)
                offset = end
        finally:
            # What was replayed goes, in one pass over the file (the slices before `offset`).
            await asyncio.to_thread(self._spill.drop_through, offset)
        self._db_down = self._spill.size() > 0
        if offset:
            log.warning("database back: replayed %d spilled probes", replayed)
            gc.collect()  # the replay's garbage, before the allocator grows around it

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="probe-writer")

    async def _run(self) -> None:
        while not (self._closing and self._queue.empty() and not self._held):
            try:
                await self._try_replay()
                self._current, ack_by = await self._next_batch()
                await self._write(self._current, ack_by)
                self._current = []
            except Exception:  # a bug of ours: log it and keep the writer alive
                log.exception("probe writer failed; retrying")
                await asyncio.sleep(self._retry_interval_s)

    async def close(self, timeout_s: float = 30.0) -> None:
        """Write what is queued (to the database, or to the spill if it is down), then stop.
        After `timeout_s`, whatever is still queued goes to the spill file as it is; an
        insert still running is given what is left of `timeout_s`, then cancelled."""
        self._closing = True
        if self._task is None:
            return
        deadline = time.monotonic() + timeout_s
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
        except TimeoutError:
            self._task.cancel()
            queued = [self._queue.get_nowait() for _ in range(self._queue.qsize())]
            left = self._current + self._held + [(q.pid, q.result) for q in queued]
            self._held = []
            await asyncio.wait({self._task}, timeout=1.0)  # let it unwind (its finally blocks)
            try:
                await asyncio.to_thread(self._spill.append, left)
                self.stats.spilled += len(left)
                log.error(
                    "writer did not finish in %.0fs: %d probes left in the spill",
                    timeout_s,
                    len(left),
                )
            except OSError as exc:
                log.error("writer stopped: %d probes could not be spilled: %s", len(left), exc)
        late = self._late
        if late is not None:
            _, pending = await asyncio.wait({late}, timeout=max(0.0, deadline - time.monotonic()))
            for task in pending:
                task.cancel()
        self._task = None
