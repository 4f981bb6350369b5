"""What lives as long as the process, kept out of the garbage collector's full passes.

A full (generation-2) pass visits every tracked object and holds the interpreter all along:
in a process holding provmon's modules, its config and a thousand streams, 35–65 ms. Nothing
the probes time waits for it (the kernel stamps arrivals, see monitor.probing.rxstamp), but the
event loop and the arrival watcher do. `gc.freeze()` once start-up is done moves what exists
then (modules, config, the app) out of those passes for good; the garbage made since start-up
is collected first, so it is not kept. `thaw` undoes it (a daemon that stops, a test).
"""

from __future__ import annotations

import gc


def freeze() -> None:
    """Collect, then leave what lives now out of every later pass."""
    gc.collect()
    gc.freeze()


def thaw() -> None:
    gc.unfreeze()
