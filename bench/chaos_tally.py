"""The chaos bench's accounting: the simulator's truth against stored probes, the outbox against
delivered notifications, the daemon's RSS per life; and the report. No I/O but printing."""

from __future__ import annotations

import bisect
import itertools
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bench_procs import load, out

NS = 1_000_000_000
MATCH_S = 2.0  # a request arrives this soon after its probe's started_at (ms, in practice)
EARLY_S = 0.05  # ... and never before it, bar clock reading order
RSS_GROWTH_MAX = 0.10


@dataclass(frozen=True, slots=True)
class Kill:
    t_s: float  # since the start of the run
    at_ns: int  # time.monotonic_ns() just before the signal
    during: str | None  # the database fault at the time, if any


@dataclass
class ProbeTally:
    requests: int = 0
    served: int = 0  # the simulator ran the plan to its end
    gave_up: int = 0  # the client (a probe timeout) ended it
    in_flight_at_kill: int = 0  # not measured: a kill came too soon after
    stored_anyway: int = 0  # ... of which stored all the same
    open_at_end: int = 0
    unknown_target: int = 0
    measured: int = 0
    stored: int = 0
    lost: list[dict[str, Any]] = field(default_factory=list)
    rows: int = 0
    distinct_ids: int = 0
    duplicated: int = 0
    without_request: int = 0


def _ns(ts: datetime) -> int:
    return int(ts.timestamp() * NS)


def probes(
    truth: Sequence[Mapping[str, Any]],
    rows: Sequence[Mapping[str, Any]],
    kills: Sequence[Kill],
    clock_offset_ns: int,
    ack_s: float,
) -> ProbeTally:
    """Match each finished request to the probe row of its target that started just before it
    (`clock_offset_ns`: wall minus monotonic time); count the measured ones not stored."""
    tally = ProbeTally(
        requests=len(truth), rows=len(rows), distinct_ids=len({r["id"] for r in rows})
    )
    by_target: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for r in rows:
        by_target.setdefault((r["provider"], r["model"]), []).append(
            (_ns(r["started_at"]), r["id"])
        )
    for started in by_target.values():
        started.sort()
        tally.duplicated += sum(1 for a, b in itertools.pairwise(started) if a[0] == b[0])
    tally.duplicated += tally.rows - tally.distinct_ids
    matched: set[str] = set()
    for rec in truth:
        started = by_target.get((rec["provider"], rec["model"]))
        if started is None:
            tally.unknown_target += 1
            continue
        closed = rec["closed_ns"]
        if closed is None:
            tally.open_at_end += 1
            continue
        wall = rec["arrival_ns"] + clock_offset_ns
        i = bisect.bisect_right(started, (wall + int(EARLY_S * NS), "~")) - 1
        pid = started[i][1] if i >= 0 and wall - started[i][0] <= MATCH_S * NS else None
        if pid is not None:
            matched.add(pid)
        killed = [
            k
            for k in kills
            if rec["arrival_ns"] <= k.at_ns + EARLY_S * NS and closed >= k.at_ns - ack_s * NS
        ]
        if killed:
            tally.in_flight_at_kill += 1
            tally.stored_anyway += pid is not None
            continue
        tally.measured += 1
        if rec["closed_by"] == "server":
            tally.served += 1
        else:
            tally.gave_up += 1
        if pid is not None:
            tally.stored += 1
            continue
        after = [k for k in kills if k.at_ns >= closed]
        tally.lost.append(
            rec
            | {
                "closed_wall_ns": closed + clock_offset_ns,
                "next_kill_s": (after[0].at_ns - closed) / NS if after else None,
                "next_kill_during": after[0].during if after else None,
            }
        )
    tally.without_request = len({pid for s in by_target.values() for _, pid in s} - matched)
    return tally


@dataclass
class NoticeTally:
    rows: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    expected: int = 0
    received: int = 0  # deliveries, duplicates included
    delivered: int = 0  # expected rows whose key arrived
    lost: list[str] = field(default_factory=list)  # sent or failed, never arrived
    queued_at_end: list[str] = field(default_factory=list)  # still pending in the outbox
    duplicates: dict[str, int] = field(default_factory=dict)  # key -> extra copies
    unexpected: list[str] = field(default_factory=list)
    incidents: int = 0
    by_transition: dict[str, int] = field(default_factory=dict)


NOT_SENT_ON_PURPOSE = ("muted", "cancelled")


def notifications(
    outbox: Iterable[Mapping[str, Any]], keys_received: Sequence[str], incidents: int
) -> NoticeTally:
    tally = NoticeTally(received=len(keys_received), incidents=incidents)
    counts = Counter(keys_received)
    known: set[str] = set()
    for row in outbox:
        if row["channel"] != "hook":
            continue
        tally.rows += 1
        status = str(row["status"])
        tally.by_status[status] = tally.by_status.get(status, 0) + 1
        key = str(row["key"])
        known.add(key)
        if status in NOT_SENT_ON_PURPOSE:
            continue
        tally.expected += 1
        kind = str(row["transition"]).split(":")[0]
        tally.by_transition[kind] = tally.by_transition.get(kind, 0) + 1
        if counts[key]:
            tally.delivered += 1
        elif status in ("pending", "sending"):
            tally.queued_at_end.append(key)
        else:
            tally.lost.append(key)
    tally.duplicates = {k: n - 1 for k, n in counts.items() if n > 1}
    tally.unexpected = sorted(set(counts) - known)
    return tally


@dataclass(frozen=True, slots=True)
class Life:
    pid: int
    start_s: float
    end_s: float
    rss_1min_mb: float | None  # mean over age 60–90 s: comparable across lives
    rss_2min_mb: float | None  # mean over age 90–120 s
    rss_end_mb: float  # mean over its last 30 s
    peak_mb: float

    @property
    def growth(self) -> float | None:
        if self.rss_2min_mb is None or self.end_s - self.start_s < 240:
            return None  # too short a life to say
        return (self.rss_end_mb - self.rss_2min_mb) / self.rss_2min_mb


def rss_lives(samples: Sequence[tuple[float, int, int]]) -> list[Life]:
    """Each daemon life's RSS at two minutes of age and at its end, from (s, pid, kB) samples."""
    groups: dict[int, list[tuple[float, int]]] = {}
    for t, pid, kb in samples:
        groups.setdefault(pid, []).append((t, kb))
    lives = []
    for pid, points in groups.items():
        start, end = points[0][0], points[-1][0]
        at_1 = [kb for t, kb in points if 60 <= t - start <= 90]
        at_2 = [kb for t, kb in points if 90 <= t - start <= 120]
        last = [kb for t, kb in points if t >= end - 30]
        lives.append(
            Life(
                pid,
                start,
                end,
                sum(at_1) / len(at_1) / 1024 if at_1 else None,
                sum(at_2) / len(at_2) / 1024 if at_2 else None,
                sum(last) / len(last) / 1024,
                max(kb for _, kb in points) / 1024,
            )
        )
    return sorted(lives, key=lambda life: life.start_s)


def per_minute(samples: Sequence[tuple[float, int, int]]) -> list[tuple[int, float, int]]:
    """(minute, mean RSS MB, daemon lives seen in it)."""
    minutes: dict[int, list[tuple[int, int]]] = {}
    for t, pid, kb in samples:
        minutes.setdefault(int(t // 60), []).append((pid, kb))
    return [
        (m, sum(kb for _, kb in v) / len(v) / 1024, len({pid for pid, _ in v}))
        for m, v in sorted(minutes.items())
    ]


@dataclass
class Tally:
    probes: ProbeTally
    notices: NoticeTally
    samples: list[tuple[float, int, int]]
    kills: list[Kill]
    faults: list[tuple[float, float, str]]
    failed_starts: list[tuple[float, int | None, str]]
    unexpected_exits: list[tuple[float, int | None]]
    exit_code: int | None
    stop_s: float
    spill_left: int
    rejected: bool
    targets: int
    run_t0_ns: int
    log_levels: dict[str, int]
    log_lines: list[str]
    final_status: dict[str, Any] | None

    def report(self, ack_s: float) -> int:
        p, n = self.probes, self.notices
        lives = rss_lives(self.samples)
        growths = [life.growth for life in lives if life.growth is not None]
        at_1 = [life.rss_1min_mb for life in lives if life.rss_1min_mb is not None]
        spread = (max(at_1) - min(at_1)) / min(at_1) if at_1 else None
        rows: list[tuple[str, str, str, bool]] = [
            ("probes measured (served + timed out)", f"{p.measured:,}", "> 0", p.measured > 0),
            ("  stored", f"{p.stored:,}", "all", p.stored == p.measured),
            ("  lost", f"{len(p.lost):,}", "0", not p.lost),
            ("  duplicated", f"{p.duplicated:,}", "0", p.duplicated == 0),
            ("notifications expected (outbox rows)", f"{n.expected:,}", "> 0", n.expected > 0),
            ("  delivered", f"{n.delivered:,}", "all", n.delivered == n.expected),
            ("  lost", f"{len(n.lost):,}", "0", not n.lost),
            ("  still queued at the end", f"{len(n.queued_at_end):,}", "0", not n.queued_at_end),
            ("  unexpected (no outbox row)", f"{len(n.unexpected):,}", "0", not n.unexpected),
            (
                f"RSS across {len(at_1)} lives at 60–90 s of age: spread",
                f"{spread:.1%}" if spread is not None else "-",
                f"≤ {RSS_GROWTH_MAX:.0%}",
                spread is not None and spread <= RSS_GROWTH_MAX,
            ),
            (
                "RSS growth within a life, 2 min → end (worst ≥ 4 min)",
                f"{max(growths):+.1%}" if growths else "none",
                f"≤ {RSS_GROWTH_MAX:.0%}",
                not growths or max(growths) <= RSS_GROWTH_MAX,
            ),
            ("exit code after SIGTERM", str(self.exit_code), "0", self.exit_code == 0),
            ("left in the spill file", f"{self.spill_left:,} B", "0", self.spill_left == 0),
            (
                "unexpected daemon exits",
                str(len(self.unexpected_exits)),
                "0",
                not self.unexpected_exits,
            ),
        ]
        out()
        out(f"{'figure':<50} {'value':>10}  {'target':<7} result")
        for name, value, target, ok in rows:
            out(f"{name:<50} {value:>10}  {target:<7} {'ok' if ok else 'MISSED'}")
        out(
            f"{'  duplicated deliveries (at least once: allowed)':<50} "
            f"{sum(n.duplicates.values()):>10,}  {'-':<7} info"
        )
        self._details(ack_s, lives)
        ok = all(r[3] for r in rows)
        out()
        out("all targets met" if ok else "SOME TARGETS MISSED")
        return 0 if ok else 1

    def _details(self, ack_s: float, lives: list[Life]) -> None:
        p, n = self.probes, self.notices
        out()
        out("details:")
        cuts = [f for f in self.faults if f[2] == "cut"]
        hangs = [f for f in self.faults if f[2] == "hang"]
        out(
            f"  {len(self.kills)} kill -9 ({sum(1 for k in self.kills if k.during)} during a "
            f"database fault); {len(cuts)} cuts ({sum(b - a for a, b, _ in cuts):.0f} s), "
            f"{len(hangs)} black holes ({sum(b - a for a, b, _ in hangs):.0f} s); "
            f"{len(self.failed_starts)} failed starts; SIGTERM to exit {self.stop_s:.1f} s"
        )
        for t, code, why in self.failed_starts[:5]:
            out(f"    start failed at {t:.0f} s (exit {code}): {why[:150]}")
        out(
            f"  requests {p.requests:,} to {self.targets} targets: {p.served:,} served, "
            f"{p.gave_up:,} ended by a probe timeout, {p.in_flight_at_kill:,} in flight at a kill "
            f"(finished < {ack_s:g} s before it; {p.stored_anyway:,} stored all the same), "
            f"{p.open_at_end:,} open at the end, {p.unknown_target:,} to no target"
        )
        out(
            f"  rows {p.rows:,}, distinct ids {p.distinct_ids:,}; rows matching no request "
            f"{p.without_request:,}"
        )
        for rec in p.lost[:15]:
            t = (rec["closed_wall_ns"] - self.run_t0_ns) / NS
            nk = rec["next_kill_s"]
            out(
                f"    LOST {rec['provider']}/{rec['model']} {rec['request_id']} closed at "
                f"{t:.1f} s by {rec['closed_by']} ({rec['outcome']}); next kill "
                + (
                    f"{nk:.1f} s later ({rec['next_kill_during'] or 'database up'})"
                    if nk is not None
                    else "none"
                )
            )
        final = self.final_status or {}
        out(
            f"  last life's writer: stored {final.get('stored', 0):,}, spilled "
            f"{final.get('spilled', 0):,}, replayed {final.get('replayed', 0):,}"
        )
        out(
            f"  outbox (hook): {n.rows} rows {dict(sorted(n.by_status.items()))}; expected by kind "
            f"{dict(sorted(n.by_transition.items()))}; {n.incidents} incidents; "
            f"{n.received} deliveries received"
        )
        for key in n.lost[:10]:
            out(f"    LOST notification {key}")
        for key in n.queued_at_end[:10]:
            out(f"    still queued: {key}")
        if n.duplicates:
            out(f"  duplicated deliveries by Idempotency-Key ({len(n.duplicates)} keys):")
            for key, extra in sorted(n.duplicates.items())[:20]:
                out(f"    {key}  +{extra}")
        out("  RSS per minute (MB; lives: daemon processes seen in the minute):")
        line = []
        for m, mb, k in per_minute(self.samples):
            line.append(f"{m:>3}: {mb:5.1f}{'*' if k > 1 else ' '}")
            if len(line) == 8:
                out("    " + "  ".join(line))
                line = []
        if line:
            out("    " + "  ".join(line))
        out("  each life: start–end s, RSS at 1 min, at 2 min → end, peak (MB)")
        for life in lives:
            g = life.growth
            at1 = f"{life.rss_1min_mb:.1f}" if life.rss_1min_mb is not None else "-"
            at2 = f"{life.rss_2min_mb:.1f}" if life.rss_2min_mb is not None else "-"
            out(
                f"    pid {life.pid}: {life.start_s:5.0f}–{life.end_s:5.0f}  {at1}, {at2} → "
                f"{life.rss_end_mb:.1f}{f' ({g:+.1%})' if g is not None else ''}, "
                f"peak {life.peak_mb:.1f}"
            )
        out(f"  daemon log lines by level: {dict(sorted(self.log_levels.items()))}")
        for line_ in self.log_lines:
            out(f"    {line_}")
        out(f"  load average at the end: {load()}")
