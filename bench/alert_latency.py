"""Alert latency: `provmon run` against the simulator with scheduled outages, a real webhook
receiver, and a `kill -9` of the daemon in the middle.

Prints per outage the time from its first failing probe (the request's arrival at the simulator)
to the firing webhook's arrival, and from the first ok probe after it to the resolved webhook's
arrival; then the notifications expected, delivered, missing and duplicated across the restart.
Targets (issue 5): firing ≤ failure_threshold × interval + 2 s; 0 missing, 0 duplicates.

The simulator and the receiver run in this process (one monotonic clock); the daemon in a
subprocess on SQLite in a temp folder (or `--database-url`). Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.simulator import (
    DEMO_MODEL,
    Farm,
    ProviderProfile,
    ServedModel,
    run_simulator,
)
from tests.factories import config_doc, direct_target, toml_text
from tests.receivers import WebhookReceiver, webhook_receiver

KEY = "sk-bench-alert-latency-1"


def profile(name: str, **kw: object) -> ProviderProfile:
    return ProviderProfile(
        name, name.lower(), (ServedModel(DEMO_MODEL),), ttft_ms=30, tps=300,
        output_tokens=10, **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def config(sim_url: str, hook: str, db_url: str, tmp: Path, interval_s: float) -> str:
    targets = [
        direct_target(f"{sim_url}/{name.lower()}/v1", name, key_env="K", workloads=["tiny"])
        for name in ("Steady", "Calm", "Outage")
    ]
    doc = config_doc(
        targets,
        database=db_url,
        spill=tmp / "spill.jsonl",
        vantage="bench",
        timeouts={"connect_s": 2, "first_token_s": 3, "total_s": 5},
        workloads={"tiny": {"input_tokens": 10, "max_tokens": 8}},
        schedule={"interval_s": interval_s, "jitter_s": 0, "drain_s": 2},
        alerts={
            "failure_threshold": 3,
            "success_threshold": 2,
            "retry_base_s": 0.5,
            "retry_max_attempts": 50,
            "channels": [{"name": "hook", "type": "webhook", "url": hook, "timeout_s": 5}],
        },
    )
    return toml_text(doc)


async def start_daemon(
    cmd: list[str], env: dict[str, str], log: Path
) -> asyncio.subprocess.Process:
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(*cmd, env=env, stderr=out, stdout=out)


def fmt(value: float | None, target: float | None = None) -> str:
    if value is None:
        return "missing"
    mark = "" if target is None else (" ok" if value <= target else " MISSED")
    return f"{value:5.2f} s{mark}"


async def main(args: argparse.Namespace) -> int:
    interval = args.interval
    outages = [
        (
            args.first + i * (args.outage + args.gap),
            args.first + i * (args.outage + args.gap) + args.outage,
        )
        for i in range(args.outages)
    ]
    run_s = outages[-1][1] + args.gap
    farm = Farm(
        (profile("Steady"), profile("Calm"), profile("Outage", outages=tuple(outages))),
        api_key=KEY,
    )
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="provmon-bench-") as tmpdir:
        tmp = Path(tmpdir)
        db_url = args.database_url or f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
        async with run_simulator(farm) as sim, webhook_receiver() as rx:
            cfg = tmp / "provmon.toml"
            cfg.write_text(config(sim.base_url, rx.url, db_url, tmp, interval))
            env = {"K": KEY, "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
            run = [sys.executable, "-m", "monitor"]
            up = await asyncio.create_subprocess_exec(
                *run, "db", "upgrade", "-c", str(cfg), env=env, stdout=asyncio.subprocess.DEVNULL
            )
            assert await up.wait() == 0
            log = tmp / "daemon.log"
            cmd = [*run, "run", "-c", str(cfg)]
            start = time.monotonic()
            farm.reset(time.monotonic_ns())  # outages count from now
            proc = await start_daemon(cmd, env, log)
            # kill -9 somewhere in the middle outage, uniformly from its start to 2 s after.
            middle = outages[len(outages) // 2]
            kill_at = rng.uniform(middle[0], middle[1] + 2.0)
            await asyncio.sleep(max(0.0, kill_at - (time.monotonic() - start)))
            proc.kill()
            await proc.wait()
            killed = time.monotonic() - start
            proc = await start_daemon(cmd, env, log)
            try:
                await asyncio.sleep(max(0.0, run_s - (time.monotonic() - start)))
                with contextlib.suppress(TimeoutError):
                    await rx.wait_for(2 * len(outages), 15)
            finally:
                proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), 20)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
            report(args, farm, rx, outages, start, killed, db_url)
    return 0


def report(
    args: argparse.Namespace,
    farm: Farm,
    rx: WebhookReceiver,
    outages: list[tuple[float, float]],
    start: float,
    killed: float,
    db_url: str,
) -> None:
    t0_ns = farm.start_ns or 0
    truth = [t for t in farm.truth if t.provider == "Outage"]
    deliveries = [(d.at - start, d.payload, d.key) for d in rx.deliveries]
    target_firing = 3 * args.interval + 2.0
    target_resolved = 2 * args.interval + 2.0
    print(
        f"alert latency: 3 targets every {args.interval:g} s, failure_threshold 3, "
        f"success_threshold 2, {len(outages)} outages of {args.outage:g} s on one provider, "
        f"{db_url.split(':', 1)[0]}; kill -9 of the daemon at {killed:.1f} s, restarted at once"
    )
    print(
        f"{'outage':>6}  {'window':>13}  {'first fail':>10}  {'→ firing':>14}  "
        f"{'first ok':>8}  {'→ resolved':>14}"
    )
    used: set[int] = set()
    expected = missing = 0
    for n, (a, b) in enumerate(outages, 1):
        fails = [(t.arrival_ns - t0_ns) / 1e9 for t in truth if t.fault.startswith("outage_")]
        fails = [x for x in fails if a <= x < b]
        oks = [(t.arrival_ns - t0_ns) / 1e9 for t in truth if t.fault == "none" and t.arrival_ns]
        oks = [x for x in oks if x >= b]
        first_fail = fails[0] if fails else None
        first_ok = oks[0] if oks else None
        firing = resolved = None
        for i, (at, payload, _) in enumerate(deliveries):
            if i in used or payload["commonLabels"].get("provider") != "Outage":
                continue
            if payload["status"] == "firing" and firing is None and first_fail is not None:
                if at >= first_fail and (first_ok is None or at < first_ok + 5):
                    firing = at - first_fail
                    used.add(i)
            elif (
                payload["status"] == "resolved"
                and resolved is None
                and first_ok is not None
                and at >= first_ok
            ):
                resolved = at - first_ok
                used.add(i)
        expected += 2
        missing += (firing is None) + (resolved is None)
        print(
            f"{n:>6}  {a:5.1f}–{b:5.1f} s  {fmt(first_fail)}  {fmt(firing, target_firing):>14}  "
            f"{fmt(first_ok)}  {fmt(resolved, target_resolved):>14}"
        )
    keys = [k for _, _, k in deliveries]
    duplicates = len(keys) - len(set(keys))
    strays = len(deliveries) - len(used) - duplicates
    print(
        f"targets: firing ≤ {target_firing:g} s (failure_threshold × interval + 2 s), "
        f"resolved ≤ {target_resolved:g} s (success_threshold × interval + 2 s)"
    )
    print(
        f"notifications: expected {expected}, delivered {len(deliveries)}, missing {missing}, "
        f"duplicates {duplicates}, unexpected {max(0, strays)} (targets: 0 missing, 0 duplicates)"
    )


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--interval", type=float, default=1.0, help="probe interval, s (default 1)")
    p.add_argument("--outages", type=int, default=3, help="number of outages (default 3)")
    p.add_argument("--outage", type=float, default=8.0, help="outage length, s (default 8)")
    p.add_argument("--gap", type=float, default=8.0, help="time between outages, s (default 8)")
    p.add_argument("--first", type=float, default=5.0, help="first outage at, s (default 5)")
    p.add_argument("--seed", type=int, default=1, help="seed of the kill time")
    p.add_argument("--database-url", help="e.g. postgresql+asyncpg://postgres@127.0.0.1/bench")
    return p.parse_args()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse())))
