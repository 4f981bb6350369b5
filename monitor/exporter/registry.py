"""The Prometheus metrics: their names, labels and buckets, kept current from probe samples,
health snapshots and alert states, and rendered for a scrape. The only module that imports
prometheus_client.

Counters, histograms and the last-probe gauge are prometheus_client's own metrics, updated as
samples arrive; uptime ratios, target states and the daemon's health are produced at scrape time
by a collector from the latest values. Safe to use from several threads (prometheus_client locks
each metric; the collector reads under `lock`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics import disable_created_metrics
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from monitor.exporter.model import (
    STATES,
    WINDOWS,
    Health,
    OutcomeWindows,
    ProbeSample,
    SeriesKey,
    count_probe,
)

LABELS = ("model", "provider", "route", "vantage", "workload")
TIME_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 7.5, 10, 15, 20, 30, 60, 120)
CONNECT_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
TPS_BUCKETS = (1, 2.5, 5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 500, 1000)

# One exposition style for every scrape: no `_created` series (they double the size of a scrape
# and no dashboard or rule here reads them). This process serves only these metrics.
disable_created_metrics()  # type: ignore[no-untyped-call]


class Metrics:
    def __init__(
        self,
        version: str,
        *,
        min_samples: int,
        failure_outcomes: Collection[str],
        process_pid: int | None = None,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._min_samples = min_samples
        self._failures = frozenset(failure_outcomes)
        self.lock = threading.Lock()
        self._windows: dict[SeriesKey, OutcomeWindows] = {}
        self._jobs: set[SeriesKey] = set()
        self._states: dict[tuple[str, str, str], str] = {}
        self._health: Health | None = None
        self._database_ok = False
        r = self.registry
        self.probes = Counter(
            "provmon_probes_total",
            "Probes finished, by outcome (every probe, every outcome).",
            (*LABELS, "outcome"),
            registry=r,
        )
        self.success = Gauge(
            "provmon_probe_success",
            "1 when the target's last probe was ok, else 0.",
            LABELS,
            registry=r,
        )
        self.ttft = Histogram(
            "provmon_probe_ttft_seconds",
            "Time to first token of ok probes: request written to the first content event.",
            LABELS,
            buckets=TIME_BUCKETS_S,
            registry=r,
        )
        self.latency = Histogram(
            "provmon_probe_latency_seconds",
            "Request written to the end of the stream, ok probes.",
            LABELS,
            buckets=TIME_BUCKETS_S,
            registry=r,
        )
        self.connect = Histogram(
            "provmon_probe_connect_seconds",
            "TCP connect time of the probe's fresh connection, where measured.",
            LABELS,
            buckets=CONNECT_BUCKETS_S,
            registry=r,
        )
        self.decode = Histogram(
            "provmon_probe_decode_tokens_per_second",
            "Generation speed after the first token, ok probes with at least 2 streamed tokens.",
            LABELS,
            buckets=TPS_BUCKETS,
            registry=r,
        )
        self.e2e = Histogram(
            "provmon_probe_e2e_tokens_per_second",
            "Output tokens over the whole request's latency, ok probes.",
            LABELS,
            buckets=TPS_BUCKETS,
            registry=r,
        )
        self.quality = Counter(
            "provmon_quality_verdicts",
            "Quality verdicts of ok probes of tool_call and structured workloads, by verdict "
            "(ok, invalid_json, unknown_tool, schema_mismatch, no_tool_call, "
            "no_structured_output).",
            (*LABELS, "verdict"),
            registry=r,
        )
        self.cost = Counter(
            "provmon_probe_cost_usd",
            "What probing cost, in US dollars.",
            LABELS,
            registry=r,
        )
        build = Gauge(
            "provmon_build_info", "provmon's version; always 1.", ("version",), registry=r
        )
        build.labels(version).set(1)
        r.register(_Snapshot(self))
        if process_pid is not None:
            ProcessCollector(namespace="provmon", pid=lambda: str(process_pid), registry=r)

    # --- updates -------------------------------------------------------------------------------

    def expect(self, jobs: Iterable[SeriesKey]) -> None:
        """The configured (target, workload) series: their state series exist from the start."""
        with self.lock:
            self._jobs.update(jobs)

    def probe(self, s: ProbeSample) -> None:
        key = s.key
        self.probes.labels(*key, s.outcome).inc()
        ok = s.outcome == "ok"
        self.success.labels(*key).set(1 if ok else 0)
        if ok:
            for hist, value in (
                (self.ttft, s.ttft_s),
                (self.latency, s.latency_s),
                (self.decode, s.decode_tps),
                (self.e2e, s.e2e_tps),
            ):
                if value is not None:
                    hist.labels(*key).observe(value)
        if s.connect_s is not None:
            self.connect.labels(*key).observe(s.connect_s)
        if (verdict := s.verdict) is not None:
            self.quality.labels(*key, verdict).inc()
        if s.cost_usd:
            self.cost.labels(*key).inc(max(0.0, s.cost_usd))
        with self.lock:
            self._jobs.add(key)
            windows = self._windows.get(key)
            if windows is None:
                windows = self._windows[key] = OutcomeWindows()
            count_probe(windows, s.outcome, s.started_at_s, self._failures)

    def health(self, h: Health) -> None:
        with self.lock:
            self._health = h

    def alert_states(self, states: Mapping[tuple[str, str, str], str]) -> None:
        """Each target's alert state ("up", "down", "degraded"; anything else: none of them)."""
        with self.lock:
            self._states = dict(states)

    def database(self, ok: bool) -> None:
        """The latest readiness check: the database answered and its schema is current."""
        with self.lock:
            self._database_ok = ok

    # --- reading -------------------------------------------------------------------------------

    def snapshot(
        self, now_s: float
    ) -> tuple[
        list[tuple[SeriesKey, str, float]], list[tuple[SeriesKey, str]], Health | None, bool
    ]:
        """(uptime ratios, target states, health, database ok) as of `now_s`."""
        with self.lock:
            ratios = []
            for key, windows in self._windows.items():
                for name, seconds in WINDOWS:
                    value = windows.ratio(seconds, now_s, self._min_samples)
                    if value is not None:
                        ratios.append((key, name, value))
            states = [(key, self._states.get(key[:3], "")) for key in sorted(self._jobs)]
            return ratios, states, self._health, self._database_ok

    def render(self, accept: str | None) -> tuple[bytes, str]:
        """A scrape: the exposition format the `Accept` header asks for, and its content type."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type


class _Snapshot(Collector):
    """Uptime ratios, target states and the daemon's health, from their latest values."""

    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        ratios, states, health, db_ok = self._m.snapshot(time.time())
        uptime = GaugeMetricFamily(
            "provmon_uptime_ratio",
            "ok / (ok + failures) over the window (5m, 30m, 1d); absent below uptime.min_samples.",
            labels=(*LABELS, "window"),
        )
        for key, window, value in ratios:
            uptime.add_metric([*key, window], value)
        yield uptime
        state = GaugeMetricFamily(
            "provmon_target_state",
            "1 for the target's current alert state (up, down, degraded), 0 for the others.",
            labels=(*LABELS, "state"),
        )
        for key, current in states:
            for name in STATES:
                state.add_metric([*key, name], 1.0 if current == name else 0.0)
        yield state
        storing = health.writer_storing if health is not None else False
        yield _gauge(
            "provmon_database_up",
            "1 when the database answers with the current schema and probes are stored in it.",
            1.0 if db_ok and storing else 0.0,
        )
        if health is None:
            return
        yield _gauge(
            "provmon_writer_queue_depth",
            "Probe results waiting to be written.",
            health.writer_queue_depth,
        )
        yield _gauge(
            "provmon_spill_records",
            "Probe results in the spill file, waiting for the database.",
            health.spill_records,
        )
        yield _gauge("provmon_spill_bytes", "Size of the spill file.", health.spill_bytes)
        yield _counter(
            "provmon_scheduler_late",
            "Scheduled runs that started more than 1 s after their slot.",
            health.scheduler_late,
        )
        yield _counter(
            "provmon_scheduler_missed",
            "Scheduled runs dropped for being later than their grace time.",
            health.scheduler_missed,
        )
        if health.budget_remaining_usd is not None:
            yield _gauge(
                "provmon_budget_remaining_usd",
                "What is left of today's probing budget (UTC day), in US dollars.",
                health.budget_remaining_usd,
            )
        sent = CounterMetricFamily(
            "provmon_notifications",
            "Notifications handed to a channel, by channel and result (sent, failed).",
            labels=("channel", "result"),
        )
        for channel, results in sorted(health.notifications.items()):
            for result, n in sorted(results.items()):
                sent.add_metric([channel, result], n)
        yield sent


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)
