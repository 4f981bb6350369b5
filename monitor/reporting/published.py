"""OpenRouter's published figures beside provmon's own, per endpoint and workload. Pure.

Each catalogue snapshot in the period carries what OpenRouter published of an endpoint over the
30 minutes before it was read: `uptime_last_30m`, the p50 of `latency_last_30m` (its time to
first token, measured at OpenRouter: without the network between the user and OpenRouter) and
the p50 of `throughput_last_30m`. Over the period they are summarised as the mean uptime and
the median of the p50s, and compared with provmon's estimate of the same endpoint's target:
flagged where OpenRouter's figure lies outside the 95 % confidence interval of provmon's
(Wilson's interval for uptime, order statistics for medians).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from monitor.aggregate import Accounting, RowData, RowKey, median_ci, wilson_interval
from monitor.catalogue.listing import Endpoint
from monitor.reporting.model import Published, PublishedFigure

Snapshot = tuple[datetime, Sequence[Endpoint]]
"""(observed_at, endpoints) of one catalogue reading."""


def endpoint_for(pin: str, provider: str, endpoints: Iterable[Endpoint]) -> Endpoint | None:
    """The endpoint a target's probes reach: the one whose tag it pins, or, when it pins a
    provider (slug or name), that provider's only endpoint (with several it is ambiguous)."""
    listed = list(endpoints)
    for e in listed:
        if e.tag.casefold() == pin.casefold():
            return e
    names = {pin.casefold(), provider.casefold()}
    mine = [e for e in listed if e.slug.casefold() in names or e.provider.casefold() in names]
    return mine[0] if len(mine) == 1 else None


def _figure(
    published: float | None, estimate: tuple[float, float, float] | None
) -> PublishedFigure | None:
    if published is None:
        return None
    if estimate is None:
        return PublishedFigure(published, None, None, None, None)
    low, value, high = estimate
    slack = 1e-9 * max(1.0, abs(high))  # a bound of 100 % may come out as 99.99999999999999
    return PublishedFigure(
        published, value, low, high, not low - slack <= published <= high + slack
    )


def _uptime_estimate(data: RowData, acct: Accounting) -> tuple[float, float, float] | None:
    ok = data.total.outcomes.get("ok", 0)
    failed = sum(n for o, n in data.total.outcomes.items() if o in acct.failure_outcomes)
    if ok + failed < acct.min_samples:
        return None
    low, high = wilson_interval(ok, ok + failed)
    return 100 * low, 100 * ok / (ok + failed), 100 * high


def published_rows(
    rows: Mapping[RowKey, RowData],
    snapshots: Sequence[Snapshot],
    pins: Mapping[str, tuple[str, str]],
    acct: Accounting,
) -> list[Published]:
    """One entry per OpenRouter target row whose endpoint some snapshot lists.

    `pins` maps a target's provider label to (what its probes pin, the provider's name).
    """
    out: list[Published] = []
    for key, data in sorted(rows.items()):
        _, label, route, workload = key
        if route != "openrouter" or label not in pins or not data.total.n:
            continue
        pin, provider = pins[label]
        seen = [e for _, listed in snapshots if (e := endpoint_for(pin, provider, listed))]
        if not seen:
            continue
        uptimes = [e.uptime_last_30m for e in seen if e.uptime_last_30m is not None]
        ttfts = [e.latency_last_30m.p50 for e in seen if e.latency_last_30m]
        speeds = [e.throughput_last_30m.p50 for e in seen if e.throughput_last_30m]
        h = data.total.histograms
        out.append(
            Published(
                provider=label,
                route=route,
                workload=workload,
                endpoint=seen[-1].tag,
                polls=len(seen),
                uptime_pct=_figure(
                    statistics.fmean(uptimes) if uptimes else None, _uptime_estimate(data, acct)
                ),
                ttft_p50_ms=_figure(
                    statistics.median(ttfts) if ttfts else None, median_ci(h.get("ttft_ms"))
                ),
                decode_p50_tps=_figure(
                    statistics.median(speeds) if speeds else None, median_ci(h.get("decode_tps"))
                ),
            )
        )
    return out
