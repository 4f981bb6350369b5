"""Probe accuracy: provmon's measured TTFT and decode speed against what the simulator really sent.

The simulator runs in its own process and stamps every data chunk with `x_sent_ns`
(`time.monotonic_ns()` right before the write: CLOCK_MONOTONIC, which `perf_counter_ns` reads
too on Linux, so the stamps compare across processes). At 1, 100 and 1,000 concurrent streams
our `Prober`, then a baseline client on the official `openai` SDK, each in a fresh process holding
only its own imports, probe that simulator. Per level and client it prints:

- TTFT error = measured ttft_ms − true TTFT, true TTFT = first token's x_sent_ns − t0: how much
  later than the bytes were sent the client stamped them (median, p99);
- decode_tps relative error = |measured − true| / true, true = (tokens − 1) / (last x_sent_ns −
  first x_sent_ns) (median, p99);
- probes/s; the client's CPU share, its full (gen-2) garbage collections, and how long each
  process waited for a CPU another process held (load from outside the benchmark); how late the
  simulator wrote first tokens against its plan (from `/_sim/truth`; not part of the error).

The stream is chosen so that 1,000 of them fit one core per side: 20 tokens/s of one token per
chunk is 20,000 events/s for each of the simulator and the client at 1,000 streams.

Targets (issue): at 100 streams TTFT error median ≤ 1 ms, p99 ≤ 5 ms, decode_tps error ≤ 2 %; at
1,000 streams every probe completes and p99 TTFT error ≤ 25 ms; ours no worse than the SDK's.
With two cores the simulator gets CPU 1 and the clients CPU 0. Only 127.0.0.1 is contacted;
every child process is killed on exit, also on error.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING

from bench_procs import Control, child_process, pin, receive, runq_wait_ns, simulator, waited_ms

from monitor.config import Workload, parse_config
from monitor.probing.prompts import build_prompt, new_nonce
from monitor.stats import percentile

if TYPE_CHECKING:
    import aiohttp
    import openai

    from monitor.simulator import Farm

MODEL = "bench/accuracy-1"
SLUG = "bench"
API_KEY = "sk-bench-local-0123456789"
SERVER_CPU, CLIENT_CPU = 1, 0
NS_PER_MS = 1_000_000
CLIENTS = ("ours", "sdk")
RUN_TIMEOUT_S = 300.0

# Targets from the issue.
TTFT_MEDIAN_MS_AT_100 = 1.0
TTFT_P99_MS_AT_100 = 5.0
DECODE_REL_AT_100 = 0.02
TTFT_P99_MS_AT_1000 = 25.0


@dataclass(frozen=True, slots=True)
class Params:
    """The stream every probe gets, and how many probes each level runs."""

    ttft_ms: float
    ttft_sigma: float
    tps: float
    output_tokens: int
    input_tokens: int
    waves: dict[int, int]  # concurrency -> number of waves of that many concurrent probes

    @property
    def stream_s(self) -> float:
        return self.ttft_ms / 1000 + (self.output_tokens - 1) / self.tps

    def workload(self) -> Workload:
        return Workload(name="bench", input_tokens=self.input_tokens, max_tokens=self.output_tokens)


@dataclass(frozen=True, slots=True)
class Sample:
    """One probe: whether it completed as planned, and its two errors when it did."""

    complete: bool
    ttft_err_ms: float | None = None
    decode_rel_err: float | None = None
    why: str = ""


@dataclass(slots=True)
class ClientRun:
    """What one client process measured at one level."""

    samples: list[Sample]
    elapsed_s: float
    cpu_s: float
    full_gc_ms: list[float]  # CPU time of each gen-2 collection during the run
    runq_wait_ms: float | None  # runnable but not running: the CPU was taken by another process


@dataclass(slots=True)
class LevelRun:
    level: int
    client: str
    run: ClientRun
    sim_lag_p99_ms: float | None = None
    sim_runq_wait_ms: float | None = None
    completed: list[Sample] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.completed = [s for s in self.run.samples if s.complete]

    def ttft_ms(self, p: float) -> float | None:
        values = sorted(s.ttft_err_ms for s in self.completed if s.ttft_err_ms is not None)
        return percentile(values, p) if values else None

    def decode_pct(self, p: float) -> float | None:
        values = sorted(s.decode_rel_err for s in self.completed if s.decode_rel_err is not None)
        return percentile(values, p) * 100 if values else None


def bench_farm(params: Params) -> Farm:
    """One provider streaming exactly as `params` say, stamping each chunk's send time."""
    from monitor.simulator import Farm, ProviderProfile, ServedModel

    profile = ProviderProfile(
        "Bench",
        SLUG,
        (ServedModel(MODEL),),
        ttft_ms=params.ttft_ms,
        ttft_sigma=params.ttft_sigma,
        tps=params.tps,
        tokens_per_chunk=1,
        output_tokens=params.output_tokens,
    )
    return Farm((profile,), seed=1, api_key=API_KEY, stamp_send_time=True)


# --- the two clients ---------------------------------------------------------------------------


def true_decode_tps(tokens: int, first_ns: int, last_ns: int) -> float | None:
    if tokens < 2 or last_ns <= first_ns:
        return None
    return (tokens - 1) * 1e9 / (last_ns - first_ns)


def errors(
    tokens: int,
    measured_ttft_ms: float,
    measured_tps: float | None,
    t0_ns: int,
    first_sent_ns: int,
    last_sent_ns: int,
) -> Sample:
    """Both errors of one complete probe, from what it reported and what was sent."""
    true_ttft_ms = (first_sent_ns - t0_ns) / NS_PER_MS
    true_tps = true_decode_tps(tokens, first_sent_ns, last_sent_ns)
    decode_err = None
    if true_tps is not None and measured_tps is not None:
        decode_err = abs(measured_tps - true_tps) / true_tps
    return Sample(True, measured_ttft_ms - true_ttft_ms, decode_err)


def make_ours(
    base_url: str, session: aiohttp.ClientSession, params: Params
) -> Callable[[], Awaitable[Sample]]:
    """provmon's Prober; the measurement is its ProbeResult, the trace only gives the truth."""
    from monitor.probing.client import Prober, ProbeTrace
    from monitor.results import Outcome

    doc = {
        "vantage": "bench",
        "timeouts": {"connect_s": 60, "first_token_s": 90, "idle_s": 60, "total_s": 150},
        "workloads": {
            "bench": {"input_tokens": params.input_tokens, "max_tokens": params.output_tokens}
        },
        "targets": [
            {
                "route": "direct",
                "model": MODEL,
                "provider": SLUG,
                "base_url": f"{base_url}/{SLUG}/v1",
                "api_key_env": "BENCH_KEY",
                "workloads": ["bench"],
            }
        ],
    }
    cfg = parse_config(doc, {"BENCH_KEY": API_KEY}, source="<bench>")
    prober = Prober(session, timeouts=cfg.timeouts, vantage=cfg.vantage, gates=None)
    target, workload = cfg.targets[0], cfg.workloads["bench"]

    async def one() -> Sample:
        trace = ProbeTrace()
        result = await prober.probe(target, workload, trace=trace)
        n = result.output_tokens
        if result.outcome is not Outcome.OK or result.ttft_ms is None:
            return Sample(False, why=f"{result.outcome.value} {result.error_kind}")
        sent = [s for _, s in trace.tokens]
        first, last = sent[0], sent[-1]
        if n != params.output_tokens or len(sent) != n or first is None or last is None:
            return Sample(False, why=f"tokens {n}, events {len(sent)}")
        return errors(n, result.ttft_ms, result.decode_tps, trace.t0_ns, first, last)

    return one


def make_sdk(client: openai.AsyncOpenAI, params: Params) -> Callable[[], Awaitable[Sample]]:
    """The openai SDK, stamped before `create` and as each chunk is yielded."""
    import httpx2
    import openai

    workload = params.workload()

    async def one() -> Sample:
        stamps: list[tuple[int, int | None]] = []
        tokens: int | None = None
        try:
            t0 = time.perf_counter_ns()
            stream = await client.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": build_prompt(workload, new_nonce())}],
                max_tokens=params.output_tokens,
                temperature=0,
                stream=True,
                stream_options={"include_usage": True},
            )
            async for chunk in stream:
                t = time.perf_counter_ns()
                if chunk.choices and chunk.choices[0].delta.content:
                    stamps.append((t, (chunk.model_extra or {}).get("x_sent_ns")))
                if chunk.usage is not None:
                    tokens = chunk.usage.completion_tokens
        except (openai.APIError, httpx2.HTTPError, OSError) as exc:
            cause = f" ({type(exc.__cause__).__name__})" if exc.__cause__ is not None else ""
            return Sample(False, why=type(exc).__name__ + cause)
        if tokens != params.output_tokens or len(stamps) != tokens:
            return Sample(False, why=f"tokens {tokens}, events {len(stamps)}")
        first_sent, last_sent = stamps[0][1], stamps[-1][1]
        if first_sent is None or last_sent is None:
            return Sample(False, why="no x_sent_ns")
        ttft_ms = (stamps[0][0] - t0) / NS_PER_MS
        tps = true_decode_tps(tokens, stamps[0][0], stamps[-1][0])
        return errors(tokens, ttft_ms, tps, t0, first_sent, last_sent)

    return one


async def run_waves(probe: Callable[[], Awaitable[Sample]], level: int, waves: int) -> ClientRun:
    """One warm-up probe, then `waves` rounds of `level` concurrent probes, timed."""
    full_gc_ms: list[float] = []
    started: list[int] = []

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            started.append(time.thread_time_ns())
        elif started:
            full_gc_ms.append((time.thread_time_ns() - started.pop()) / NS_PER_MS)

    await probe()
    samples: list[Sample] = []
    gc.callbacks.append(on_gc)
    start, cpu_start, runq_start = time.perf_counter(), time.process_time(), runq_wait_ns()
    try:
        for _ in range(waves):
            samples += await asyncio.gather(*(probe() for _ in range(level)))
    finally:
        gc.callbacks.remove(on_gc)
    elapsed_s, cpu_s = time.perf_counter() - start, time.process_time() - cpu_start
    return ClientRun(samples, elapsed_s, cpu_s, full_gc_ms, waited_ms(runq_start, runq_wait_ns()))


async def run_ours(base_url: str, params: Params, level: int, waves: int) -> ClientRun:
    from monitor.probing.http import client_session

    async with client_session() as session:
        return await run_waves(make_ours(base_url, session, params), level, waves)


async def run_sdk(base_url: str, params: Params, level: int, waves: int) -> ClientRun:
    import httpx2
    import openai

    limits = httpx2.Limits(max_connections=None, max_keepalive_connections=None)
    timeout = httpx2.Timeout(150.0, connect=60.0)
    async with httpx2.AsyncClient(limits=limits, timeout=timeout, trust_env=False) as http:
        client = openai.AsyncOpenAI(
            base_url=f"{base_url}/{SLUG}/v1", api_key=API_KEY, max_retries=0, http_client=http
        )
        return await run_waves(make_sdk(client, params), level, waves)


def _client_main(
    conn: Connection, client: str, base_url: str, params: Params, level: int, waves: int
) -> None:
    """Child process: one client at one level; sends back its ClientRun."""
    pin(CLIENT_CPU)
    run = run_ours if client == "ours" else run_sdk
    conn.send(asyncio.run(run(base_url, params, level, waves)))


def run_client(client: str, base_url: str, params: Params, level: int, waves: int) -> ClientRun:
    with child_process(_client_main, client, base_url, params, level, waves) as (conn, _):
        run: ClientRun = receive(conn, RUN_TIMEOUT_S, f"{client} at {level} streams")
        return run


# --- report ------------------------------------------------------------------------------------


def fmt(value: float | None, width: int = 8, digits: int = 3) -> str:
    return "-".rjust(width) if value is None else f"{value:{width}.{digits}f}"


HEADER = (
    f"{'level':>5}  {'client':<6} {'done':>9}  {'TTFT err ms':>17}  {'decode err %':>17}  "
    f"{'probes/s':>8}  {'client':>6} {'full GC':>9} {'waited':>6}  {'sim':>6} {'sim':>6}"
)
SUBHEADER = (
    f"{'':>5}  {'':<6} {'':>9}  {'p50':>8} {'p99':>8}  {'p50':>8} {'p99':>8}  {'':>8}  "
    f"{'CPU %':>6} {'n×max ms':>9} {'ms':>6}  {'lag ms':>6} {'waited':>6}"
)
LEGEND = """\
client CPU %: the client's CPU time over the run's wall time. full GC: gen-2 collections in
the client during the run, and the longest one's CPU time. waited: time the process was runnable
but another process had its CPU (/proc schedstat; other load on the machine). sim lag: p99 of
how late the simulator wrote first tokens against its plan (not part of the error: x_sent_ns is
stamped at the write)."""


def row(r: LevelRun) -> str:
    run = r.run
    done = f"{len(r.completed)}/{len(run.samples)}"
    rate = len(r.completed) / run.elapsed_s if run.elapsed_s > 0 else 0.0
    cpu_pct = 100 * run.cpu_s / run.elapsed_s if run.elapsed_s > 0 else 0.0
    gcs = f"{len(run.full_gc_ms)}×{max(run.full_gc_ms):.0f}" if run.full_gc_ms else "0"
    return (
        f"{r.level:>5}  {r.client:<6} {done:>9}  {fmt(r.ttft_ms(50))} {fmt(r.ttft_ms(99))}  "
        f"{fmt(r.decode_pct(50))} {fmt(r.decode_pct(99))}  {rate:>8.1f}  {cpu_pct:>6.0f} "
        f"{gcs:>9} {fmt(run.runq_wait_ms, 6, 0)}  {fmt(r.sim_lag_p99_ms, 6, 1)} "
        f"{fmt(r.sim_runq_wait_ms, 6, 0)}"
    )


def failures(r: LevelRun) -> str:
    reasons: dict[str, int] = {}
    for s in r.run.samples:
        if not s.complete:
            reasons[s.why] = reasons.get(s.why, 0) + 1
    return ", ".join(f"{why} ×{n}" for why, n in sorted(reasons.items()))


def verdict(ok: bool, text: str) -> str:
    return f"  {'ok    ' if ok else 'MISSED'}  {text}"


def bound(label: str, value: float | None, limit: float, unit: str) -> str:
    shown = "n/a" if value is None else f"{value:.3f}{unit}"
    return verdict(value is not None and value <= limit, f"{label}: {shown} (≤ {limit:g}{unit})")


def verdicts(runs: dict[tuple[int, str], LevelRun]) -> list[str]:
    lines: list[str] = []
    at_100, at_1000 = runs.get((100, "ours")), runs.get((1000, "ours"))
    if at_100 is not None:
        checks = [
            ("TTFT error median", at_100.ttft_ms(50), TTFT_MEDIAN_MS_AT_100, " ms"),
            ("TTFT error p99", at_100.ttft_ms(99), TTFT_P99_MS_AT_100, " ms"),
            ("decode_tps error p99", at_100.decode_pct(99), DECODE_REL_AT_100 * 100, " %"),
        ]
        lines += [bound(f"100 streams, {name}", v, lim, unit) for name, v, lim, unit in checks]
    if at_1000 is not None:
        done, started = len(at_1000.completed), len(at_1000.run.samples)
        text = f"1000 streams, all probes complete: {done}/{started}"
        lines.append(verdict(done == started, text))
        p99 = at_1000.ttft_ms(99)
        lines.append(bound("1000 streams, TTFT error p99", p99, TTFT_P99_MS_AT_1000, " ms"))
    for level in sorted({lv for lv, _ in runs}):
        ours, sdk = runs.get((level, "ours")), runs.get((level, "sdk"))
        if ours is None or sdk is None:
            continue
        pairs = [
            ("TTFT error p50", ours.ttft_ms(50), sdk.ttft_ms(50), " ms"),
            ("TTFT error p99", ours.ttft_ms(99), sdk.ttft_ms(99), " ms"),
            ("decode_tps error p99", ours.decode_pct(99), sdk.decode_pct(99), " %"),
        ]
        for name, mine, theirs, unit in pairs:
            if mine is None or theirs is None:
                lines.append(verdict(mine is not None, f"{level} streams, {name}: no SDK figure"))
                continue
            text = f"{level} streams, {name} ours ≤ SDK: {mine:.3f}{unit} vs {theirs:.3f}{unit}"
            lines.append(verdict(abs(mine) <= abs(theirs), text))
    return lines


def parse_args() -> Params:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--ttft-ms", type=float, default=200.0)
    ap.add_argument("--ttft-sigma", type=float, default=0.05)
    ap.add_argument("--tps", type=float, default=20.0)
    ap.add_argument("--output-tokens", type=int, default=24)
    ap.add_argument("--input-tokens", type=int, default=100)
    ap.add_argument("--sequential", type=int, default=50, help="probes at level 1")
    ap.add_argument("--waves-100", type=int, default=3)
    ap.add_argument("--waves-1000", type=int, default=1)
    ap.add_argument("--levels", default="1,100,1000")
    args = ap.parse_args()
    waves = {1: args.sequential, 100: args.waves_100, 1000: args.waves_1000}
    return Params(
        ttft_ms=args.ttft_ms,
        ttft_sigma=args.ttft_sigma,
        tps=args.tps,
        output_tokens=args.output_tokens,
        input_tokens=args.input_tokens,
        waves={lv: waves.get(lv, 1) for lv in (int(x) for x in args.levels.split(","))},
    )


def main() -> None:
    params = parse_args()
    import httpx2
    import openai

    print(
        f"stream: TTFT {params.ttft_ms:g} ms (lognormal sigma {params.ttft_sigma:g}), "
        f"{params.tps:g} tokens/s, 1 token per chunk, {params.output_tokens} output tokens, "
        f"~{params.input_tokens} input tokens: ~{params.stream_s:.2f} s per stream"
    )
    levels = ", ".join(f"{lv} × {w}" for lv, w in params.waves.items())
    print(
        f"levels (streams × waves): {levels}; ours, then the openai SDK {openai.__version__} "
        f"(httpx2 {httpx2.__version__}), each in a fresh process after one warm-up probe"
    )
    cpus = f"simulator on CPU {SERVER_CPU}, clients on CPU {CLIENT_CPU}"
    print(f"{cpus if (os.cpu_count() or 1) >= 2 else 'one CPU, unpinned'}\n", flush=True)
    start = time.perf_counter()
    runs: dict[tuple[int, str], LevelRun] = {}
    with simulator(bench_farm(params), SERVER_CPU) as (base_url, sim_pid):
        control = Control(base_url)
        print(HEADER)
        print(SUBHEADER, flush=True)
        for level, waves in params.waves.items():
            for client in CLIENTS:
                control.reset()
                sim_before = runq_wait_ns(sim_pid)
                r = LevelRun(level, client, run_client(client, base_url, params, level, waves))
                r.sim_runq_wait_ms = waited_ms(sim_before, runq_wait_ns(sim_pid))
                lags = sorted(control.first_token_lags_ms())
                r.sim_lag_p99_ms = percentile(lags, 99) if lags else None
                runs[level, client] = r
                print(row(r), flush=True)
                if len(r.completed) < len(r.run.samples):
                    print(f"{'':>14}incomplete: {failures(r)}", flush=True)
    print(f"\n{LEGEND}\n\nverdicts (ours):")
    for line in verdicts(runs):
        print(line)
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
