"""Memory probe for a daemon under a benchmark: put this folder first on the daemon's PYTHONPATH
and set PROVMON_MEMPROBE to a file; Python imports this module at start-up (sitecustomize).

Every PROVMON_MEMPROBE_EVERY_S seconds (default 60) a thread appends to that file: VmRSS,
glibc's mallinfo2 (heap in use / free, mmapped), the count of objects the GC tracks, and, when
PROVMON_MEMPROBE_FRAMES is set (tracemalloc with that many frames: slower), the 25 largest
growths of traced memory since the first snapshot taken after PROVMON_MEMPROBE_BASE_S (120).
A debugging aid for benchmarks only; provmon itself never loads it.
"""

from __future__ import annotations

import ctypes
import gc
import os
import threading
import time
import tracemalloc

_PATH = os.environ.get("PROVMON_MEMPROBE")


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _mallinfo() -> str:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _Mallinfo2
        m = libc.mallinfo2()
    except (OSError, AttributeError):
        return "mallinfo2 n/a"
    mb = 1024 * 1024
    return (
        f"heap {m.arena / mb:.1f} MB (used {m.uordblks / mb:.1f}, free {m.fordblks / mb:.1f}), "
        f"mmapped {m.hblkhd / mb:.1f} MB in {m.hblks}"
    )


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _run(path: str, every_s: float, base_s: float, frames: int) -> None:
    start = time.monotonic()
    base: tracemalloc.Snapshot | None = None
    while True:
        time.sleep(every_s)
        age = time.monotonic() - start
        lines = [
            f"--- {age:.0f} s: rss {_rss_mb():.1f} MB; {_mallinfo()}; "
            f"gc objects {len(gc.get_objects()):,}; gc counts {gc.get_count()}"
        ]
        if frames:
            snap = tracemalloc.take_snapshot().filter_traces(
                (tracemalloc.Filter(False, tracemalloc.__file__),)
            )
            traced, peak = tracemalloc.get_traced_memory()
            lines.append(f"traced {traced / 1e6:.1f} MB, peak {peak / 1e6:.1f} MB")
            if base is None and age >= base_s:
                base = snap
            elif base is not None:
                for stat in snap.compare_to(base, "traceback")[:25]:
                    lines.append(
                        f"  {stat.size_diff / 1e6:+.2f} MB {stat.count_diff:+,} blocks "
                        f"(now {stat.size / 1e6:.2f} MB)"
                    )
                    lines.extend(f"      {fr}" for fr in stat.traceback.format()[-frames:])
        with open(path, "a") as f:
            f.write("\n".join(lines) + "\n")


if _PATH:
    _frames = int(os.environ.get("PROVMON_MEMPROBE_FRAMES", "0"))
    if _frames:
        tracemalloc.start(_frames)
    threading.Thread(
        target=_run,
        args=(
            _PATH,
            float(os.environ.get("PROVMON_MEMPROBE_EVERY_S", "60")),
            float(os.environ.get("PROVMON_MEMPROBE_BASE_S", "120")),
            _frames,
        ),
        daemon=True,
        name="memprobe",
    ).start()
