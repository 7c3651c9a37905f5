"""The Ray Serve deployment that hosts one engine slot of a swap pool (one replica per slot).

Each slot is its own deployment so the ingress can address the slot that already holds an expert;
the slot's own scheduler then guarantees that a request is answered by the expert it named.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from coe.config import ExpertConfig, SwapPoolConfig
from coe.protocol import GenerationDelta, GenerationRequest, GenerationResult
from coe.serve.gc_heap import freeze_gc_heap
from coe.swap.slot import EngineSlot


class SlotDeployment:
    async def __init__(
        self,
        name: str,
        pool: SwapPoolConfig,
        experts: dict[str, ExpertConfig],
        checkpoints: dict[str, str],
        image_root: str,
        cpu_bind: str | None,
    ) -> None:
        paths = {k: Path(v) for k, v in checkpoints.items()}
        self.slot = EngineSlot(name, pool, experts, paths, Path(image_root), cpu_bind)
        await self.slot.start()
        freeze_gc_heap(f"swap slot '{name}'")

    async def chat(self, expert: str, request: GenerationRequest) -> GenerationResult:
        return await self.slot.chat(expert, request)

    async def chat_stream(self, expert: str, request: GenerationRequest) -> AsyncIterator[GenerationDelta]:
        async for delta in self.slot.chat_stream(expert, request):
            yield delta

    async def describe(self) -> dict:
        return self.slot.describe()

    async def check_health(self) -> None:
        await self.slot.check_health()

    def __del__(self) -> None:
        self.slot.backend.close()
