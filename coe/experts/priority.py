"""The process priority an engine runs at.

Ray starts its worker processes at nice 15 (`RAY_worker_niceness`), so that its own daemons stay
responsive under load; an engine started inside an expert replica inherits that. On a machine where
the engine shares cores with other work (the client, Ray's daemons, the ingress), nice 15 loses those
cores to every nice-0 process, and the engine decodes slower than the same engine under `vllm serve`,
which runs at the shell's priority. Measured in the README (Performance: the engine's priority).

Linux keeps the nice value per thread and a new process inherits its creating thread's, so the
engine's processes are started with the calling thread set to the wanted value, which is put back
afterwards. Lowering a nice value needs CAP_SYS_NICE (root, or `ulimit -e`); where it is refused, the
engine keeps Ray's priority and a warning says how to allow it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

log = logging.getLogger(__name__)


def thread_nice() -> int:
    """The calling thread's nice value (on Linux PRIO_PROCESS 0 is the calling thread)."""
    return os.getpriority(os.PRIO_PROCESS, 0)


@contextlib.contextmanager
def started_at_nice(nice: int | None, what: str) -> Iterator[int]:
    """Processes started inside this block run at `nice` (None: as the caller does). Yields the nice
    value they get, which is the caller's own where lowering it is not permitted."""
    before = thread_nice()
    if nice is None or nice == before:
        yield before
        return
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    except PermissionError:
        log.warning("%s: cannot set its processes to nice %d (from %d): lowering a nice value needs "
                    "CAP_SYS_NICE (root, or raise `ulimit -e`); it runs at nice %d", what, nice, before, before)
        yield before
        return
    try:
        yield nice
    finally:
        with contextlib.suppress(PermissionError):  # back up is always allowed; back down may not be
            os.setpriority(os.PRIO_PROCESS, 0, before)
