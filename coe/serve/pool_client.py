"""The ingress side of a swap pool: an `ExpertBackend` per pooled expert that picks a slot.

The pick comes from `Placement` (the slot already holding the expert, else the least busy); the
answer is recorded back so the next request for the same expert lands on the same slot.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from coe.experts.base import ExpertBackend
from coe.protocol import GenerationDelta, GenerationRequest, GenerationResult, elapsed_ms
from coe.serve.handle_client import reraise_from_replica
from coe.swap.placement import Placement


class PooledExpertClient(ExpertBackend):
    def __init__(self, expert_id: str, slots: dict[str, Any], placement: Placement) -> None:
        self.expert_id = expert_id
        self.slots = slots
        self.placement = placement

    async def chat(self, request: GenerationRequest) -> GenerationResult:
        slot = await self.placement.choose(self.expert_id)
        self.placement.begin(slot)
        started = time.perf_counter()
        try:
            result = await self.slots[slot].chat.remote(self.expert_id, request)
        except Exception as err:
            reraise_from_replica(err, self.expert_id)
        finally:
            self.placement.end(slot)
        result.timings["handle"] = elapsed_ms(started)  # with the slot's queue and any swap inside it
        await self.placement.record(slot, self.expert_id)
        return result

    async def chat_stream(self, request: GenerationRequest) -> AsyncIterator[GenerationDelta]:
        slot = await self.placement.choose(self.expert_id)
        self.placement.begin(slot)
        try:
            stream = self.slots[slot].options(stream=True).chat_stream.remote(self.expert_id, request)
            first = True
            async for delta in stream:
                if first:
                    await self.placement.record(slot, self.expert_id)
                    first = False
                yield delta
        except Exception as err:
            reraise_from_replica(err, self.expert_id)
        finally:
            self.placement.end(slot)

    async def check_health(self) -> None:
        try:
            for handle in self.slots.values():
                await handle.check_health.remote()
        except Exception as err:
            reraise_from_replica(err, self.expert_id)


async def describe_slots(slots: dict[str, Any]) -> dict[str, dict]:
    """Every slot's `describe()`; a slot that cannot answer is reported as such, not raised."""
    out = {}
    for name, handle in slots.items():
        try:
            out[name] = await handle.describe.remote()
        except Exception as err:  # noqa: BLE001 - visibility must not fail the request
            out[name] = {"slot": name, "error": f"{type(err).__name__}: {err}"}
    return out
