"""Merging the stream pieces an ingress has not read yet: same text, same ending, same errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from coe.protocol import GenerationDelta, Usage
from coe.serve.coalesce import coalesced


async def _producer(n: int, pause_s: float = 0.0, fail: bool = False, closed: list | None = None) -> AsyncIterator[GenerationDelta]:
    try:
        for i in range(n):
            if pause_s:
                await asyncio.sleep(pause_s)
            yield GenerationDelta(f"t{i} ")
        if fail:
            raise RuntimeError("engine died")
        yield GenerationDelta("", finish_reason="length", usage=Usage(3, n))
    finally:
        if closed is not None:
            closed.append(True)


async def _collect(stream: AsyncIterator[GenerationDelta], consumer_pause_s: float = 0.0) -> list[GenerationDelta]:
    out = []
    async for piece in stream:
        out.append(piece)
        await asyncio.sleep(consumer_pause_s)
    return out


def test_a_slow_consumer_gets_fewer_pieces_with_the_same_text_and_ending() -> None:
    pieces = asyncio.run(_collect(coalesced(_producer(50, pause_s=0.001)), consumer_pause_s=0.01))
    # Uncoalesced: 51 pieces (50 texts and the ending). A consumer 10x slower than the producer takes
    # several texts per piece, so at most half as many; more than one, since it reads while they come.
    assert 1 < len(pieces) <= 25, len(pieces)
    assert "".join(p.text for p in pieces) == "".join(f"t{i} " for i in range(50))
    assert pieces[-1].finish_reason == "length" and pieces[-1].usage == Usage(3, 50)
    assert all(p.finish_reason is None for p in pieces[:-1])


def test_a_consumer_that_keeps_up_gets_every_piece_alone() -> None:
    pieces = asyncio.run(_collect(coalesced(_producer(5, pause_s=0.02))))
    assert [p.text for p in pieces[:4]] == ["t0 ", "t1 ", "t2 ", "t3 "]
    # the ending follows t4 without a pause, so it may be merged into it
    assert "".join(p.text for p in pieces[4:]) == "t4 " and pieces[-1].finish_reason == "length"


def test_an_error_comes_after_the_text_before_it() -> None:
    seen: list[str] = []

    async def run() -> None:
        async for piece in coalesced(_producer(4, fail=True)):
            seen.append(piece.text)
            await asyncio.sleep(0.01)

    with pytest.raises(RuntimeError, match="engine died"):
        asyncio.run(run())
    assert "".join(seen) == "t0 t1 t2 t3 "


def test_closing_early_stops_the_producer() -> None:
    closed: list[bool] = []

    async def run() -> None:
        stream = coalesced(_producer(1000, pause_s=0.001, closed=closed))
        async for _ in stream:
            break
        await stream.aclose()

    asyncio.run(run())
    assert closed == [True]
