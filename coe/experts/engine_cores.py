"""Keeping CoE's own processes off the cores its engines are pinned to.

A CPU engine does its compute on the cores `engine.cpu_bind` names (vLLM's OpenMP threads are bound
there). Everything else `coe serve` starts (Ray's GCS and raylet, Serve's controller and proxy, the
ingress, the expert replicas) would otherwise run on any core, so Ray's background (8-9% of a core even
idle) and the ingress's work land on the engine's core part of the time and take from its decode
steps. `coe serve` therefore restricts itself, before it starts Ray, to the cores no engine is pinned
to; every process it starts inherits that. The engines must not: an engine's processes start with the
cores `coe serve` itself started with (`started_on_engine_cpus`), as under `vllm serve`, and vLLM pins
its compute threads inside them. Measured in the README (Performance, "CoE's processes off the
engine's core").

Linux keeps the affinity per thread and a new process inherits its creating thread's, as with the
nice value (coe/experts/priority.py).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Iterator

log = logging.getLogger(__name__)

ENGINE_CPUS_ENV = "COE_ENGINE_CPUS"
"""The cores an engine's processes start with: `coe serve`'s own before it kept off the engines' cores
(a comma-separated list). Set by `keep_off_engine_cores`; Ray's workers inherit it."""


def parse_cpu_list(spec: str) -> set[int]:
    """Cores of a list such as '0', '0-3' or '0,2,4-5' (VLLM_CPU_OMP_THREADS_BIND's one-engine form).
    Raises ValueError for anything else ('auto', 'all', several ranks with '|'): their cores are
    decided by vLLM at boot, so nothing can be kept off them beforehand."""
    cores: set[int] = set()
    for part in spec.split(","):
        low, dash, high = part.strip().partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            raise ValueError(f"not a list of cores: {spec!r}")
        cores.update(range(int(low), int(high if dash else low) + 1))
    return cores


def pinned_cores(binds: Iterable[str | None]) -> set[int]:
    """Every core the given `cpu_bind` values pin an engine to; a bind that names no fixed cores
    (None, 'auto', 'all') pins none."""
    cores: set[int] = set()
    for bind in binds:
        if bind is None:
            continue
        try:
            cores |= parse_cpu_list(bind)
        except ValueError:
            log.info("cpu_bind %r names no fixed cores; CoE's processes may share them", bind)
    return cores


def keep_off_engine_cores(binds: Iterable[str | None]) -> str:
    """Restricts the calling thread, and so every process it starts from now on, to the cores no engine
    is pinned to, and records the cores it had in ENGINE_CPUS_ENV for the engines. Returns what it did,
    for the log. Leaves everything as it is when no engine is pinned or every core is an engine's."""
    start = os.sched_getaffinity(0)
    engines = pinned_cores(binds) & start
    rest = start - engines
    if not engines:
        return "no engine is pinned to a core: CoE's processes run on every core"
    if not rest:
        return f"every core ({_text(start)}) is an engine's: CoE's processes share them"
    os.environ[ENGINE_CPUS_ENV] = _text(start)
    os.sched_setaffinity(0, rest)
    return f"CoE's own processes run on cores {_text(rest)}, off the engines' cores {_text(engines)}"


@contextlib.contextmanager
def started_on_engine_cpus() -> Iterator[None]:
    """Processes started inside this block get the cores `coe serve` started with (ENGINE_CPUS_ENV),
    not the ones its own processes were kept to; outside `coe serve`, or with nothing kept off, this
    does nothing. Afterwards the calling thread, and any thread of this process started meanwhile (an
    engine client's output threads), go back to CoE's cores: only the engine's processes keep every core."""
    spec = os.environ.get(ENGINE_CPUS_ENV)
    if not spec:
        yield
        return
    before, threads_before = os.sched_getaffinity(0), set(_own_threads())
    os.sched_setaffinity(0, parse_cpu_list(spec))
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)
        for tid in set(_own_threads()) - threads_before:
            with contextlib.suppress(OSError):  # a thread that ended meanwhile
                os.sched_setaffinity(tid, before)


def _own_threads() -> list[int]:
    return [int(tid) for tid in os.listdir("/proc/self/task")]


def _text(cores: set[int]) -> str:
    return ",".join(str(core) for core in sorted(cores))
