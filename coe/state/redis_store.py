"""The StateStore on Redis: what makes every ingress replica, on every node, see the same state.

Timeouts are short and redis-py's own retries are off on purpose: a slow or absent Redis must fail
fast so `ResilientStore` can answer from local state within the request, instead of holding the
request for seconds of reconnect attempts.
"""

from __future__ import annotations

import asyncio

from coe.state.store import StateStore

DEFAULT_PREFIX = "coe:"


def redis_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean "Redis is not reachable now" (not a bug in the command)."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return (RedisConnectionError, RedisTimeoutError, OSError, asyncio.TimeoutError)


def _ms(ttl_s: float | None) -> int | None:
    return None if ttl_s is None else max(1, int(ttl_s * 1000))


class RedisStore(StateStore):
    """Every key is stored as `<prefix><key>`, so several deployments can share one Redis."""

    def __init__(self, url: str, prefix: str = DEFAULT_PREFIX, timeout_s: float = 0.25) -> None:
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self.url = url
        self.prefix = prefix
        self._client = aioredis.Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
            retry_on_timeout=False,
        )

    def _k(self, key: str) -> str:
        return self.prefix + key

    async def ping(self) -> None:
        await self._client.ping()

    async def reset(self) -> None:
        """Drops every pooled connection: after a Redis restart they are all dead, not just the first."""
        await self._client.connection_pool.disconnect()

    async def get(self, key: str) -> str | None:
        return await self._client.get(self._k(key))

    async def set(self, key: str, value: str, ttl_s: float | None = None) -> None:
        await self._client.set(self._k(key), value, px=_ms(ttl_s))

    async def delete(self, key: str) -> None:
        await self._client.delete(self._k(key))

    async def incr(self, key: str, amount: int = 1, ttl_s: float | None = None) -> int:
        # SET NX PX + INCRBY in one transaction: the window's expiry is set exactly once, atomically.
        async with self._client.pipeline(transaction=True) as pipe:
            if ttl_s is not None:
                pipe.set(self._k(key), 0, px=_ms(ttl_s), nx=True)
            pipe.incrby(self._k(key), amount)
            results = await pipe.execute()
        return int(results[-1])

    async def hset(self, key: str, mapping: dict[str, str]) -> None:
        if mapping:
            await self._client.hset(self._k(key), mapping=mapping)

    async def hgetall(self, key: str) -> dict[str, str]:
        return await self._client.hgetall(self._k(key))

    async def hdel(self, key: str, *fields: str) -> None:
        if fields:
            await self._client.hdel(self._k(key), *fields)

    # -- used by ResilientStore to resync after an outage --

    async def exists(self, key: str) -> bool:
        return bool(await self._client.exists(self._k(key)))

    async def set_if_absent(self, key: str, value: str, ttl_s: float | None = None) -> bool:
        return bool(await self._client.set(self._k(key), value, px=_ms(ttl_s), nx=True))

    async def hset_if_absent(self, key: str, mapping: dict[str, str]) -> bool:
        """Restores a whole hash only where Redis has none: Redis's copy, if any, is newer."""
        if not mapping or await self.exists(key):
            return False
        await self._client.hset(self._k(key), mapping=mapping)
        return True

    async def hset_missing_fields(self, key: str, mapping: dict[str, str]) -> int:
        async with self._client.pipeline(transaction=False) as pipe:
            for field, value in mapping.items():
                pipe.hsetnx(self._k(key), field, value)
            return sum(int(x) for x in await pipe.execute())

    async def close(self) -> None:
        await self._client.aclose()
