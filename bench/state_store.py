"""What shared state costs a request: the per-request store calls (one rate-limit INCR, one affinity
GET + SET, two stats INCRs) on the embedded store, on Redis, and on Redis-down fallback.

Starts its own redis-server on a free port (stopped by `redis-cli shutdown`, never by name).
Run: `.venv/bin/python bench/state_store.py` (part of `make bench`). Numbers are per request, one
request at a time, on this machine; compare the rows of one run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from coe.state import InMemoryStore
from coe.state.redis_server import RedisServer
from coe.state.redis_store import RedisStore
from coe.state.resilient import ResilientStore

async def one_request(store, i: int) -> None:
    await store.incr(f"ratelimit:k:{i // 500}", 1, ttl_s=60)
    await store.get(f"affinity:conv{i % 100}")
    await store.set(f"affinity:conv{i % 100}", "writer\twriting", 86_400)
    await store.incr("stats:e:requests")
    await store.incr("stats:e:latency_ms_total", 12)


async def measure(store, requests: int) -> tuple[float, float]:
    for i in range(200):
        await one_request(store, i)
    times = []
    for i in range(requests):
        start = time.perf_counter()
        await one_request(store, i)
        times.append((time.perf_counter() - start) * 1e6)
    times.sort()
    return statistics.median(times), times[int(0.99 * len(times))]


async def main(requests: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp)).start()
        rows = [("in-process (embedded default)", await measure(InMemoryStore(), requests))]
        redis = RedisStore(server.url)
        rows.append(("Redis", await measure(redis, requests)))
        resilient = ResilientStore(RedisStore(server.url), retry_interval_s=1.0)
        rows.append(("Redis through ResilientStore (up)", await measure(resilient, requests)))
        server.stop()
        rows.append(("ResilientStore, Redis down (local fallback)", await measure(resilient, requests)))
        await redis.close()
        await resilient.close()
    print(f"{'store':<46} {'p50 us':>8} {'p99 us':>8}   (5 store calls per request, {requests} requests)")
    for name, (p50, p99) in rows:
        print(f"{name:<46} {p50:>8.0f} {p99:>8.0f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="timed requests per store (after 200 untimed)")
    asyncio.run(main(parser.parse_args().requests))
