"""Scrapes against probe accuracy: does `/metrics` at 1,000 targets, scraped once a second, move
provmon's measured TTFT?

The simulator (its own process, CPU 1) stamps every chunk with `x_sent_ns`, as in
probe_accuracy.py. A client process (CPU 0) runs provmon's Prober over 1,000 targets (one
provider name each, so a scrape has 1,000 targets' series): a warm-up wave probes them all at
once (every series exists from then on), then timed waves of `--concurrency` targets at a time
(100 by default: the level where TTFT error is about a millisecond, so a disturbance shows)
go round them; each probe's TTFT error is measured − true. Three modes, each in a fresh client
process:

- off: no metrics endpoint;
- idle: the endpoint runs and counts every probe, nobody scrapes;
- scrape: the same, and this process GETs /metrics once a second during the waves (with
  `Accept-Encoding: gzip`, as Prometheus does).

The metrics process (which renders the scrapes) runs where `--metrics-cpu` says: `any` (default:
the scheduler places it, as on a real machine), `client` (the probe loop's own CPU: the worst
case), `sim` (the simulator's CPU). A warm-up wave fills every series before the timed waves.
Only 127.0.0.1 is contacted; every child process is killed on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import os
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

from bench_procs import child_process, pin, receive, runq_wait_ns, simulator, waited_ms
from probe_accuracy import API_KEY, MODEL, SLUG, Params, Sample, bench_farm, errors

from monitor.stats import percentile

CLIENT_CPU, SIM_CPU = 0, 1
MODES = ("off", "idle", "scrape")


@dataclass(slots=True)
class ModeRun:
    mode: str
    samples: list[Sample]
    metrics_pid: int | None
    waited_ms: float | None = None  # the client runnable but its CPU taken (other load)
    metrics_cpu_s: float | None = None  # CPU time the metrics process used in the waves
    scrapes_ms: list[float] = field(default_factory=list)
    scrape_bytes: int = 0
    series: int = 0

    @property
    def done(self) -> list[Sample]:
        return [s for s in self.samples if s.complete]

    def ttft(self, p: float) -> float | None:
        values = sorted(s.ttft_err_ms for s in self.done if s.ttft_err_ms is not None)
        return percentile(values, p) if values else None


def config_doc(base_url: str, params: Params, targets: int, metrics: bool) -> dict[str, object]:
    doc: dict[str, object] = {
        "vantage": "bench",
        "timeouts": {"connect_s": 60, "first_token_s": 90, "idle_s": 60, "total_s": 150},
        "workloads": {
            "bench": {"input_tokens": params.input_tokens, "max_tokens": params.output_tokens}
        },
        "uptime": {"min_samples": 1},
        "database": {"url": "sqlite+aiosqlite:////nonexistent/provmon-bench-scrape.db"},
        "targets": [
            {
                "route": "direct",
                "model": MODEL,
                "provider": f"p{i:04d}",
                "base_url": f"{base_url}/{SLUG}/v1",
                "api_key_env": "BENCH_KEY",
                "workloads": ["bench"],
            }
            for i in range(targets)
        ],
    }
    if metrics:
        doc["metrics"] = {"listen": "127.0.0.1:0"}
    return doc


async def run_client(
    conn: Connection,
    base_url: str,
    params: Params,
    targets: int,
    concurrency: int,
    waves: int,
    mode: str,
    cpu: str,
) -> ModeRun:
    from monitor.config import parse_config
    from monitor.exporter.model import Health
    from monitor.exporter.sidecar import MetricsSidecar
    from monitor.probing.client import Prober, ProbeTrace
    from monitor.probing.session import probe_session
    from monitor.results import Outcome

    cfg = parse_config(
        config_doc(base_url, params, targets, mode != "off"), {"BENCH_KEY": API_KEY}, "<bench>"
    )
    workload = cfg.workloads["bench"]
    sidecar = None
    metrics_pid = None
    if cfg.metrics is not None:
        sidecar = MetricsSidecar(cfg, cfg.metrics.address, Health, poll_s=3600)
        await sidecar.start()
        proc = sidecar._proc
        assert proc is not None
        metrics_pid = proc.pid
        cpus = {"client": {CLIENT_CPU}, "sim": {SIM_CPU}}.get(cpu, set(range(os.cpu_count() or 1)))
        with contextlib.suppress(OSError):
            os.sched_setaffinity(metrics_pid, cpus)
    async with probe_session() as session:
        prober = Prober(session, timeouts=cfg.timeouts, vantage=cfg.vantage, gates=None)

        async def one(i: int) -> Sample:
            trace = ProbeTrace()
            result = await prober.probe(cfg.targets[i], workload, trace=trace)
            if sidecar is not None:
                sidecar.observe(result)
            n = result.output_tokens
            if result.outcome is not Outcome.OK or result.ttft_ms is None:
                return Sample(False, why=f"{result.outcome.value} {result.error_kind}")
            sent = [s for _, s in trace.tokens]
            if n != params.output_tokens or len(sent) != n or sent[0] is None or sent[-1] is None:
                return Sample(False, why=f"tokens {n}, events {len(sent)}")
            return errors(n, result.ttft_ms, result.decode_tps, trace.t0_ns, sent[0], sent[-1])

        await asyncio.gather(*(one(i) for i in range(targets)))  # warm-up: every series
        await asyncio.sleep(1.5)
        conn.send(("ready", sidecar.url if sidecar is not None else None))
        samples: list[Sample] = []
        runq_before = runq_wait_ns()
        cpu_before = cpu_s(metrics_pid)
        for wave in range(waves):
            first = wave * concurrency
            batch = [(first + k) % targets for k in range(concurrency)]
            samples += await asyncio.gather(*(one(i) for i in batch))
        waited = waited_ms(runq_before, runq_wait_ns())
        cpu_after = cpu_s(metrics_pid)
    if sidecar is not None:
        await sidecar.stop()
    run = ModeRun(mode, samples, metrics_pid, waited)
    if cpu_before is not None and cpu_after is not None:
        run.metrics_cpu_s = cpu_after - cpu_before
    return run


def cpu_s(pid: int | None) -> float | None:
    """User + system CPU seconds of a process (/proc/PID/stat)."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def _client_main(conn: Connection, *args: object) -> None:
    pin(CLIENT_CPU)
    conn.send(("done", asyncio.run(run_client(conn, *args))))  # type: ignore[arg-type]


def scraper(url: str, stop: threading.Event, run: ModeRun) -> None:
    """GET /metrics once a second (gzip, as Prometheus asks), timing each scrape."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(f"{url}/metrics", headers={"Accept-Encoding": "gzip"})
    body = b""
    while not stop.is_set():
        t0 = time.perf_counter()
        try:
            with opener.open(request, timeout=60) as resp:
                body = resp.read()
                gzipped = resp.headers.get("Content-Encoding") == "gzip"
        except OSError:
            break  # the client has finished and closed its metrics endpoint
        run.scrapes_ms.append((time.perf_counter() - t0) * 1000)
        stop.wait(max(0.0, 1.0 - (time.perf_counter() - t0)))
    if body:
        text = gzip.decompress(body) if gzipped else body
        run.scrape_bytes = len(text)
        run.series = sum(1 for line in text.splitlines() if line and not line.startswith(b"#"))


def run_mode(
    base_url: str, params: Params, targets: int, concurrency: int, waves: int, mode: str, cpu: str
) -> ModeRun:
    args = (base_url, params, targets, concurrency, waves, mode, cpu)
    with child_process(_client_main, *args) as (conn, _):
        kind, url = receive(conn, 300, f"{mode}: warm-up")
        assert kind == "ready"
        stop = threading.Event()
        box = ModeRun(mode, [], None)
        thread = None
        if mode == "scrape":
            thread = threading.Thread(target=scraper, args=(url, stop, box), daemon=True)
            thread.start()
        kind, run = receive(conn, 600, f"{mode}: waves")
        stop.set()
        if thread is not None:
            thread.join(60)
        run.scrapes_ms, run.scrape_bytes, run.series = box.scrapes_ms, box.scrape_bytes, box.series
        assert isinstance(run, ModeRun)
        return run


def fmt(v: float | None) -> str:
    return "       -" if v is None else f"{v:8.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--targets", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=100, help="probes at once, timed waves")
    ap.add_argument("--waves", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=2, help="rounds of all modes (noise)")
    ap.add_argument("--metrics-cpu", choices=["any", "client", "sim"], default="any")
    args = ap.parse_args()
    params = Params(
        ttft_ms=200.0, ttft_sigma=0.05, tps=20.0, output_tokens=24, input_tokens=100, waves={}
    )
    print(
        f"{args.targets} targets; timed: {args.waves} waves of {args.concurrency} at once per mode "
        f"(~{params.stream_s:.2f} s per stream); metrics process on: {args.metrics_cpu}; "
        f"{args.repeats} rounds of {', '.join(MODES)}\n"
    )
    print(
        f"{'round':>5} {'mode':<7} {'done':>11} {'TTFT err p50':>12} {'p90':>8} {'p99':>8}"
        f" {'waited':>7} {'m. CPU':>6}  {'scrapes':>7} {'scrape ms p50':>13} {'max':>7}"
        f" {'MB':>5} {'samples':>8}"
    )
    runs: dict[str, list[ModeRun]] = {m: [] for m in MODES}
    with simulator(bench_farm(params), SIM_CPU) as (base_url, _):
        for rnd in range(args.repeats):
            for mode in MODES:
                r = run_mode(
                    base_url,
                    params,
                    args.targets,
                    args.concurrency,
                    args.waves,
                    mode,
                    args.metrics_cpu,
                )
                s = sorted(r.scrapes_ms)
                scrape = (
                    f"{len(s):>7} {percentile(s, 50):>13.0f} {s[-1]:>7.0f} "
                    f"{r.scrape_bytes / 1e6:>5.1f} {r.series:>8}"
                    if s
                    else f"{'-':>7}"
                )
                runs[mode].append(r)
                waited = "-" if r.waited_ms is None else f"{r.waited_ms:.0f}"
                mcpu = "-" if r.metrics_cpu_s is None else f"{r.metrics_cpu_s:.1f}"
                print(
                    f"{rnd + 1:>5} {mode:<7} {len(r.done):>5}/{len(r.samples):<5} "
                    f"{fmt(r.ttft(50)):>12} {fmt(r.ttft(90))} {fmt(r.ttft(99))}"
                    f" {waited:>7} {mcpu:>6}  {scrape}",
                    flush=True,
                )
    print(f"\nmedian over {args.repeats} rounds (TTFT error, ms):")
    for mode, rs in runs.items():
        cells = []
        for p in (50, 90, 99):
            values = sorted(v for v in (r.ttft(p) for r in rs) if v is not None)
            cells.append(f"p{p} {percentile(values, 50):7.3f}" if values else f"p{p} -")
        print(f"  {mode:<7} " + "  ".join(cells))
    print(
        "\nwaited: ms the client was runnable while its CPU ran something else (other load);"
        "\nm. CPU: CPU seconds the metrics process used during the timed waves."
    )


if __name__ == "__main__":
    main()
