"""Placement over both stores: the embedded in-process one and a real redis-server."""

from __future__ import annotations

from pathlib import Path


from coe.state.redis_server import RedisServer
from coe.state.redis_store import RedisStore
from coe.state.store import InMemoryStore, StateStore
from coe.swap.placement import Placement




async def test_in_process_placement_prefers_the_holder_then_the_idle_slot() -> None:
    p = Placement(InMemoryStore(), "p", ["s0", "s1"])
    await p.record("s0", "code")
    assert await p.choose("code") == "s0"
    p.begin("s0")
    assert await p.choose("math") == "s1"  # s0 is busy and holds another expert
    p.end("s0")
    await p.record("s1", "math")
    assert await p.choose("writing") == "s0"  # both idle: the one used longest ago


async def test_redis_placement_is_shared_by_ingresses_and_survives_their_restart(tmp_path: Path) -> None:
    server = RedisServer(tmp_path).start()
    stores: list[StateStore] = []
    try:
        def new_store() -> StateStore:
            stores.append(RedisStore(server.url, prefix="coe-test:"))
            return stores[-1]

        first, second = Placement(new_store(), "p", ["s0", "s1"]), Placement(new_store(), "p", ["s0", "s1"])
        await first.record("s1", "math")
        assert await second.choose("math") == "s1"  # another ingress replica sees it
        restarted = Placement(new_store(), "p", ["s0", "s1"])  # a fresh process: nothing in memory
        assert await restarted.hot() == {"s1": "math"}
        assert "coe-test:placement:p:hot" in server.keys()
    finally:
        for store in stores:
            await store.close()
        server.stop()
