"""Freezing a serving process's startup heap, so Python's full collections stop scanning it.

Why: a process that imports Ray, FastAPI, LiteLLM, transformers and vLLM's frontend holds about a
million objects tracked by the garbage collector before it serves anything, and a full (oldest
generation) collection walks all of them: 490-502 ms here, with the GIL held, so every request the
process is serving waits that long. Without a freeze, the ingress ran one or two such collections of
310-325 ms early in its serving life (logged in each of three bench runs with the freeze off); with
it, none of that size. Throughput did not move measurably either way (README, Performance).

vLLM's own API server freezes its heap once it is up (`vllm.utils.gc_utils.freeze_gc_heap`); CoE's
ingress and expert replicas run the same frontend without vLLM's server around it, so they do it
here: once the process is built, and again after a late import (the ingress attaches to an engine,
importing vLLM, after it is up; that second collection walks only what came after the first
freeze). After the freeze a full collection of the same heap took 0.01 ms.

`COE_GC_FREEZE=0` leaves the collector as it is (an A/B in bench/vllm_side_by_side.py). Either way,
once a process serves, a collection that pauses it for over `LONG_PAUSE_MS` is logged as a warning,
so a stall of this kind shows in the log instead of passing for a slow engine.
"""

from __future__ import annotations

import gc
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)

GC_FREEZE_ENV = "COE_GC_FREEZE"
LONG_PAUSE_MS = 50.0


class _PauseWatch:
    """Logs every collection over LONG_PAUSE_MS, except the freeze's own (expected to be long). A
    callback costs about a microsecond per collection; young collections run a few hundred times a
    second under load."""

    def __init__(self) -> None:
        self.started = 0.0
        self.quiet = False

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
            return
        paused_ms = (time.perf_counter() - self.started) * 1000
        if paused_ms > LONG_PAUSE_MS and not self.quiet:
            log.warning("garbage collection of generation %d paused this process for %.0f ms (%d objects freed)",
                        info["generation"], paused_ms, info["collected"])


_watch = _PauseWatch()


@contextmanager
def long_pauses_expected() -> Iterator[None]:
    """No pause is logged inside: a freeze's own collection, or an import of vLLM's frontend (a heap
    growing by hundreds of thousands of objects, collected on the way), which come before serving."""
    _watch.quiet = True
    try:
        yield
    finally:
        _watch.quiet = False


def freeze_gc_heap(why: str) -> None:
    """Collects what is garbage now, then moves every surviving object to the permanent generation;
    from the first call on, long collections are logged.

    Objects frozen here are still freed by reference counting; only cycles among them wait for an
    `gc.unfreeze()` that never comes, which for startup state (modules, models, clients) is what it is
    meant for."""
    if _watch not in gc.callbacks:
        gc.callbacks.append(_watch)
    if os.environ.get(GC_FREEZE_ENV, "1") == "0":
        return
    started = time.perf_counter()
    with long_pauses_expected():
        gc.collect()
        gc.freeze()
    log.info("%s: froze %d objects out of the garbage collector's scans (%.0f ms)", why, gc.get_freeze_count(),
             (time.perf_counter() - started) * 1000)
