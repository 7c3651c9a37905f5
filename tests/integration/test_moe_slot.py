"""Upcycled MoE experts swap through the tier manager like dense ones.

Two Mixtral checkpoints of one layout share an engine slot. Both are upcycled from SmolLM2 and a
synthetic variant (coe/models/variants.py) with zero routers, so ties send every token to expert 0:
`moe-base-first` computes with SmolLM2's FFN, `moe-variant-first` with the variant's, over the same
averaged attention. Their answers differ, and each must equal the answer of an engine booted directly on
its checkpoint, from every tier. This is the part dense experts do not test: on CPU vLLM pre-packs the
fused-MoE weights (w13/w2) into its grouped-GEMM layout after loading, and a slot image holds those
packed bytes, so copying an image back must restore exactly what the kernel reads.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import pytest_asyncio

from coe.models.prepare import prepare
from coe.models.variants import make_variant
from coe.moe.upcycle import upcycle
from coe.swap.slot import EngineSlot
from tests.integration.slot_helpers import answers, fresh_answers, running_slot, swap_to

os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

BASE = "smollm2-135m-instruct"
MOE_A, MOE_B = "moe-base-first", "moe-variant-first"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = prepare(BASE).path
    root = tmp_path_factory.mktemp("moe-pool")
    variant = make_variant(base, root / "variant", seed=1, noise=0.15)
    return {MOE_A: upcycle([base, variant], root / MOE_A, top_k=1).path,
            MOE_B: upcycle([variant, base], root / MOE_B, top_k=1).path}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def slot(checkpoints: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):
    async with running_slot("moe-slot", [MOE_A, MOE_B], checkpoints, tmp_path_factory.mktemp("slot")) as s:
        yield s


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def fresh_outputs(slot: EngineSlot, checkpoints: dict[str, Path], tmp_path_factory) -> dict[str, list[str]]:
    """The slot before its first swap is an engine booted on MOE_A; a second engine is booted on MOE_B."""
    assert slot.last_swap is None
    outputs = {MOE_A: await answers(slot, MOE_A),
               MOE_B: await fresh_answers(MOE_B, checkpoints, tmp_path_factory.mktemp("fresh"))}
    assert outputs[MOE_A] != outputs[MOE_B], "the two MoEs must answer differently for this test to mean anything"
    return outputs


async def test_moe_experts_swap_in_place_from_every_tier(slot: EngineSlot, fresh_outputs) -> None:
    slot.pool.prefetch = False  # this test drives the tiers itself
    assert await swap_to(slot, MOE_B) == (fresh_outputs[MOE_B], "checkpoint")
    assert await swap_to(slot, MOE_A) == (fresh_outputs[MOE_A], "cold")
    assert await swap_to(slot, MOE_B) == (fresh_outputs[MOE_B], "cold")
    assert await swap_to(slot, MOE_A) == (fresh_outputs[MOE_A], "warm")
    assert await swap_to(slot, MOE_B) == (fresh_outputs[MOE_B], "warm")
    names = {name for name, _, _ in slot._layout}
    assert any("experts" in n for n in names), "the slot must hold fused-MoE parameters"
