"""Admission for one engine slot: which expert the engine holds, and who may use it now.

The invariant that keeps answers right: a swap starts only when no admitted request is in flight,
and a request is admitted only while the slot holds its expert. Requests are never dropped: a waiter
stays queued until its expert is swapped in (or the swap fails, which fails exactly those waiters).
The queue is bounded (`max_queued`): past it a request is refused at once with 503 and Retry-After.

Two policies:
- `group` (default): requests for the expert already in the engine keep joining the running batch
  while nobody else has waited longer than `max_wait_s`; then admission closes, the batch drains and
  the next expert takes all of its queued requests at once: the one whose oldest request waited
  `max_wait_s` if any did, else the one with the most queued requests (one swap, the largest batch). A
  burst of mixed requests costs one swap per distinct expert instead of one per alternation, and no
  expert waits more than about `max_wait_s` plus one drain.
  `gather_s` > 0 makes a swap wait until its expert's oldest request has waited that long (the engine
  keeps serving its current expert meanwhile), so requests that arrive close together share one swap
  even when the engine was idle: fewer swaps for a bounded extra wait. A swap that would start at once
  under a work-conserving rule is the one that dominates on a lightly loaded slot; gathering is the
  only way to spread it (README: trace replay).
- `fifo`: strict arrival order; every change of expert at the head of the queue is a swap.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from enum import Enum

from coe.errors import Overloaded


class BatchingPolicy(str, Enum):
    group = "group"
    fifo = "fifo"


@dataclass(order=True)
class _Waiter:
    seq: int
    expert: str = field(compare=False)
    since: float = field(compare=False)
    future: asyncio.Future = field(compare=False)


class SwapScheduler:
    def __init__(
        self,
        current: str,
        swap: Callable[[str], Awaitable[None]],
        policy: BatchingPolicy = BatchingPolicy.group,
        max_wait_s: float = 0.5,
        on_queued: Callable[[str], None] | None = None,
        max_queued: int | None = None,
        gather_s: float = 0.0,
    ) -> None:
        self.current = current
        self.gather_s = gather_s
        self.max_queued = max_queued
        self._swap = swap
        self.policy = policy
        self.max_wait_s = max_wait_s
        self._on_queued = on_queued
        self._waiters: list[_Waiter] = []
        self._in_flight = 0
        self._swapping = False
        self._seq = itertools.count()
        self._timer: asyncio.TimerHandle | None = None

    @property
    def queued(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for w in self._waiters:
            counts[w.expert] = counts.get(w.expert, 0) + 1
        return counts

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @asynccontextmanager
    async def admit(self, expert: str) -> AsyncIterator[None]:
        """Holds a place for one request on `expert` for the duration of the block."""
        if self._may_join(expert):
            self._in_flight += 1
        else:
            if self.max_queued is not None and len(self._waiters) >= self.max_queued:
                # Refused before it costs anything: memory stays bounded and the client is told when to retry.
                refused = Overloaded(f"engine slot is at capacity ({self.max_queued} requests queued); retry shortly")
                refused.retry_after_s = max(1.0, self.max_wait_s * 2)
                raise refused
            waiter = _Waiter(next(self._seq), expert, time.monotonic(), asyncio.get_running_loop().create_future())
            self._waiters.append(waiter)
            if self._on_queued is not None:
                self._on_queued(expert)
            self._kick()
            try:
                await waiter.future  # resolved with the in-flight count already taken for us
            except asyncio.CancelledError:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                elif waiter.future.done() and not waiter.future.cancelled() and waiter.future.exception() is None:
                    self._release()  # admitted just as the caller gave up
                raise
        try:
            yield
        finally:
            self._release()

    def _may_join(self, expert: str) -> bool:
        if self._swapping or expert != self.current:
            return False
        if not self._waiters:
            return True
        if self.policy is BatchingPolicy.fifo:
            return False
        oldest = min(w.since for w in self._waiters)
        return time.monotonic() - oldest < max(self.max_wait_s, self.gather_s)

    def _release(self) -> None:
        self._in_flight -= 1
        self._kick()

    def _kick(self) -> None:
        if self._swapping or self._in_flight > 0 or not self._waiters:
            return
        nxt = self._next_expert()
        if nxt == self.current:
            self._admit_all(nxt)
            return
        if nxt is None:  # every other expert is still gathering: look again when the first is due
            self._kick_later()
            return
        self._swapping = True
        asyncio.get_running_loop().create_task(self._swap_then_admit(nxt))

    def _next_expert(self) -> str | None:
        """The expert to serve next; None while every candidate other than the current one is gathering."""
        oldest = min(self._waiters)
        now = time.monotonic()
        if self.policy is BatchingPolicy.fifo:
            return oldest.expert
        counts = self.queued
        if self.current in counts and now - oldest.since < self.max_wait_s:
            return self.current
        if now - oldest.since < self.gather_s:
            return self.current if self.current in counts else None
        if now - oldest.since >= self.max_wait_s:
            return oldest.expert  # someone waited max_wait: their expert goes next, whatever it costs
        # Nobody is overdue: among the experts done gathering, the one with the most queued requests
        # spreads its swap over the largest batch (ties: the one whose oldest request is oldest).
        first_seq: dict[str, int] = {}
        for w in sorted(self._waiters, reverse=True):
            if now - w.since >= self.gather_s:
                first_seq[w.expert] = w.seq
        return max(first_seq, key=lambda e: (counts[e], -first_seq[e]))

    def _kick_later(self) -> None:
        if self._timer is not None and not self._timer.cancelled():
            self._timer.cancel()
        due = min(w.since for w in self._waiters) + self.gather_s - time.monotonic()
        self._timer = asyncio.get_running_loop().call_later(max(due, 0.0) + 1e-3, self._kick)

    def _admit_all(self, expert: str) -> None:
        """Admits the queued requests for `expert` (in FIFO mode only the leading run of them)."""
        admitted = []
        for w in sorted(self._waiters):
            if w.expert != expert:
                if self.policy is BatchingPolicy.fifo:
                    break
                continue
            admitted.append(w)
        for w in admitted:
            self._waiters.remove(w)
            if not w.future.done():
                self._in_flight += 1
                w.future.set_result(None)

    async def _swap_then_admit(self, expert: str) -> None:
        try:
            await self._swap(expert)
        except Exception as err:  # the swap refused this expert: fail its waiters, keep the rest queued
            failed = [w for w in self._waiters if w.expert == expert]
            for w in failed:
                self._waiters.remove(w)
                if not w.future.done():
                    w.future.set_exception(err)
        else:
            self.current = expert
            self._admit_all(expert)
        finally:
            self._swapping = False
            self._kick()
