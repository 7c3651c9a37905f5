"""Which engine slot holds which expert: the ingress's view, kept in the shared StateStore.

A request should go to the slot that already has its expert hot; otherwise to the slot that is least
busy, preferring the one whose expert was used longest ago (it is the cheapest to evict). Every
ingress records what it learns (a slot that answered for expert E holds E now); with Redis
configured all ingress replicas share that record, and it survives their restarts. A stale record
costs one swap, never a wrong answer: the slot itself decides what is loaded.
"""

from __future__ import annotations

import time

from coe.state.store import StateStore


class Placement:
    def __init__(self, store: StateStore, pool_id: str, slots: list[str]) -> None:
        self.store = store
        self.slots = list(slots)
        self._hot_key = f"placement:{pool_id}:hot"
        self._used_key = f"placement:{pool_id}:used"
        self._busy: dict[str, int] = {s: 0 for s in self.slots}

    async def hot(self) -> dict[str, str]:
        """slot -> expert, for the slots of this pool."""
        table = await self.store.hgetall(self._hot_key)
        return {slot: expert for slot, expert in table.items() if slot in self._busy}

    async def choose(self, expert: str) -> str:
        hot = await self.hot()
        holders = [s for s in self.slots if hot.get(s) == expert]
        if holders:
            return min(holders, key=lambda s: self._busy[s])
        used = await self.store.hgetall(self._used_key)
        return min(self.slots, key=lambda s: (self._busy[s], float(used.get(s, 0.0))))

    async def record(self, slot: str, expert: str) -> None:
        await self.store.hset(self._hot_key, {slot: expert})
        await self.store.hset(self._used_key, {slot: f"{time.time():.3f}"})

    def begin(self, slot: str) -> None:
        self._busy[slot] += 1

    def end(self, slot: str) -> None:
        self._busy[slot] -= 1
