"""Hash a cold image on another core while the engine reads it.

A cold image read for the first time is hashed on the way (coe/swap/image.py says why). Hashed in the
reading thread, xxh3-128 adds its own time to the read's: about 18 ms for the 269 MB SmolLM2 image,
which kept a first load at 0.83-0.89x of a plain read. xxhash releases the GIL, so a second thread can
hash tensor i while the reader fills tensor i + 1; but vLLM-CPU pins the worker's threads to its
bound core, and a thread inherits that pin, so the hashing thread first widens its own affinity to
every core (Linux keeps affinity per thread; the reader stays pinned). During a swap the engine is
drained, so the other core is free.

The digest is the same as hashing in order in one thread: one consumer takes the pieces in the order
they were read.
"""

from __future__ import annotations

import os
import queue
import threading
from types import TracebackType
from typing import Any

from coe.checksums import new_hasher


def widen_affinity() -> None:
    """Let the calling thread run on any core (a no-op where the cpuset or the platform refuses)."""
    if hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, range(os.cpu_count() or 1))
        except OSError:
            pass


class BackgroundHasher:
    """`update(piece)` queues a piece (bytes or a memoryview that stays unchanged until `hexdigest`);
    `hexdigest()` waits for the queue to drain. Use as a context manager so the thread ends on an error."""

    def __init__(self, algorithm: str) -> None:
        self._digest = new_hasher(algorithm)
        self._pieces: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="coe-image-hash", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        widen_affinity()
        while (piece := self._pieces.get()) is not None:
            if self._error is None:
                try:
                    self._digest.update(piece)
                except BaseException as exc:  # noqa: BLE001 - raised again in the reader's thread
                    self._error = exc

    def update(self, piece: Any) -> None:
        self._pieces.put(piece)

    def _finish(self) -> None:
        if self._thread.is_alive():
            self._pieces.put(None)
            self._thread.join()

    def hexdigest(self) -> str:
        self._finish()
        if self._error is not None:
            raise self._error
        return self._digest.hexdigest()

    def __enter__(self) -> "BackgroundHasher":
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._finish()
