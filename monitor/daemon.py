"""The monitor daemon's work: probe jobs on a schedule, the budget, pruning, draining on stop.

`Monitor` owns no resources: the daemon build (`runtime.build_daemon`) makes the prober, writer,
store and scheduler, hands them over, and closes them. Tests drive it in burst mode through
`Daemon.run_round`.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from monitor.budget import DailyBudget, utc_midnight
from monitor.clock import utc_now
from monitor.config import Config, Target, Workload
from monitor.errors import StoreUnavailable
from monitor.probing.client import Prober
from monitor.reporting.periods import Period, week_period
from monitor.results import Outcome, ProbeResult, monitor_fault
from monitor.scheduler import Scheduler
from monitor.storage.database import advisory_lock
from monitor.storage.store import Store
from monitor.writer import ProbeWriter

log = logging.getLogger(__name__)

PRUNE_JOB = "prune"
WEEKLY_JOB = "weekly-report"
WeeklyReport = Callable[[Period], Awaitable[None]]


CONNECTIVITY_KIND = "monitor.connectivity"


def stagger_s(key: str, interval_s: float) -> float:
    """A stable offset in [0, interval) per job, so targets do not all fire together."""
    return (zlib.crc32(key.encode()) % 10_000) / 10_000 * interval_s


class Monitor:
    def __init__(
        self,
        cfg: Config,
        prober: Prober,
        writer: ProbeWriter,
        store: Store,
        *,
        budget: DailyBudget | None = None,
        now: Callable[[], datetime] = utc_now,
        weekly_report: WeeklyReport | None = None,
        reachable: Callable[[float], Awaitable[bool]] | None = None,
        on_budget: Callable[[str | None], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self._prober = prober
        self._writer = writer
        self._store = store
        self._now = now
        self._reachable = reachable  # the connectivity check: is a failure our own fault?
        self.budget = budget or DailyBudget(cfg.schedule.budget_usd_per_day)
        self._weekly_report = weekly_report
        self._target_locks: dict[str, asyncio.Lock] = {}
        self._job_locks: dict[str, asyncio.Lock] = {}
        self._in_flight: set[asyncio.Task[object]] = set()
        self._accepting = True
        self.skipped_busy = 0
        self.started = 0
        self._budget_noted_day: object = None
        self._budget_spent = False
        self._on_budget = on_budget

    @property
    def jobs(self) -> list[tuple[Target, Workload]]:
        return [(t, self.cfg.workloads[w]) for t in self.cfg.targets for w in t.workloads]

    async def load_budget(self) -> None:
        """Count what was already spent today (a restart must not reset the budget)."""
        if self.budget.limit_usd is None:
            return
        now = self._now()
        try:
            spent = await self._store.spend_since(self.cfg.vantage, utc_midnight(now))
        except StoreUnavailable as exc:
            log.warning("cannot read today's spend, counting from zero: %s", exc)
            return
        self.budget.spend(spent, now)

    def _budget_allows(self) -> bool:
        """Paid probing may go on; tells `on_budget` when that changes (spent, or reset)."""
        allows = self.budget.allows(self._now())
        if allows == self._budget_spent and self._on_budget is not None:
            self._on_budget(
                None
                if allows
                else f"daily budget ${self.budget.limit_usd or 0:g} spent: paid probes paused "
                "until 00:00 UTC"
            )
        self._budget_spent = not allows
        return allows

    def _budget_exhausted(self, target: Target, workload: Workload) -> ProbeResult:
        now = self._now()
        if self._budget_noted_day != now.date():
            self._budget_noted_day = now.date()
            log.warning(
                "daily budget of $%.2f reached ($%.4f spent): paid probing paused until 00:00 UTC",
                self.budget.limit_usd or 0.0,
                self.budget.spent_usd,
            )
        return ProbeResult(
            model=target.model,
            provider=target.provider,
            route=target.route,
            vantage=self.cfg.vantage,
            workload=workload.name,
            started_at=now,
            outcome=Outcome.MONITOR_ERROR,
            error_kind="monitor.budget_exhausted",
            error_message=(
                f"daily budget ${self.budget.limit_usd:g} reached; paid probes resume at 00:00 UTC"
            ),
        )

    async def probe_job(self, target: Target, workload: Workload) -> ProbeResult | None:
        """One scheduled probe. At most one probe per target is in flight: a slot that comes
        while the last probe still runs is skipped, not queued (no pile-up)."""
        if not self._accepting:
            return None
        lock = self._target_locks.setdefault(target.key, asyncio.Lock())
        if lock.locked():
            self.skipped_busy += 1
            log.debug("%s still busy: slot skipped", target.key)
            return None
        task = asyncio.current_task()
        if task is not None:
            self._in_flight.add(task)
        try:
            async with lock:
                self.started += 1
                if target.paid and not self._budget_allows():
                    result = self._budget_exhausted(target, workload)
                else:
                    started = time.monotonic()
                    try:
                        result = await self._prober.probe(target, workload)
                    except asyncio.CancelledError:
                        if self._accepting:
                            raise
                        return None  # cut short by drain(): nothing to record
                    self.budget.spend(result.cost_usd, self._now())
                    if (
                        result.outcome.counts_against_uptime
                        and self._reachable is not None
                        and not await self._reachable(started)
                    ):
                        result = monitor_fault(result, CONNECTIVITY_KIND)
                self._writer.submit(result)
                if result.outcome is not Outcome.OK:
                    log.info(
                        "%s %s: %s %s %s",
                        target.key,
                        workload.name,
                        result.outcome.value,
                        result.error_kind or "",
                        result.error_message or "",
                    )
                return result
        finally:
            if task is not None:
                self._in_flight.discard(task)

    async def run_round(self) -> list[ProbeResult]:
        """Burst mode: every job once; targets concurrently (the per-provider gates still
        apply), each target's workloads one after another."""

        async def target_round(target: Target) -> list[ProbeResult]:
            out = []
            for w in target.workloads:
                r = await self.probe_job(target, self.cfg.workloads[w])
                if r is not None:
                    out.append(r)
            return out

        per_target = await asyncio.gather(*(target_round(t) for t in self.cfg.targets))
        return [r for rs in per_target for r in rs]

    async def singleton(self, name: str, period: str, job: Callable[[], Awaitable[None]]) -> bool:
        """Run `job` once per `period` across every monitor sharing the database: under a
        cluster-wide lock, skipped when a run for the period is recorded, recorded only after
        it succeeded (a failed run is tried again by the next attempt)."""
        lock = self._job_locks.setdefault(name, asyncio.Lock())
        if lock.locked():
            return False  # this monitor runs it already (the cron and catch-up jobs overlap)
        try:
            async with lock, advisory_lock(self._store.engine, name) as got:
                if not got or await self._store.job_ran(name, period):
                    return False
                await job()
                await self._store.claim_job_run(name, period, self.cfg.vantage, self._now())
                return True
        except StoreUnavailable as exc:
            log.warning("job %s skipped, database unavailable: %s", name, exc)
            return False
        except OSError as exc:
            log.warning("job %s skipped: %s", name, exc)
            return False

    async def prune(self) -> None:
        now = self._now()
        cutoff = now - timedelta(days=self.cfg.schedule.retention_days)

        async def job() -> None:
            n = await self._store.prune_probes(cutoff)
            outbox, runs = await self._store.prune_bookkeeping(cutoff)
            log.info(
                "pruned %d probes, %d sent notifications and %d job records older than %s",
                n,
                outbox,
                runs,
                cutoff.isoformat(),
            )

        await self.singleton(PRUNE_JOB, now.strftime("%Y-%m-%d"), job)

    async def weekly(self) -> None:
        """Write and freeze the report of the last finished ISO week, once across monitors."""
        if self._weekly_report is None:
            return
        last_week = week_period(self._now()).previous()
        report = self._weekly_report

        async def job() -> None:
            await report(last_week)

        try:
            await self.singleton(WEEKLY_JOB, last_week.label, job)
        except Exception:  # a report bug must not stop the monitor
            log.exception("weekly report for %s failed", last_week.label)

    def schedule(self, scheduler: Scheduler) -> None:
        jitter = self.cfg.schedule.jitter_s
        for target, workload in self.jobs:
            job_id = f"probe:{target.key}:{workload.name}"

            async def run(t: Target = target, w: Workload = workload) -> None:
                await self.probe_job(t, w)

            scheduler.every(
                job_id,
                run,
                interval_s=target.interval_s,
                jitter_s=min(jitter, target.interval_s / 2),
                first_in_s=stagger_s(job_id, target.interval_s),
            )
        scheduler.cron(PRUNE_JOB, self.prune, hour=3, minute=17)
        scheduler.every("prune-at-start", self.prune, interval_s=24 * 3600, first_in_s=30)
        r = self.cfg.reports
        scheduler.cron(
            WEEKLY_JOB,
            self.weekly,
            day_of_week=r.weekly_day,
            hour=r.weekly_hour,
            minute=r.weekly_minute,
        )
        # A monitor that was down at report time catches up (at most once per week).
        scheduler.every("weekly-catch-up", self.weekly, interval_s=6 * 3600, first_in_s=60)

    async def drain(self, timeout_s: float) -> int:
        """Stop taking work; wait up to `timeout_s` for probes in flight, then cancel them.
        Returns how many were cancelled."""
        self._accepting = False
        pending = [t for t in self._in_flight if not t.done()]
        if not pending:
            return 0
        log.info("waiting up to %.0fs for %d probes in flight", timeout_s, len(pending))
        _, still = await asyncio.wait(pending, timeout=timeout_s)
        for task in still:
            task.cancel()
        if still:
            await asyncio.wait(still, timeout=5)
            log.warning("cancelled %d probes still running after %.0fs", len(still), timeout_s)
        return len(still)
