"""A cold image's bytes read straight into the engine's parameters, with few system calls.

Why: a slot image holds a few hundred tensors, most of them 0.2-2 MB. Read with one `readinto` per
tensor, the 269 MB SmolLM2 image took 136-158 ms where one sequential read of the same file in 64 MiB
chunks took 131-138 ms (medians of 8 loads each, page cache dropped, in a probe outside the engine,
pinned to one core or not). `preadv` fills many tensors from one request of up to 64 MiB, straight
into their memory, with no staging copy: 121-133 ms in the same probe. A first load also hashes the
bytes; xxh3 releases the GIL, so a second thread hashes each batch behind the reads: 128-140 ms,
against 147-155 ms hashing in the reading thread. `coe swap-bench` measures it in the engine (README,
"What a swap costs here").
"""

from __future__ import annotations

import os
import queue
import threading
from typing import Any

READ_BATCH_BYTES = 64 << 20  # one preadv's worth: the fastest chunk of a plain read here (1-64 MiB tried)
MAX_IOVECS = 1000  # below Linux's IOV_MAX (1024) buffers per call


def batches(views: list[memoryview], limit: int | None = None) -> list[list[memoryview]]:
    """`views` in order, grouped so each group holds at most `limit` bytes (READ_BATCH_BYTES unless
    given; a larger view goes alone) and MAX_IOVECS views."""
    limit = limit or READ_BATCH_BYTES
    out: list[list[memoryview]] = []
    current: list[memoryview] = []
    total = 0
    for view in views:
        if current and (total + view.nbytes > limit or len(current) >= MAX_IOVECS):
            out.append(current)
            current, total = [], 0
        current.append(view)
        total += view.nbytes
    if current:
        out.append(current)
    return out


def preadv_exactly(fd: int, views: list[memoryview], offset: int) -> int:
    """Fills every view from the file at `offset`, in order; returns the bytes read. A short read
    (a signal, a large request) continues where it stopped; the file ending early is an error."""
    pending = [v.cast("B") for v in views if v.nbytes]
    first = done = 0
    while first < len(pending):
        n = os.preadv(fd, pending[first:], offset + done)
        if n <= 0:
            raise EOFError(f"fd {fd}: file ends early, at byte {offset + done}")
        done += n
        while first < len(pending) and n >= pending[first].nbytes:
            n -= pending[first].nbytes
            first += 1
        if n:
            pending[first] = pending[first][n:]
    return done


class HashBehind:
    """Hashes batches on its own thread, in the order given, while the caller reads the next ones.

    The thread may run on any CPU of the machine: vLLM pins its CPU worker to the engine's cores,
    and the thread would inherit that and queue behind the reads it is meant to overlap. A swap runs
    while its engine is drained, so the hash competes at most with other engines for a few ms."""

    def __init__(self, digest: Any) -> None:
        self.digest = digest
        self._batches: queue.SimpleQueue[list[memoryview] | None] = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="coe-image-hash", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            os.sched_setaffinity(0, range(os.cpu_count() or 1))  # this thread only (0 = the caller)
        except (AttributeError, OSError):
            pass  # not Linux, or a cpuset that refuses: hash where the thread was put
        try:
            while (batch := self._batches.get()) is not None:
                for view in batch:
                    self.digest.update(view)
        except BaseException as err:  # noqa: BLE001 - re-raised in the caller by finish()
            self._error = err
            while self._batches.get() is not None:
                pass

    def add(self, batch: list[memoryview]) -> None:
        self._batches.put(batch)

    def finish(self) -> Any:
        """Waits for every batch; returns the digest (or raises what the thread raised)."""
        self._batches.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self.digest


def read_into(fd: int, offset: int, views: list[memoryview], digest: Any | None = None) -> int:
    """Reads consecutive file bytes from `offset` into `views`; with `digest`, hashes them on a second
    thread (`HashBehind`) in file order. Returns the bytes read."""
    behind = HashBehind(digest) if digest is not None else None
    done = 0
    try:
        for batch in batches(views):
            done += preadv_exactly(fd, batch, offset + done)
            if behind is not None:
                behind.add(batch)
    finally:
        if behind is not None:
            behind.finish()
    return done
