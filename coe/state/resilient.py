"""Redis when it answers, local state when it does not, and a resync when it comes back.

Shared state (affinity, rate-limit counters, stats) is an optimisation of answers, never a reason to
fail a request. So every write also lands in a local `InMemoryStore` mirror; when Redis stops
answering, reads and writes continue on the mirror, the outage is logged once and exported
(`redis_up`), and what was written meanwhile is queued. At most once per `retry_interval_s` an
operation probes Redis; when it answers again the queue is replayed and local keys Redis lost (a
restarted, empty Redis) are written back, then Redis is the source of truth again.

Merging rules on resync: strings and hash fields written during the outage overwrite Redis's copy
(they are newer), and hashes touched during the outage get back the fields Redis lost; counters add
the increments made during the outage, or restore the local total where Redis lost the key; every
other local key is written back only where Redis has none. Concurrent writers during an outage are
not serialised: the last replica to resync wins a string, which suits hints like affinity and stats.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass

from coe.state.redis_store import RedisStore, redis_errors
from coe.state.store import InMemoryStore, StateStore

log = logging.getLogger(__name__)


@dataclass
class _Pending:
    op: str  # "set" | "delete" | "hset" | "hdel"
    key: str
    args: tuple
    at: float


class ResilientStore(StateStore):
    def __init__(
        self,
        remote: RedisStore,
        local: InMemoryStore | None = None,
        retry_interval_s: float = 1.0,
        max_pending: int = 100_000,
    ) -> None:
        self.remote = remote
        self.local = local or InMemoryStore()
        self.retry_interval_s = retry_interval_s
        self.redis_up = True  # optimistic: the first failing call finds out
        self.outages = 0
        self.resyncs = 0
        self.dropped_writes = 0
        self._pending: deque[_Pending] = deque()
        self._max_pending = max_pending
        self._counter_deltas: dict[str, tuple[int, float | None, float]] = {}  # key -> (delta, ttl_s, at)
        self._next_probe = 0.0
        self._lock = asyncio.Lock()

    # -- availability --

    async def available(self) -> bool:
        """True when calls go to Redis; probes (and resyncs) when the retry interval has passed."""
        if self.redis_up:
            return True
        if time.monotonic() < self._next_probe:
            return False
        async with self._lock:
            if self.redis_up or time.monotonic() < self._next_probe:
                return self.redis_up
            self._next_probe = time.monotonic() + self.retry_interval_s
            try:
                await self.remote.reset()
                await self.remote.ping()
                restored = await self._resync()
            except redis_errors() as err:
                log.debug("redis still unreachable: %s", err)
                return False
            self.redis_up = True
            self.resyncs += 1
            log.warning("shared state: Redis at %s is back; resynced %d key(s), using Redis again", self.remote.url, restored)
            return True

    def _went_down(self, err: BaseException) -> None:
        if self.redis_up:
            self.redis_up = False
            self.outages += 1
            log.warning(
                "shared state: Redis at %s unreachable (%s: %s); continuing on this replica's local state, "
                "retrying every %.1fs", self.remote.url, type(err).__name__, err, self.retry_interval_s,
            )
        self._next_probe = time.monotonic() + self.retry_interval_s

    def _queue(self, op: str, key: str, *args: object) -> None:
        if len(self._pending) >= self._max_pending:
            self._pending.popleft()
            self.dropped_writes += 1
        self._pending.append(_Pending(op, key, args, time.monotonic()))

    @property
    def pending_writes(self) -> int:
        return len(self._pending) + len(self._counter_deltas)

    # -- the StateStore interface --

    async def get(self, key: str) -> str | None:
        if await self.available():
            try:
                return await self.remote.get(key)
            except redis_errors() as err:
                self._went_down(err)
        return await self.local.get(key)

    async def hgetall(self, key: str) -> dict[str, str]:
        if await self.available():
            try:
                return await self.remote.hgetall(key)
            except redis_errors() as err:
                self._went_down(err)
        return await self.local.hgetall(key)

    async def set(self, key: str, value: str, ttl_s: float | None = None) -> None:
        await self.local.set(key, value, ttl_s)
        await self._write("set", key, value, ttl_s)

    async def delete(self, key: str) -> None:
        await self.local.delete(key)
        self._counter_deltas.pop(key, None)
        await self._write("delete", key)

    async def hset(self, key: str, mapping: dict[str, str]) -> None:
        await self.local.hset(key, mapping)
        await self._write("hset", key, dict(mapping))

    async def hdel(self, key: str, *fields: str) -> None:
        await self.local.hdel(key, *fields)
        await self._write("hdel", key, *fields)

    async def incr(self, key: str, amount: int = 1, ttl_s: float | None = None) -> int:
        if await self.available():
            try:
                value = await self.remote.incr(key, amount, ttl_s)
            except redis_errors() as err:
                self._went_down(err)
            else:
                await self.local.mirror_counter(key, value, ttl_s)
                return value
        value = await self.local.incr(key, amount, ttl_s)
        delta, first_ttl, at = self._counter_deltas.get(key, (0, ttl_s, time.monotonic()))
        self._counter_deltas[key] = (delta + amount, first_ttl, at)
        return value

    async def _write(self, op: str, key: str, *args: object) -> None:
        if await self.available():
            try:
                await self._apply(_Pending(op, key, args, time.monotonic()))
                return
            except redis_errors() as err:
                self._went_down(err)
        self._queue(op, key, *args)

    async def _apply(self, item: _Pending) -> None:
        if item.op == "set":
            value, ttl_s = item.args
            if ttl_s is not None:
                ttl_s -= time.monotonic() - item.at
                if ttl_s <= 0:
                    return
            await self.remote.set(item.key, value, ttl_s)
        elif item.op == "delete":
            await self.remote.delete(item.key)
        elif item.op == "hset":
            await self.remote.hset(item.key, item.args[0])
        elif item.op == "hdel":
            await self.remote.hdel(item.key, *item.args)

    # -- resync --

    async def _resync(self) -> int:
        """Replays the outage's writes, then restores keys Redis lost. Raises if Redis drops again."""
        restored = 0
        touched_hashes = {p.key for p in self._pending if p.op in ("hset", "hdel")}
        while self._pending:
            await self._apply(self._pending[0])
            self._pending.popleft()
            restored += 1
        while self._counter_deltas:  # increments made while this loop awaits Redis are picked up too
            key, (delta, ttl_s, at) = next(iter(self._counter_deltas.items()))
            left = None if ttl_s is None else ttl_s - (time.monotonic() - at)
            if left is None or left > 0:
                if await self.remote.exists(key):
                    await self.remote.incr(key, delta)
                else:
                    total = await self.local.get(key)
                    if total is not None:
                        await self.remote.set_if_absent(key, total, left)
                restored += 1
            now = self._counter_deltas.get(key)  # gone if the key was deleted meanwhile
            if now is None or now[0] == delta:
                self._counter_deltas.pop(key, None)
            else:
                self._counter_deltas[key] = (now[0] - delta, now[1], now[2])
        for key, value, left in self.local.entries():
            if left is not None and left <= 0:
                continue
            if isinstance(value, dict):
                if key in touched_hashes:  # this replica's copy is the newest: restore fields Redis lost
                    restored += await self.remote.hset_missing_fields(key, value)
                else:
                    restored += await self.remote.hset_if_absent(key, value)
            else:
                restored += await self.remote.set_if_absent(key, value, left)
        return restored

    async def close(self) -> None:
        await self.remote.close()
