"""The circuit breaker lives in the state store: with a real redis-server, failures seen by one
ingress replica open it for every replica, and exactly one replica sends the half-open probe."""

from __future__ import annotations

import asyncio

from coe.config import BreakerPolicy
from coe.failover.breaker import CircuitBreaker
from coe.state.redis_store import RedisStore


async def test_one_replicas_failures_open_the_breaker_for_all(redis_server) -> None:
    policy = BreakerPolicy(failures=3, window_s=30, open_s=0.5)
    first, second = (CircuitBreaker("remote-a", policy, RedisStore(redis_server.url, prefix="coe:")) for _ in range(2))
    for _ in range(3):
        assert await first.retry_after_s() is None
        await first.failed()
    wait = await second.retry_after_s()  # the other replica never saw a failure
    assert wait is not None and 0 < wait <= 0.5
    assert await second.state() == "open"
    await asyncio.sleep(0.6)
    probes = [await first.retry_after_s(), await second.retry_after_s()]
    assert probes.count(None) == 1  # one half-open probe across both replicas
    await first.succeeded()
    assert await second.state() == "closed" and await second.retry_after_s() is None


async def test_a_healthy_expert_costs_no_store_round_trip_per_request(redis_server) -> None:
    """"closed" is remembered for CLOSED_CACHE_S: 100 healthy requests read the store once, and a
    trip by another replica reaches this one within that time."""
    from coe.failover.breaker import CLOSED_CACHE_S

    store = RedisStore(redis_server.url, prefix="coe:")
    reads = 0
    get = store.get

    async def counted(key: str):
        nonlocal reads
        reads += 1
        return await get(key)

    store.get = counted  # type: ignore[method-assign]
    policy = BreakerPolicy(failures=1, window_s=30, open_s=5)
    mine, other = CircuitBreaker("remote-b", policy, store), CircuitBreaker("remote-b", policy, RedisStore(redis_server.url, prefix="coe:"))
    for _ in range(100):
        assert await mine.retry_after_s() is None
        await mine.succeeded()
    assert reads == 2  # the open key and the tripped key, once
    await other.failed()  # another replica trips it
    await asyncio.sleep(CLOSED_CACHE_S + 0.05)
    assert await mine.retry_after_s() is not None
