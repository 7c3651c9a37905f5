"""The slot scheduler's guarantees, with a swap callback that records what the engine would hold.

The callback stands in for the engine copy only; the admission logic under test is the real one.
Each request checks, while it is "running", that the slot holds its expert: a wrong-expert answer
would fail the test.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from coe.swap.scheduler import BatchingPolicy, SwapScheduler


class Engine:
    def __init__(self, current: str, fail: set[str] = frozenset()) -> None:
        self.holds = current
        self.swaps: list[str] = []
        self.fail = fail
        self.running = 0

    async def swap(self, expert: str) -> None:
        assert self.running == 0, "swap while requests are in flight"
        await asyncio.sleep(0.005)
        if expert in self.fail:
            raise RuntimeError(f"refused {expert}")
        self.holds = expert
        self.swaps.append(expert)


async def serve(scheduler: SwapScheduler, engine: Engine, expert: str, seconds: float = 0.01) -> str:
    async with scheduler.admit(expert):
        engine.running += 1
        try:
            assert engine.holds == expert
            await asyncio.sleep(seconds)
            assert engine.holds == expert
        finally:
            engine.running -= 1
    return expert


async def burst(policy: BatchingPolicy, seed: int = 0, n: int = 60) -> Engine:
    engine = Engine("a")
    scheduler = SwapScheduler("a", engine.swap, policy, max_wait_s=0.2)
    rng = random.Random(seed)
    experts = [rng.choice("abcd") for _ in range(n)]
    done = await asyncio.gather(*(serve(scheduler, engine, e) for e in experts))
    assert done == experts  # every request answered, none lost
    return engine


async def test_grouping_needs_fewer_swaps_than_fifo_on_a_mixed_burst() -> None:
    fifo, grouped = await burst(BatchingPolicy.fifo), await burst(BatchingPolicy.group)
    assert len(grouped.swaps) <= 4  # one per distinct expert at most (3 others + maybe back)
    assert len(fifo.swaps) > 2 * len(grouped.swaps)


async def swaps_after_a_batch_of_a(max_wait_s: float, a_seconds: float) -> list[str]:
    """One request for c queues first, then three for b, while a's request runs for `a_seconds`."""
    engine = Engine("a")
    scheduler = SwapScheduler("a", engine.swap, BatchingPolicy.group, max_wait_s=max_wait_s)
    running = asyncio.create_task(serve(scheduler, engine, "a", a_seconds))
    await asyncio.sleep(0.01)
    one_c = asyncio.create_task(serve(scheduler, engine, "c"))
    await asyncio.sleep(0.001)
    three_b = [asyncio.create_task(serve(scheduler, engine, "b")) for _ in range(3)]
    await asyncio.gather(running, one_c, *three_b)
    return engine.swaps


async def test_when_nobody_is_overdue_the_largest_queue_goes_next() -> None:
    assert await swaps_after_a_batch_of_a(max_wait_s=5.0, a_seconds=0.05) == ["b", "c"]


async def test_an_overdue_request_goes_before_a_larger_queue() -> None:
    # c waits past max_wait behind a's request: it goes first although b has more queued
    assert await swaps_after_a_batch_of_a(max_wait_s=0.02, a_seconds=0.06) == ["c", "b"]


async def test_no_expert_starves_behind_a_steady_stream() -> None:
    engine = Engine("a")
    scheduler = SwapScheduler("a", engine.swap, BatchingPolicy.group, max_wait_s=0.05)
    stop = asyncio.Event()

    async def stream_of_a() -> None:
        while not stop.is_set():
            asyncio.get_running_loop().create_task(serve(scheduler, engine, "a", 0.02))
            await asyncio.sleep(0.005)

    feeder = asyncio.create_task(stream_of_a())
    await asyncio.sleep(0.05)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.wait_for(serve(scheduler, engine, "b"), timeout=2)
    waited = loop.time() - started
    stop.set()
    await feeder
    assert waited < 0.5, f"b waited {waited:.2f}s behind a's stream"


async def alternating_requests(gather_s: float) -> tuple[Engine, float]:
    """b, a, b, a, b, 30 ms apart, reach an idle engine that holds a; returns the first b's wait."""
    engine = Engine("a")
    scheduler = SwapScheduler("a", engine.swap, BatchingPolicy.group, max_wait_s=1.0, gather_s=gather_s)
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def first_b() -> float:
        await serve(scheduler, engine, "b")
        return loop.time() - started

    first = asyncio.create_task(first_b())
    rest = []
    for expert in "abab":
        await asyncio.sleep(0.03)
        rest.append(asyncio.create_task(serve(scheduler, engine, expert)))
    await asyncio.gather(*rest)
    return engine, await first


async def test_gathering_lets_spaced_requests_share_one_swap_for_a_bounded_wait() -> None:
    eager, eager_wait = await alternating_requests(gather_s=0.0)
    gathered, gathered_wait = await alternating_requests(gather_s=0.15)
    assert eager.swaps == ["b", "a", "b", "a", "b"]  # work-conserving: every alternation on an idle engine
    assert eager_wait < 0.1
    assert gathered.swaps == ["b"]  # a's requests ran while b gathered; b's three share one swap
    assert 0.15 <= gathered_wait < 0.6, f"the first request waited {gathered_wait:.3f}s for a 0.15s gather"


async def test_gathering_serves_the_current_expert_meanwhile_and_then_swaps() -> None:
    engine = Engine("a")
    scheduler = SwapScheduler("a", engine.swap, BatchingPolicy.group, max_wait_s=1.0, gather_s=0.2)
    loop = asyncio.get_running_loop()
    b = asyncio.create_task(serve(scheduler, engine, "b"))
    await asyncio.sleep(0.02)
    started = loop.time()
    await asyncio.wait_for(serve(scheduler, engine, "a"), timeout=1)  # a is hot: no wait for b's gathering
    assert loop.time() - started < 0.1
    await asyncio.wait_for(b, timeout=2)
    assert engine.swaps == ["b"]


async def test_failed_swap_fails_only_that_experts_requests() -> None:
    engine = Engine("a", fail={"bad"})
    scheduler = SwapScheduler("a", engine.swap, BatchingPolicy.group)
    results = await asyncio.gather(
        serve(scheduler, engine, "a"), serve(scheduler, engine, "bad"), serve(scheduler, engine, "bad"),
        serve(scheduler, engine, "b"), return_exceptions=True,
    )
    assert results[0] == "a" and results[3] == "b"
    assert all(isinstance(r, RuntimeError) for r in results[1:3])
    assert scheduler.in_flight == 0 and not scheduler.queued


async def test_a_cancelled_waiter_leaves_no_trace() -> None:
    engine = Engine("a")
    scheduler = SwapScheduler("a", engine.swap, BatchingPolicy.group)
    running = asyncio.create_task(serve(scheduler, engine, "a", 0.1))
    await asyncio.sleep(0.01)
    waiting = asyncio.create_task(serve(scheduler, engine, "b"))
    await asyncio.sleep(0.01)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await running
    assert scheduler.in_flight == 0 and not scheduler.queued and engine.swaps == []


async def test_a_full_queue_refuses_at_once_with_retry_after_and_serves_the_rest() -> None:
    from coe.errors import Overloaded

    engine = Engine("a")
    scheduler = SwapScheduler("a", engine.swap, BatchingPolicy.group, max_wait_s=0.05, max_queued=4)
    async with scheduler.admit("a"):  # a running request keeps "b" waiting, so "b" requests queue up
        tasks = [asyncio.create_task(serve(scheduler, engine, "b")) for _ in range(40)]  # 10x the queue
        await asyncio.sleep(0)
        assert len(scheduler._waiters) == 4  # memory stays bounded by the queue, not by the offered load
    results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout=10)
    refused = [r for r in results if isinstance(r, Overloaded)]
    assert len(refused) == 36 and results.count("b") == 4
    assert all(r.status_code == 503 and r.retry_after_s >= 1 for r in refused)


def test_the_refusal_keeps_its_retry_after_across_processes() -> None:
    import pickle

    from coe.errors import Overloaded
    from coe.serve.handle_client import _plain

    err = Overloaded("full")
    err.retry_after_s = 2.0
    again = pickle.loads(pickle.dumps(err))  # how Ray carries it from the slot replica to the ingress
    assert type(again) is Overloaded and again.retry_after_s == 2.0 and _plain(again).retry_after_s == 2.0
