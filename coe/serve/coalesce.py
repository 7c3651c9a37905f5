"""Merge the stream pieces that are already waiting into one, so a busy ingress does per-chunk work
(SSE framing, JSON, one write through the HTTP proxy) once per batch instead of once per token.

An idle ingress sees no change: a piece that arrives alone is passed on alone, at once. Only when
the consumer falls behind the producer (many streams on few cores) do the pieces it has not read yet
become one. Text is concatenated in order; a piece with a finish reason or usage ends its batch, so
the last piece still carries them. An error from the producer is raised after the text that came
before it has been passed on (mid-stream continuation needs exactly that text).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from coe.protocol import GenerationDelta

_END = object()


async def coalesced(pieces: AsyncIterator[GenerationDelta], max_queued: int = 256) -> AsyncIterator[GenerationDelta]:
    """`pieces`, read ahead by a task into a bounded queue, yielded merged batch by batch. Closing
    this generator (a client that went away) cancels the reader, which closes `pieces`."""
    queue: asyncio.Queue[object] = asyncio.Queue(max_queued)

    async def read() -> None:
        try:
            async for piece in pieces:
                await queue.put(piece)
            await queue.put(_END)
        except Exception as err:  # noqa: BLE001 - handed to the consumer, which raises it
            await queue.put(err)

    reader = asyncio.create_task(read())
    try:
        while True:
            item = await queue.get()
            texts: list[str] = []
            last: GenerationDelta | None = None
            while True:
                if item is _END or isinstance(item, BaseException):
                    break
                assert isinstance(item, GenerationDelta)
                texts.append(item.text)
                last = item
                if item.finish_reason is not None or item.usage is not None or queue.empty():
                    item = None
                    break
                item = queue.get_nowait()
            if last is not None:
                yield GenerationDelta("".join(texts), last.finish_reason, last.usage)
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
    finally:
        reader.cancel()
        try:
            await reader
        except asyncio.CancelledError:
            pass
        close = getattr(pieces, "aclose", None)
        if close is not None:
            await close()
