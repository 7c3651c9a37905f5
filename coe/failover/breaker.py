"""A circuit breaker per expert, kept in the StateStore so every ingress replica sees one state.

closed     requests pass; failures are counted in fixed windows (`breaker:<id>:fails`, expiring)
open       `failures` failures in a window set `breaker:<id>:open` for `open_s`: requests skip the
           expert (to a fallback, or 503 with Retry-After) instead of waiting on a sick upstream
half-open  when the open key expires, the next request is the one probe (an atomic counter picks it
           across replicas); its success closes the breaker, its failure opens it again

With Redis, replicas share it; without, each process keeps its own (the in-process store).
A replica remembers "closed" for CLOSED_CACHE_S after reading it, so a healthy expert costs no
store round trip per request; its own failures forget that at once, another replica's reach it
within CLOSED_CACHE_S.
"""

from __future__ import annotations

import time

from coe.config import BreakerPolicy
from coe.state.store import InMemoryStore, StateStore


CLOSED_CACHE_S = 0.25


class CircuitBreaker:
    PREFIX = "breaker:"

    def __init__(self, expert_id: str, policy: BreakerPolicy, store: StateStore | None = None) -> None:
        self.expert_id = expert_id
        self.policy = policy
        self.store = store if store is not None else InMemoryStore()
        base = f"{self.PREFIX}{expert_id}:"
        self._fails, self._open, self._tripped, self._probe = base + "fails", base + "open", base + "tripped", base + "probe"
        self._closed_until = 0.0  # time.monotonic() until which "closed" is taken without asking the store

    def _known_closed(self) -> bool:
        return time.monotonic() < self._closed_until

    async def retry_after_s(self) -> float | None:
        """None when a request may go to the expert now; else seconds until the breaker lets one try."""
        if self._known_closed():
            return None
        until = await self.store.get(self._open)
        if until is not None:
            return max(0.1, float(until) - time.time())
        if await self.store.get(self._tripped) is None:
            self._closed_until = time.monotonic() + CLOSED_CACHE_S
            return None  # closed
        # Half-open: one probe at a time across replicas; the others wait for its outcome.
        if await self.store.incr(self._probe, 1, ttl_s=self.policy.open_s) == 1:
            return None
        return self.policy.open_s

    async def succeeded(self) -> None:
        if self._known_closed():
            return
        if await self.store.get(self._tripped) is not None:
            for key in (self._tripped, self._probe, self._fails):
                await self.store.delete(key)

    async def failed(self) -> None:
        self._closed_until = 0.0
        if await self.store.get(self._tripped) is not None and await self.store.get(self._open) is None:
            await self._trip()  # the half-open probe failed
            return
        if await self.store.incr(self._fails, 1, ttl_s=self.policy.window_s) >= self.policy.failures:
            await self._trip()

    async def _trip(self) -> None:
        await self.store.set(self._open, str(time.time() + self.policy.open_s), ttl_s=self.policy.open_s)
        await self.store.set(self._tripped, "1", ttl_s=self.policy.open_s * 20)
        await self.store.delete(self._probe)
        await self.store.delete(self._fails)

    async def state(self) -> str:
        """What the store says, uncached (for /health and tests)."""
        if await self.store.get(self._open) is not None:
            return "open"
        return "half-open" if await self.store.get(self._tripped) is not None else "closed"
