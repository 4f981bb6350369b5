"""Probe accuracy: provmon's measured TTFT and decode speed against what the simulator really sent.

The simulator runs in its own process and stamps every data chunk with `x_sent_ns`
(`time.monotonic_ns()` right before the write: CLOCK_MONOTONIC, which `perf_counter_ns` reads
too on Linux, so the stamps compare across processes). At 1, 100 and 1,000 concurrent streams
our `Prober`, then two baselines (a plain aiohttp client, the official `openai` SDK), each in a
fresh process holding only its own imports, probe that simulator, in three modes:

- plain: nothing else going on;
- hostile: one hostile neighbour streams alongside, read by the same client library (a gzip bomb
  and 1 MiB-event streams from tests/hostile.py, served from another process, one after another);
- pipe: the client's stdout is a pipe nobody reads for the first 10 s, and each result is
  written to it as a JSON line (ours through provmon's writer thread, the baselines with print).

Per mode, level and client it prints:

- TTFT error = measured ttft_ms − true TTFT, true TTFT = first token's x_sent_ns − t0: how much
  later than the bytes were sent the client stamped them (median, p99);
- decode_tps relative error = |measured − true| / true, true = (tokens − 1) / (last x_sent_ns −
  first x_sent_ns) (median, p99);
- probes/s; the client's CPU share, its full (gen-2) garbage collections, and how long each
  process waited for a CPU another process held (load from outside the benchmark); how late the
  simulator wrote first tokens against its plan (from `/_sim/truth`; not part of the error).

The stream is 20 tokens/s of one token per chunk. At 1,000 streams each gets 5 tokens/s
(`--many-tps`) and their starts are spread over 2 s (`--many-ramp-s`), as the daemon's jitter
spreads its probes: 5,000 events/s is what one core of the 2-core machine serves from the
simulator. At 20 tokens/s, all started at once (`--many-tps 20 --many-ramp-s 0`), the
simulator writes its first tokens up to 0.9 s late and every client's loop is saturated: a
stress figure, not the measure of the clients.

`--busy-neighbour` adds a process that spins on the clients' CPU all along (a machine with no
CPU to spare): the client gets about half a core, and its loop falls behind the packets.

Targets (issue 9), in every mode: at 100 streams TTFT error median ≤ 1 ms, p99 ≤ 5 ms,
decode_tps error ≤ 2 %; at 1,000 streams every probe completes (no false timeout) and p99 TTFT
error ≤ 15 ms. Ours' TTFT starts when the request was written (the connection phases are
measured apart); the baselines' before the request, as they see it.
With two cores the simulator gets CPU 1 and the clients CPU 0. Only 127.0.0.1 is contacted;
every child process is killed on exit, also on error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.hostile, from a checkout

from baselines import (
    Stamps,
    aiohttp_reader,
    hostile_loop,
    make_aiohttp,
    make_sdk,
    print_line,
    sdk_reader,
)
from bench_procs import (
    Control,
    child_process,
    cpu_hog,
    pin,
    receive,
    runq_wait_ns,
    simulator,
    waited_ms,
)

from monitor.config import Workload, parse_config
from monitor.probing.prompts import build_prompt, new_nonce
from monitor.stats import percentile

if TYPE_CHECKING:
    import aiohttp

    from monitor.output import LineWriter
    from monitor.simulator import Farm

MODEL = "bench/accuracy-1"
SLUG = "bench"
SLUG_MANY = "bench-many"
MANY = 1000
"""From this level on, probes get the `many_tps` stream, their starts spread over `many_ramp_s`."""
API_KEY = "sk-bench-local-0123456789"
SERVER_CPU, CLIENT_CPU = 1, 0
NS_PER_MS = 1_000_000
CLIENTS = ("ours", "aiohttp", "sdk")
MODES = ("plain", "hostile", "pipe")
HOSTILE = ("gzip-bomb", "big-chunks")
PIPE_UNREAD_S = 10.0
TIMEOUTS = {"connect_s": 60, "first_token_s": 10, "idle_s": 2, "total_s": 60}
"""Every client's deadlines: an idle gap of 2 s is a (false) timeout, as a monitor would see it."""
RUN_TIMEOUT_S = 300.0

# Targets from the issue.
TTFT_MEDIAN_MS_AT_100 = 1.0
TTFT_P99_MS_AT_100 = 5.0
DECODE_REL_AT_100 = 0.02
TTFT_P99_MS_AT_1000 = 15.0


@dataclass(frozen=True, slots=True)
class Params:
    """The stream every probe gets, and how many probes each level runs."""

    ttft_ms: float
    ttft_sigma: float
    tps: float
    output_tokens: int
    input_tokens: int
    waves: dict[int, int]  # concurrency -> number of waves of that many concurrent probes
    many_tps: float | None = None  # the stream at MANY streams and more (None: `tps`)
    many_ramp_s: float = 0.0  # their starts spread evenly over this long
    busy_neighbour: bool = False  # a process spinning on the clients' CPU

    @property
    def stream_s(self) -> float:
        return self.ttft_ms / 1000 + (self.output_tokens - 1) / self.tps

    def tps_at(self, level: int) -> float:
        return self.many_tps if level >= MANY and self.many_tps is not None else self.tps

    def slug(self, level: int) -> str:
        return SLUG_MANY if level >= MANY and self.many_tps is not None else SLUG

    def ramp_s(self, level: int) -> float:
        return self.many_ramp_s if level >= MANY else 0.0

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
    neighbour_streams: int = 0  # hostile streams read alongside (hostile mode)


@dataclass(slots=True)
class LevelRun:
    level: int
    client: str
    run: ClientRun
    mode: str = "plain"
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

    def profile(name: str, slug: str, tps: float) -> ProviderProfile:
        return ProviderProfile(
            name,
            slug,
            (ServedModel(MODEL),),
            ttft_ms=params.ttft_ms,
            ttft_sigma=params.ttft_sigma,
            tps=tps,
            tokens_per_chunk=1,
            output_tokens=params.output_tokens,
        )

    profiles = [profile("Bench", SLUG, params.tps)]
    if params.many_tps is not None:
        profiles.append(profile("Bench many", SLUG_MANY, params.many_tps))
    return Farm(tuple(profiles), seed=1, api_key=API_KEY, stamp_send_time=True)


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
    base_url: str,
    session: aiohttp.ClientSession,
    params: Params,
    writer: LineWriter | None,
    slug: str = SLUG,
) -> Callable[[], Awaitable[Sample]]:
    """provmon's Prober; the measurement is its ProbeResult, the trace only gives the truth.
    With `writer`, each result goes out as a JSON line, as `provmon probe --json` writes it."""
    import json

    from monitor.probing.client import Prober, ProbeTrace
    from monitor.results import Outcome

    doc = {
        "vantage": "bench",
        "timeouts": TIMEOUTS,
        "workloads": {
            "bench": {"input_tokens": params.input_tokens, "max_tokens": params.output_tokens}
        },
        "targets": [
            {
                "route": "direct",
                "model": MODEL,
                "provider": slug,
                "base_url": f"{base_url}/{slug}/v1",
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
        if writer is not None:
            writer.write(json.dumps(result.to_json()))
        n = result.output_tokens
        if result.outcome is not Outcome.OK or result.ttft_ms is None:
            return Sample(False, why=f"{result.outcome.value} {result.error_kind}")
        sent = [s for _, s in trace.tokens]
        first, last = sent[0], sent[-1]
        if n != params.output_tokens or len(sent) != n or first is None or last is None:
            return Sample(False, why=f"tokens {n}, events {len(sent)}")
        return errors(n, result.ttft_ms, result.decode_tps, trace.t0_ns, first, last)

    return one


def from_stamps(st: Stamps, expected_tokens: int) -> Sample:
    """A baseline's sample from its stamps."""
    if st.why:
        return Sample(False, why=st.why)
    if st.tokens != expected_tokens or len(st.chunks) != st.tokens:
        return Sample(False, why=f"tokens {st.tokens}, events {len(st.chunks)}")
    first_sent, last_sent = st.chunks[0][1], st.chunks[-1][1]
    if first_sent is None or last_sent is None:
        return Sample(False, why="no x_sent_ns")
    ttft_ms = (st.chunks[0][0] - st.t0_ns) / NS_PER_MS
    tps = true_decode_tps(st.tokens, st.chunks[0][0], st.chunks[-1][0])
    return errors(st.tokens, ttft_ms, tps, st.t0_ns, first_sent, last_sent)


def baseline_probe(
    one: Callable[[str], Awaitable[Stamps]], params: Params, pipe: bool
) -> Callable[[], Awaitable[Sample]]:
    workload = params.workload()

    async def probe() -> Sample:
        stamps = await one(build_prompt(workload, new_nonce()))
        sample = from_stamps(stamps, params.output_tokens)
        if pipe:  # about the size of provmon's JSON line
            print_line({"sample": repr(sample), "arrivals_ns": [t for t, _ in stamps.chunks]})
        return sample

    return probe


async def run_waves(
    probe: Callable[[], Awaitable[Sample]],
    level: int,
    waves: int,
    neighbour: Callable[[asyncio.Event, list[int]], Awaitable[None]] | None = None,
    ramp_s: float = 0.0,
) -> ClientRun:
    """One warm-up probe, then `waves` rounds of `level` concurrent probes, timed (with the
    hostile neighbour streaming all along, when given); a round's starts spread evenly over
    `ramp_s`, as a daemon's jitter spreads its probes."""
    full_gc_ms: list[float] = []
    started: list[int] = []

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            started.append(time.thread_time_ns())
        elif started:
            full_gc_ms.append((time.thread_time_ns() - started.pop()) / NS_PER_MS)

    async def ramped(i: int) -> Sample:
        if ramp_s > 0:
            await asyncio.sleep(ramp_s * i / level)
        return await probe()

    await probe()
    stop = asyncio.Event()
    streamed = [0]
    hostile = asyncio.create_task(neighbour(stop, streamed)) if neighbour is not None else None
    if hostile is not None:
        await asyncio.sleep(0.5)  # the hostile stream is flowing
    samples: list[Sample] = []
    gc.callbacks.append(on_gc)
    start, cpu_start, runq_start = time.perf_counter(), time.process_time(), runq_wait_ns()
    try:
        for _ in range(waves):
            samples += await asyncio.gather(*(ramped(i) for i in range(level)))
    finally:
        gc.callbacks.remove(on_gc)
        stop.set()
    elapsed_s, cpu_s = time.perf_counter() - start, time.process_time() - cpu_start
    if hostile is not None:
        hostile.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await hostile
    run = ClientRun(samples, elapsed_s, cpu_s, full_gc_ms, waited_ms(runq_start, runq_wait_ns()))
    run.neighbour_streams = streamed[0]
    return run


async def run_ours(
    base_url: str, params: Params, level: int, waves: int, mode: str, hostile_url: str
) -> ClientRun:
    from monitor import heap
    from monitor.output import LineWriter
    from monitor.probing.session import probe_session

    writer = LineWriter(sys.stdout).start() if mode == "pipe" else None
    async with probe_session() as session:
        measure = make_ours(base_url, session, params, writer, params.slug(level))
        heap.freeze()  # as `provmon probe` and the daemon do once started
        neighbour = None
        if mode == "hostile":
            neighbour = ours_neighbour(session, hostile_url)
        run = await run_waves(measure, level, waves, neighbour, params.ramp_s(level))
    if writer is not None:
        writer.close(timeout_s=0)  # nobody may be reading yet: leave the rest queued
    return run


def ours_neighbour(
    session: aiohttp.ClientSession, hostile_url: str
) -> Callable[[asyncio.Event, list[int]], Awaitable[None]]:
    from monitor.probing.client import Prober

    doc = {
        "timeouts": {"connect_s": 10, "first_token_s": 20, "idle_s": 20, "total_s": 20},
        "workloads": {"w": {"input_tokens": 20, "max_tokens": 20}},
        "targets": [
            {"route": "direct", "model": "m", "provider": n, "base_url": f"{hostile_url}/{n}/v1"}
            for n in HOSTILE
        ],
    }
    cfg = parse_config(doc, {}, source="<bench hostile>")
    prober = Prober(session, timeouts=cfg.timeouts, vantage="bench", settings=cfg.probe)
    by_url = {t.base_url: t for t in cfg.targets}

    async def read(url: str) -> object:
        return await prober.probe(by_url[url], cfg.workloads["w"])

    async def loop(stop: asyncio.Event, done: list[int]) -> None:
        await hostile_loop(read, list(by_url), stop, done)

    return loop


async def run_aiohttp(
    base_url: str, params: Params, level: int, waves: int, mode: str, hostile_url: str
) -> ClientRun:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(
        total=TIMEOUTS["total_s"], sock_connect=TIMEOUTS["connect_s"], sock_read=TIMEOUTS["idle_s"]
    )
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        url = f"{base_url}/{params.slug(level)}/v1/chat/completions"
        one = make_aiohttp(session, url, API_KEY, MODEL, params.output_tokens)
        neighbour = None
        if mode == "hostile":
            read = aiohttp_reader(session)
            urls = [f"{hostile_url}/{n}/v1/chat/completions" for n in HOSTILE]

            async def neighbour(stop: asyncio.Event, done: list[int]) -> None:
                await hostile_loop(read, urls, stop, done)

        probe = baseline_probe(one, params, mode == "pipe")
        return await run_waves(probe, level, waves, neighbour, params.ramp_s(level))


async def run_sdk(
    base_url: str, params: Params, level: int, waves: int, mode: str, hostile_url: str
) -> ClientRun:
    import httpx2
    import openai

    limits = httpx2.Limits(max_connections=None, max_keepalive_connections=None)
    timeout = httpx2.Timeout(TIMEOUTS["idle_s"], connect=TIMEOUTS["connect_s"])
    async with httpx2.AsyncClient(limits=limits, timeout=timeout, trust_env=False) as http:
        client = openai.AsyncOpenAI(
            base_url=f"{base_url}/{params.slug(level)}/v1",
            api_key=API_KEY,
            max_retries=0,
            http_client=http,
        )
        one = make_sdk(client, MODEL, params.output_tokens)
        neighbour = None
        if mode == "hostile":
            clients = {
                url: openai.AsyncOpenAI(base_url=url, api_key="x", max_retries=0, http_client=http)
                for url in (f"{hostile_url}/{n}/v1" for n in HOSTILE)
            }
            read = sdk_reader(clients.__getitem__)

            async def neighbour(stop: asyncio.Event, done: list[int]) -> None:
                await hostile_loop(read, list(clients), stop, done)

        probe = baseline_probe(one, params, mode == "pipe")
        return await run_waves(probe, level, waves, neighbour, params.ramp_s(level))


RUNNERS = {"ours": run_ours, "aiohttp": run_aiohttp, "sdk": run_sdk}


def unread_stdout(after_s: float) -> None:
    """Make stdout a pipe that nobody reads for `after_s`, then is drained (and discarded)."""
    r, w = os.pipe()
    os.dup2(w, 1)
    os.close(w)

    def drain() -> None:
        time.sleep(after_s)
        while os.read(r, 1 << 16):
            pass

    threading.Thread(target=drain, daemon=True).start()


def _client_main(
    conn: Connection,
    client: str,
    mode: str,
    base_url: str,
    hostile_url: str,
    params: Params,
    level: int,
    waves: int,
) -> None:
    """Child process: one client at one level in one mode; sends back its ClientRun."""
    pin(CLIENT_CPU)
    if mode == "pipe":
        unread_stdout(PIPE_UNREAD_S)
    run = RUNNERS[client](base_url, params, level, waves, mode, hostile_url)
    conn.send(asyncio.run(run))


def run_client(
    client: str, mode: str, base_url: str, hostile_url: str, params: Params, level: int, waves: int
) -> ClientRun:
    args = (client, mode, base_url, hostile_url, params, level, waves)
    with child_process(_client_main, *args) as (conn, _):
        run: ClientRun = receive(conn, RUN_TIMEOUT_S, f"{client} at {level} streams ({mode})")
        return run


# --- report ------------------------------------------------------------------------------------


def fmt(value: float | None, width: int = 8, digits: int = 3) -> str:
    return "-".rjust(width) if value is None else f"{value:{width}.{digits}f}"


HEADER = (
    f"{'mode':<7} {'level':>5}  {'client':<7} {'done':>9}  {'TTFT err ms':>17}  "
    f"{'decode err %':>17}  {'probes/s':>8}  {'client':>6} {'full GC':>9} {'waited':>6}  "
    f"{'sim':>6} {'hostile':>7}"
)
SUBHEADER = (
    f"{'':<7} {'':>5}  {'':<7} {'':>9}  {'p50':>8} {'p99':>8}  {'p50':>8} {'p99':>8}  {'':>8}  "
    f"{'CPU %':>6} {'n×max ms':>9} {'ms':>6}  {'lag ms':>6} {'streams':>7}"
)
LEGEND = """\
client CPU %: the client's CPU time over the run's wall time. full GC: gen-2 collections in
the client during the run, and the longest one's CPU time. waited: time the process was runnable
but another process had its CPU (/proc schedstat; other load on the machine). sim lag: p99 of
how late the simulator wrote first tokens against its plan (not part of the error: x_sent_ns is
stamped at the write). hostile streams: hostile neighbour streams read during the run (they
alternate; one is in flight at any time)."""


def row(r: LevelRun) -> str:
    run = r.run
    done = f"{len(r.completed)}/{len(run.samples)}"
    rate = len(r.completed) / run.elapsed_s if run.elapsed_s > 0 else 0.0
    cpu_pct = 100 * run.cpu_s / run.elapsed_s if run.elapsed_s > 0 else 0.0
    gcs = f"{len(run.full_gc_ms)}×{max(run.full_gc_ms):.0f}" if run.full_gc_ms else "0"
    hostile = str(run.neighbour_streams) if r.mode == "hostile" else "-"
    return (
        f"{r.mode:<7} {r.level:>5}  {r.client:<7} {done:>9}  {fmt(r.ttft_ms(50))} "
        f"{fmt(r.ttft_ms(99))}  {fmt(r.decode_pct(50))} {fmt(r.decode_pct(99))}  {rate:>8.1f}  "
        f"{cpu_pct:>6.0f} {gcs:>9} {fmt(run.runq_wait_ms, 6, 0)}  {fmt(r.sim_lag_p99_ms, 6, 1)} "
        f"{hostile:>7}"
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


def verdicts(runs: dict[tuple[str, int, str], LevelRun]) -> list[str]:
    lines: list[str] = []
    for mode in MODES:
        at_100, at_1000 = runs.get((mode, 100, "ours")), runs.get((mode, 1000, "ours"))
        if at_100 is not None:
            checks = [
                ("TTFT error median", at_100.ttft_ms(50), TTFT_MEDIAN_MS_AT_100, " ms"),
                ("TTFT error p99", at_100.ttft_ms(99), TTFT_P99_MS_AT_100, " ms"),
                ("decode_tps error p99", at_100.decode_pct(99), DECODE_REL_AT_100 * 100, " %"),
            ]
            for name, v, lim, unit in checks:
                lines.append(bound(f"{mode}: 100 streams, {name}", v, lim, unit))
            done, started = len(at_100.completed), len(at_100.run.samples)
            text = f"{mode}: 100 streams, all probes complete: {done}/{started}"
            lines.append(verdict(done == started, text))
        if at_1000 is not None:
            done, started = len(at_1000.completed), len(at_1000.run.samples)
            text = f"{mode}: 1000 streams, all probes complete (no false timeout): {done}/{started}"
            lines.append(verdict(done == started, text))
            p99 = at_1000.ttft_ms(99)
            lines.append(
                bound(f"{mode}: 1000 streams, TTFT error p99", p99, TTFT_P99_MS_AT_1000, " ms")
            )
    return lines


def parse_args() -> tuple[Params, tuple[str, ...], tuple[str, ...]]:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--ttft-ms", type=float, default=200.0)
    ap.add_argument("--ttft-sigma", type=float, default=0.05)
    ap.add_argument("--tps", type=float, default=20.0)
    ap.add_argument(
        "--many-tps",
        type=float,
        default=5.0,
        help="tokens/s of each stream at 1,000 streams (5: what one core serves, see above)",
    )
    ap.add_argument(
        "--many-ramp-s",
        type=float,
        default=2.0,
        help="at 1,000 streams, spread the starts over this long (0: all at once)",
    )
    ap.add_argument("--output-tokens", type=int, default=24)
    ap.add_argument("--input-tokens", type=int, default=100)
    ap.add_argument("--sequential", type=int, default=30, help="probes at level 1 (plain)")
    ap.add_argument("--waves-100", type=int, default=3)
    ap.add_argument("--waves-1000", type=int, default=1)
    ap.add_argument("--levels", default="1,100,1000")
    ap.add_argument("--modes", default=",".join(MODES), help="plain, hostile, pipe")
    ap.add_argument("--clients", default=",".join(CLIENTS), help="ours, aiohttp, sdk")
    ap.add_argument(
        "--busy-neighbour",
        action="store_true",
        help="a process spins on the clients' CPU all along: a machine with no CPU to spare",
    )
    args = ap.parse_args()
    waves = {1: args.sequential, 100: args.waves_100, 1000: args.waves_1000}
    modes = tuple(m for m in args.modes.split(",") if m)
    clients = tuple(c for c in args.clients.split(",") if c)
    if set(modes) - set(MODES) or set(clients) - set(CLIENTS):
        ap.error(f"modes are {', '.join(MODES)}; clients are {', '.join(CLIENTS)}")
    params = Params(
        ttft_ms=args.ttft_ms,
        ttft_sigma=args.ttft_sigma,
        tps=args.tps,
        output_tokens=args.output_tokens,
        input_tokens=args.input_tokens,
        waves={lv: waves.get(lv, 1) for lv in (int(x) for x in args.levels.split(","))},
        many_tps=args.many_tps,
        many_ramp_s=args.many_ramp_s,
        busy_neighbour=args.busy_neighbour,
    )
    return params, modes, clients


def main() -> None:
    params, modes, clients = parse_args()
    import aiohttp
    import httpx2
    import openai

    from tests.hostile import hostile_process

    print(
        f"stream: TTFT {params.ttft_ms:g} ms (lognormal sigma {params.ttft_sigma:g}), "
        f"{params.tps:g} tokens/s, 1 token per chunk, {params.output_tokens} output tokens, "
        f"~{params.input_tokens} input tokens: ~{params.stream_s:.2f} s per stream; at "
        f"{MANY:,} streams {params.tps_at(MANY):g} tokens/s, starts spread over "
        f"{params.many_ramp_s:g} s"
    )
    levels = ", ".join(f"{lv} × {w}" for lv, w in params.waves.items())
    print(
        f"levels (streams × waves): {levels}; modes: {', '.join(modes)}; clients: ours, "
        f"aiohttp {aiohttp.__version__}, the openai SDK {openai.__version__} "
        f"(httpx2 {httpx2.__version__}), each in a fresh process after one warm-up probe; "
        f"deadlines {TIMEOUTS}"
    )
    cpus = f"simulator and hostile server on CPU {SERVER_CPU}, clients on CPU {CLIENT_CPU}"
    if params.busy_neighbour:
        cpus += f"; a busy neighbour spins on CPU {CLIENT_CPU} all along"
    print(f"{cpus if (os.cpu_count() or 1) >= 2 else 'one CPU, unpinned'}\n", flush=True)
    start = time.perf_counter()
    runs: dict[tuple[str, int, str], LevelRun] = {}
    with (
        simulator(bench_farm(params), SERVER_CPU) as (base_url, sim_pid),
        hostile_process(cpu=SERVER_CPU) as hostile_url,
        cpu_hog(CLIENT_CPU) if params.busy_neighbour else contextlib.nullcontext(),
    ):
        control = Control(base_url)
        print(HEADER)
        print(SUBHEADER, flush=True)
        for mode in modes:
            for level, waves in params.waves.items():
                if level == 1 and mode != "plain":
                    continue  # the targets are for 100 and 1,000 streams
                for client in clients:
                    control.reset()
                    sim_before = runq_wait_ns(sim_pid)
                    run = run_client(client, mode, base_url, hostile_url, params, level, waves)
                    r = LevelRun(level, client, run, mode)
                    r.sim_runq_wait_ms = waited_ms(sim_before, runq_wait_ns(sim_pid))
                    lags = sorted(control.first_token_lags_ms())
                    r.sim_lag_p99_ms = percentile(lags, 99) if lags else None
                    runs[mode, level, client] = r
                    print(row(r), flush=True)
                    if len(r.completed) < len(r.run.samples):
                        print(f"{'':>22}incomplete: {failures(r)}", flush=True)
    print(f"\n{LEGEND}\n\nverdicts (ours):")
    for line in verdicts(runs):
        print(line)
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
