"""What the in-process slot tests share: requests, expert entries, slots and waiting for promotions."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from coe.config import EngineOptions, ExpertConfig, PromptFormat, SwapPoolConfig
from coe.protocol import GenerationRequest, SamplingSettings
from coe.swap.slot import EngineSlot

PROMPTS = ["What is the capital of France?", "Write one sentence about the sea."]


def request(prompt: str, max_tokens: int = 16) -> GenerationRequest:
    return GenerationRequest(
        request_id=uuid.uuid4().hex,
        messages=({"role": "user", "content": prompt},),
        sampling=SamplingSettings(temperature=0.0, max_tokens=max_tokens),
    )


def expert(expert_id: str) -> ExpertConfig:
    return ExpertConfig(id=expert_id, weights="/unused", prompt_format=PromptFormat.chat,
                        engine=EngineOptions(max_model_len=512, max_num_seqs=8, cpu_bind="0"))


def new_slot(name: str, expert_ids: list[str], checkpoints: dict[str, Path], root: Path) -> EngineSlot:
    pool = SwapPoolConfig(id=name, experts=expert_ids, warm_gib=1.0, warm_dir=Path("/dev/shm") / f"coe-test-{uuid.uuid4().hex[:8]}")
    return EngineSlot(name, pool, {e: expert(e) for e in expert_ids}, checkpoints, root / "images")


async def answers(s: EngineSlot, expert_id: str) -> list[str]:
    return [(await s.chat(expert_id, request(p))).text for p in PROMPTS]


@asynccontextmanager
async def running_slot(name: str, expert_ids: list[str], checkpoints: dict[str, Path], root: Path) -> AsyncIterator[EngineSlot]:
    """A started slot; shut down afterwards, its tmpfs warm tier removed (tmpfs is RAM)."""
    slot = new_slot(name, expert_ids, checkpoints, root)
    await slot.start()
    try:
        yield slot
    finally:
        await slot.shutdown()
        shutil.rmtree(slot.pool.warm_dir, ignore_errors=True)


async def fresh_answers(expert_id: str, checkpoints: dict[str, Path], root: Path) -> list[str]:
    """Greedy answers of an engine booted directly on the expert's checkpoint, never swapped."""
    async with running_slot(f"fresh-{expert_id}", [expert_id], checkpoints, root) as fresh:
        return await answers(fresh, expert_id)


async def settle(slot: EngineSlot) -> None:
    """Waits for background promotions so tier assertions are deterministic."""
    await asyncio.sleep(0)
    await asyncio.gather(*list(slot._promoting.values()))


async def swap_to(slot: EngineSlot, expert_id: str) -> tuple[list[str], str]:
    out = await answers(slot, expert_id)
    await settle(slot)
    return out, slot.last_swap["source"]
