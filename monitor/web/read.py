"""Reads what each page and API answer needs through the storage queries and hands it to the
pure views. No aiohttp here: tests and benchmarks call these directly.

History reads are split at a settled point: the part before it may come from a
`SettledCache` (the web server keeps one), the rest is read every time. Without a cache both
parts are read, and the answer is the same.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar, overload

from monitor.aggregate import Accounting
from monitor.alert_model import Incident
from monitor.catalogue.listing import Endpoint
from monitor.maintenance import Window, expand
from monitor.results import ProbeResult, TargetKey
from monitor.rollup import Rollup, RollupKey, hour_of, merge_rollups
from monitor.scheduler import cron_fire_times
from monitor.status import TargetStatus, target_status
from monitor.storage.database import Engine
from monitor.storage.reports import rollups_between
from monitor.storage.web import (
    first_probe_at,
    hourly_outcomes,
    incidents_since,
    latest_listing,
    open_incident_counts,
    recent_samples,
    target_states,
)
from monitor.web.cache import SettledCache
from monitor.web.history import (
    METRICS,
    WINDOWS,
    Hourly,
    Points,
    Tally,
    TargetBars,
    bucket_start,
    day_tallies,
    raw_bucket_s,
    raw_points,
    rollup_points,
    series_list,
    uptime_bars,
)
from monitor.web.site import Site
from monitor.web.views import endpoints_doc, model_keys, model_rows

DAY_METRICS = ("ttft_ms", "decode_tps", "e2e_tps")
INDEX_METRICS = ("ttft_ms", "e2e_tps")
CLOCK_SKEW = timedelta(days=1)
"""Recent probes are read up to now + this, as `provmon status` does."""
SETTLE = timedelta(minutes=5)
"""An hour's rollups (or a raw bucket) count as settled this long after it ended."""

V = TypeVar("V")
A = TypeVar("A")
B = TypeVar("B")
C = TypeVar("C")


@overload
async def gather_all(a: Awaitable[A], b: Awaitable[B], /) -> tuple[A, B]: ...
@overload
async def gather_all(a: Awaitable[A], b: Awaitable[B], c: Awaitable[C], /) -> tuple[A, B, C]: ...
async def gather_all(*aws: Awaitable[Any]) -> tuple[Any, ...]:
    """Every awaitable run to its end, then the first error, if any: when one query fails,
    none is left running on a connection the caller is about to give back."""
    results = await asyncio.gather(*aws, return_exceptions=True)
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return tuple(results)


async def _split(
    cache: SettledCache | None,
    key: Hashable,
    start: datetime,
    until: datetime,
    compute: Callable[[datetime, datetime], Awaitable[V]],
) -> tuple[datetime, V]:
    if cache is None:
        return until, await compute(start, until)
    return await cache.get(key, start, until, compute)


async def day_rollups(
    engine: Engine,
    now: datetime,
    model: str | None,
    metrics: tuple[str, ...],
    cache: SettledCache | None = None,
) -> dict[RollupKey, Rollup]:
    """The rollups `provmon status` reads for its day window (the hours overlapping the last
    24 hours): the settled hours merged per target and workload (a workload's kind decides
    which quality share its verdicts go to), the recent ones as stored."""
    start = hour_of(now - timedelta(days=1))

    async def settled(a: datetime, b: datetime) -> dict[tuple[TargetKey, str], Rollup]:
        found = await rollups_between(engine, a, b, model, metrics=metrics)
        per: dict[tuple[TargetKey, str], list[Rollup]] = {}
        for (key, _v, workload, _h), r in found.items():
            per.setdefault((key, workload), []).append(r)
        return {kw: merge_rollups(rs) for kw, rs in per.items()}

    until, merged = await _split(
        cache, ("day", model, metrics), start, hour_of(now - SETTLE), settled
    )
    tail = await rollups_between(engine, until, now, model, metrics=metrics, recent=True)
    return {(key, "*", workload, start): r for (key, workload), r in merged.items()} | tail


@dataclass(frozen=True, slots=True)
class SettledBars:
    """The settled part of the uptime bars: whole days before `day` as tallies, and the hours
    since `day` (or the last 26, whichever is more) as hourly counts."""

    day: datetime
    tallies: dict[TargetKey, dict[datetime, Tally]]
    hours: dict[TargetKey, dict[datetime, Counter[str]]]

    @classmethod
    def split(
        cls, hourly: Hourly, until: datetime, acct: Accounting, windows: Sequence[Window]
    ) -> SettledBars:
        day = until.replace(hour=0)
        keep = min(day, until - timedelta(hours=26))
        before = {k: {h: c for h, c in hs.items() if h < day} for k, hs in hourly.items()}
        hours = {k: {h: c for h, c in hs.items() if h >= keep} for k, hs in hourly.items()}
        return cls(day, day_tallies(before, acct, windows), hours)


LISTING_MAX_AGE = timedelta(days=2)
"""OpenRouter's listing of a model is used while at most this old."""


@dataclass(frozen=True, slots=True)
class ModelLive:
    """A model's statuses (`provmon status`'s windows), its raw probes of 30 minutes and
    OpenRouter's latest listing of it (when the catalogue watch has read one)."""

    model: str
    statuses: list[TargetStatus]
    recent: list[ProbeResult]
    listing: tuple[datetime, list[Endpoint]] | None = None

    def endpoints(self, site: Site, now: datetime) -> dict[str, Any]:
        return endpoints_doc(self.model, self.statuses, site, self.recent, now, self.listing)


async def model_live(
    engine: Engine, site: Site, model: str, now: datetime, cache: SettledCache | None = None
) -> ModelLive:
    (recent, day), (states, listing) = await gather_all(
        gather_all(
            recent_samples(engine, now - timedelta(minutes=30), now + CLOCK_SKEW, model),
            day_rollups(engine, now, model, DAY_METRICS, cache),
        ),
        gather_all(target_states(engine), latest_listing(engine, model, now - LISTING_MAX_AGE)),
    )
    keys = model_keys(model, site, recent, day)
    statuses = target_status(keys, recent, day, states, now, site.accounting, site.kinds)
    return ModelLive(model, statuses, recent, listing)


async def models_index(
    engine: Engine, site: Site, now: datetime, cache: SettledCache | None = None
) -> list[dict[str, Any]]:
    """Every model configured or with probes in the last day, as `/api/v1/models` rows."""
    day, states, open_counts = await gather_all(
        day_rollups(engine, now, None, INDEX_METRICS, cache),
        target_states(engine),
        open_incident_counts(engine),
    )
    keys = list(dict.fromkeys([*site.targets, *sorted({k[0] for k in day})]))
    statuses = target_status(keys, [], day, states, now, site.accounting, site.kinds)
    rows = model_rows(statuses, day, open_counts, site.accounting)
    order = {m: i for i, m in enumerate(site.models())}
    return sorted(rows, key=lambda r: (order.get(r["id"], len(order)), r["id"]))


async def model_uptime(
    engine: Engine,
    site: Site,
    model: str,
    now: datetime,
    days: int = 30,
    cache: SettledCache | None = None,
) -> tuple[list[TargetBars], list[Incident]]:
    """The uptime bars of `model`'s targets and its incidents of the last `days` days."""
    this_hour = hour_of(now)
    first_day = this_hour.replace(hour=0) - timedelta(days=days - 1)
    windows = expand(site.maintenance, first_day, now, cron_fire_times)

    async def settled(a: datetime, b: datetime) -> SettledBars:
        hourly = await hourly_outcomes(engine, a, b, model)
        return SettledBars.split(hourly, b, site.accounting, windows)

    async def history() -> tuple[datetime, SettledBars]:
        cutoff = hour_of(now - SETTLE)
        return await _split(cache, ("bars", model, days), first_day, cutoff, settled)

    (until, old), incidents = await gather_all(history(), incidents_since(engine, first_day, model))
    tail = await hourly_outcomes(engine, until, now + CLOCK_SKEW, model, recent=True)
    recent = {k: dict(old.hours.get(k, {})) | tail.get(k, {}) for k in set(old.hours) | set(tail)}
    tallies = old.tallies
    until = old.day
    keys = model_keys(model, site, (), ())
    keys += sorted((set(tallies) | set(recent)) - set(keys))
    bars = uptime_bars(
        keys, tallies, until, recent, incidents, now, site.accounting, days=days, windows=windows
    )
    return bars, incidents


async def model_series(
    engine: Engine,
    site: Site,
    model: str,
    metric: str,
    window: str,
    now: datetime,
    cache: SettledCache | None = None,
) -> dict[str, Any]:
    """`/series`: per target, the window's buckets with n and p50–p99 of `metric`."""
    w = WINDOWS[window]
    bucket_s = w.bucket_s
    if w.raw:  # finer buckets while the data is younger than the window
        first = await first_probe_at(engine, now - timedelta(seconds=w.seconds), now, model)
        bucket_s = raw_bucket_s(w, (now - first).total_seconds() if first else 0.0)
    start = bucket_start(now - timedelta(seconds=w.seconds), bucket_s)
    cutoff = bucket_start(now - SETTLE, bucket_s)

    async def points(a: datetime, b: datetime, recent: bool = False) -> Points:
        if w.raw:
            samples = await recent_samples(engine, a, b, model)
            return raw_points(samples, metric, a, b, bucket_s)
        rollups = await rollups_between(engine, a, b, model, metrics=(metric,), recent=recent)
        return rollup_points(rollups, metric, a, b, bucket_s)

    key = ("series", model, metric, window, bucket_s)
    until, settled = await _split(cache, key, start, cutoff, points)
    tail = await points(until, now + CLOCK_SKEW, recent=True)
    settled = {k: {t: p for t, p in ps.items() if t >= start} for k, ps in settled.items()}
    keys = model_keys(model, site, (), ())
    keys += sorted((set(settled) | set(tail)) - set(keys))
    label, unit = METRICS[metric]
    return {
        "data": {
            "id": model,
            "metric": metric,
            "label": label,
            "unit": unit,
            "window": window,
            "bucket_s": bucket_s,
            "start": start.isoformat(),
            "end": now.isoformat(),
            "series": series_list(keys, (settled, tail)),
        }
    }
