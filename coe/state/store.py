"""The key-value interface every piece of shared state goes through.

Replicas of the ingress and of the engine slots must agree on a few small facts (which expert is hot
where, per-key counters, conversation affinity). A single machine needs no server for that, so the
embedded default is a per-process dictionary; with Redis configured the same calls reach Redis. The
interface is the small subset of Redis both can honour, async because callers live on event loops.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod


class StateStore(ABC):
    """Strings in, strings out. Keys are namespaced by the implementation, not by callers."""

    @abstractmethod
    async def get(self, key: str) -> str | None: ...

    @abstractmethod
    async def set(self, key: str, value: str, ttl_s: float | None = None) -> None: ...

    @abstractmethod
    async def delete(self, key: str) -> None: ...

    @abstractmethod
    async def incr(self, key: str, amount: int = 1, ttl_s: float | None = None) -> int:
        """Adds to an integer counter; `ttl_s` is applied when the counter is created (fixed windows)."""

    @abstractmethod
    async def hset(self, key: str, mapping: dict[str, str]) -> None: ...

    @abstractmethod
    async def hgetall(self, key: str) -> dict[str, str]: ...

    @abstractmethod
    async def hdel(self, key: str, *fields: str) -> None: ...

    async def close(self) -> None:
        return None


class InMemoryStore(StateStore):
    """The embedded default: one process's dictionary, with Redis-like expiry semantics."""

    def __init__(self) -> None:
        self._values: dict[str, object] = {}
        self._expires: dict[str, float] = {}
        self._lock = asyncio.Lock()

    def _live(self, key: str) -> object | None:
        deadline = self._expires.get(key)
        if deadline is not None and time.monotonic() >= deadline:
            self._values.pop(key, None)
            self._expires.pop(key, None)
        return self._values.get(key)

    def _expire(self, key: str, ttl_s: float | None) -> None:
        if ttl_s is None:
            self._expires.pop(key, None)
        else:
            self._expires[key] = time.monotonic() + ttl_s

    async def get(self, key: str) -> str | None:
        value = self._live(key)
        return value if isinstance(value, str) else None

    async def set(self, key: str, value: str, ttl_s: float | None = None) -> None:
        self._values[key] = value
        self._expire(key, ttl_s)

    async def delete(self, key: str) -> None:
        self._values.pop(key, None)
        self._expires.pop(key, None)

    async def incr(self, key: str, amount: int = 1, ttl_s: float | None = None) -> int:
        async with self._lock:
            current = self._live(key)
            value = int(current) + amount if isinstance(current, str) else amount
            self._values[key] = str(value)
            if current is None:
                self._expire(key, ttl_s)
            return value

    async def hset(self, key: str, mapping: dict[str, str]) -> None:
        table = self._live(key)
        if not isinstance(table, dict):
            table = {}
            self._values[key] = table
        table.update(mapping)

    async def hgetall(self, key: str) -> dict[str, str]:
        table = self._live(key)
        return dict(table) if isinstance(table, dict) else {}

    async def hdel(self, key: str, *fields: str) -> None:
        table = self._live(key)
        if isinstance(table, dict):
            for field in fields:
                table.pop(field, None)

    # -- used by ResilientStore, which keeps this store as a mirror of what it wrote to Redis --

    async def mirror_counter(self, key: str, value: int, ttl_s: float | None = None) -> None:
        """Records a counter's value as Redis reported it; `ttl_s` applies only if the key is new here."""
        new = self._live(key) is None
        self._values[key] = str(value)
        if new:
            self._expire(key, ttl_s)

    def entries(self) -> list[tuple[str, str | dict[str, str], float | None]]:
        """Every live key as (key, value or hash copy, seconds left or None): what a resync writes back."""
        now = time.monotonic()
        out: list[tuple[str, str | dict[str, str], float | None]] = []
        for key in list(self._values):
            value = self._live(key)
            if value is None:
                continue
            deadline = self._expires.get(key)
            out.append((key, dict(value) if isinstance(value, dict) else value, None if deadline is None else deadline - now))
        return out
