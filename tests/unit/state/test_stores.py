"""The StateStore contract, held by the in-process store, the Redis store (a real redis-server) and the
resilient wrapper; plus what the wrapper does when Redis stops, stalls and comes back."""

from __future__ import annotations

import asyncio
import logging

import pytest

from coe.config import StateConfig
from coe.state import InMemoryStore, open_store
from coe.state.redis_server import RedisServer
from coe.state.redis_store import RedisStore
from coe.state.resilient import ResilientStore


@pytest.fixture(params=["memory", "redis", "resilient"])
async def store(request, tmp_path):
    if request.param == "memory":
        yield InMemoryStore()
        return
    server = RedisServer(tmp_path).start()
    remote = RedisStore(server.url, prefix="t:")
    store = remote if request.param == "redis" else ResilientStore(remote)
    try:
        yield store
    finally:
        await store.close()
        server.stop()


async def test_strings_counters_hashes_and_expiry(store) -> None:
    assert await store.get("a") is None
    await store.set("a", "1")
    assert await store.get("a") == "1"
    await store.delete("a")
    assert await store.get("a") is None

    assert await store.incr("n") == 1
    assert await store.incr("n", 4) == 5
    assert await store.incr("w", 1, ttl_s=0.15) == 1
    assert await store.incr("w", 1, ttl_s=0.15) == 2  # the window's expiry is set once, not extended

    await store.hset("h", {"x": "1", "y": "2"})
    await store.hset("h", {"y": "3"})
    assert await store.hgetall("h") == {"x": "1", "y": "3"}
    await store.hdel("h", "x")
    assert await store.hgetall("h") == {"y": "3"}
    assert await store.hgetall("missing") == {}

    await store.set("t", "v", ttl_s=0.15)
    await asyncio.sleep(0.25)
    assert await store.get("t") is None
    assert await store.get("w") is None


async def test_redis_keys_carry_the_prefix(redis_server: RedisServer) -> None:
    store = RedisStore(redis_server.url, prefix="tenant1:")
    await store.set("affinity:k", "writer\twriting")
    await store.incr("ratelimit:abc:1", ttl_s=60)
    assert redis_server.keys() == ["tenant1:affinity:k", "tenant1:ratelimit:abc:1"]
    assert 0 < int(redis_server.command("pttl", "tenant1:ratelimit:abc:1")) <= 60_000
    await store.close()


async def test_outage_falls_back_warns_once_and_resyncs_into_an_emptied_redis(redis_server, caplog) -> None:
    store = ResilientStore(RedisStore(redis_server.url), retry_interval_s=0.1)
    await store.set("before", "b")
    assert await store.incr("count") == 1
    await store.hset("placement", {"smollm2": "node-a"})

    redis_server.stop()  # shutdown nosave: Redis comes back empty
    with caplog.at_level(logging.WARNING, logger="coe.state.resilient"):
        assert await store.get("before") == "b"  # from the local mirror
        assert not store.redis_up and store.outages == 1
        await store.set("during", "d", ttl_s=60)
        assert await store.incr("count") == 2
        await store.hset("placement", {"gemma": "node-b"})
        await store.delete("before")
        for _ in range(20):
            await store.get("during")
    warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(warnings) == 1, "one warning per outage, not one per call"
    assert store.pending_writes > 0

    redis_server.start()
    await asyncio.sleep(0.15)
    assert await store.get("during") == "d"  # this call probes, resyncs, then reads Redis
    assert store.redis_up and store.resyncs == 1 and store.pending_writes == 0
    assert redis_server.command("get", "coe:during") == "d"
    assert redis_server.command("get", "coe:count") == "2"  # local total restored where Redis lost it
    assert redis_server.command("exists", "coe:before") == "0"  # the delete was replayed
    assert await store.hgetall("placement") == {"smollm2": "node-a", "gemma": "node-b"}
    assert 0 < int(redis_server.command("pttl", "coe:during")) <= 60_000
    await store.close()


async def test_a_stalled_redis_times_out_fast_and_counters_merge_on_return(redis_server) -> None:
    """CLIENT PAUSE stalls every command without losing data: the timeout path, not connection refused."""
    store = ResilientStore(RedisStore(redis_server.url, timeout_s=0.2), retry_interval_s=0.1)
    other = RedisStore(redis_server.url)  # another replica, on Redis throughout
    assert await store.incr("hits") == 1
    redis_server.command("client", "pause", "1200", "ALL")
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await store.incr("hits") == 2  # answered locally
    assert loop.time() - started < 1.0
    assert not store.redis_up
    await store.incr("hits")
    await asyncio.sleep(1.3)  # the pause ends; meanwhile the other replica counted too
    assert await other.incr("hits", 10) == 11
    await asyncio.sleep(0.1)
    assert await store.incr("hits") == 14  # 11 + the 2 local increments replayed + this one
    assert store.redis_up
    await store.close()
    await other.close()


async def test_open_store_picks_the_embedded_default_or_redis(monkeypatch, redis_server) -> None:
    monkeypatch.delenv("COE_REDIS_URL", raising=False)
    assert isinstance(open_store(StateConfig()), InMemoryStore)
    store = open_store(StateConfig(redis_url=redis_server.url, key_prefix="p:"))
    assert isinstance(store, ResilientStore) and store.remote.prefix == "p:"
    await store.set("k", "v")
    assert redis_server.command("get", "p:k") == "v"
    await store.close()
    monkeypatch.setenv("COE_REDIS_URL", redis_server.url)
    assert isinstance(open_store(StateConfig()), ResilientStore)
