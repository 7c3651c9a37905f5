"""The swap manager against real vLLM engines: one slot serving three SmolLM2-family experts.

The experts besides SmolLM2 itself are synthetic variants (seeded noise on every matrix; see
coe/models/variants.py) because only one real model of this architecture exists offline. Engines run
in this process (VLLM_ENABLE_V1_MULTIPROCESSING=0), booted once for the module.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import pytest_asyncio

from coe.errors import ExpertUnavailable
from coe.models.prepare import prepare
from coe.models.variants import make_variant
from coe.swap.image import ImageMeta
from coe.swap.slot import EngineSlot
from coe.swap.tiers import Tier
from tests.integration.slot_helpers import (
    PROMPTS,
    answers,
    fresh_answers,
    request,
    running_slot,
    settle,
    swap_to,
)

os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # engines in this process: 5 s boots instead of 25 s

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

BASE = "smollm2-135m-instruct"
V1, V2 = f"{BASE}-variant-1", f"{BASE}-variant-2"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = prepare(BASE).path
    root = tmp_path_factory.mktemp("variants")
    # more noise than the default so the two experts' answers part within the first few words
    return {BASE: base, V1: make_variant(base, root / V1, seed=1, noise=0.15), V2: make_variant(base, root / V2, seed=2)}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def slot(checkpoints: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    async with running_slot("slot-test", [BASE, V1, V2], checkpoints, tmp_path_factory.mktemp("slot")) as s:
        yield s


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def fresh_outputs(slot: EngineSlot, checkpoints: dict[str, Path], tmp_path_factory) -> dict[str, list[str]]:
    """Greedy outputs of engines booted directly on each expert's checkpoint, never swapped: the
    module's slot before its first swap, and a second engine booted on the variant."""
    assert slot.last_swap is None
    outputs = {BASE: await answers(slot, BASE)}
    outputs[V1] = await fresh_answers(V1, checkpoints, tmp_path_factory.mktemp("fresh"))
    assert outputs[BASE] != outputs[V1], "the variant must answer differently for this test to mean anything"
    return outputs


def deciding_prefix(a: str, b: str) -> int:
    """Length of text that tells two answers apart: their common prefix plus the first differing char."""
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n + 1


async def test_swapped_in_expert_equals_fresh_engine_from_every_tier(slot: EngineSlot, fresh_outputs) -> None:
    assert await answers(slot, BASE) == fresh_outputs[BASE]
    slot.pool.prefetch = False  # this test drives the tiers itself (off is also the default)
    try:
        # first use: built from the checkpoint by vLLM's loader; the image is saved to the cold tier
        assert await swap_to(slot, V1) == (fresh_outputs[V1], "checkpoint")
        # the base's image was saved at start-up and hashed as written: cold, read without a hash
        assert await swap_to(slot, BASE) == (fresh_outputs[BASE], "cold")
        assert slot.last_swap["checksum_checked"] is False
        slot.tiers.evict(V1)
        cold = slot.tiers.paths.cold(V1)
        ImageMeta.read(cold).verified_as(None).write(cold)  # as after a copy to another machine
        assert await swap_to(slot, V1) == (fresh_outputs[V1], "cold")
        assert slot.last_swap["checksum_checked"] is True  # hashed on the way, then recorded as verified
        assert ImageMeta.read(cold).trusts(cold)
        # a cold load is promoted to warm in the background; the next swap maps it from RAM
        assert slot.tiers.tier(BASE) is Tier.warm
        assert await swap_to(slot, BASE) == (fresh_outputs[BASE], "warm")
        assert await swap_to(slot, V1) == (fresh_outputs[V1], "warm")
    finally:
        slot.pool.prefetch = False


@contextmanager
def prefetching(slot: EngineSlot) -> Iterator[None]:
    """Prefetch on for one test: off by default (README: it did not pay on 2 cores), it must still work."""
    slot.pool.prefetch = True
    try:
        yield
    finally:
        slot.pool.prefetch = False


async def test_queued_request_prefetches_its_expert_into_ram(slot: EngineSlot, fresh_outputs) -> None:
    with prefetching(slot):
        await _queued_request_prefetches(slot, fresh_outputs)


async def _queued_request_prefetches(slot: EngineSlot, fresh_outputs) -> None:
    await answers(slot, BASE)
    await settle(slot)
    slot.tiers.evict(V1)
    promotions = slot.metrics.promotions
    long_base = asyncio.create_task(slot.chat(BASE, request(PROMPTS[1], max_tokens=48)))
    await asyncio.sleep(0.05)  # the base request is running; V1 must queue behind it
    assert await answers(slot, V1) == fresh_outputs[V1]
    await long_base
    assert slot.metrics.promotions > promotions
    assert slot.last_swap["source"] == "warm"  # promoted while it waited, then mapped from RAM


async def test_concurrent_requests_for_two_experts_get_the_right_expert(slot: EngineSlot, fresh_outputs) -> None:
    """Requests of both experts interleaved on one slot. Batched greedy decoding may drift from the
    one-at-a-time reference late in a text (batch shapes change bf16 rounding), so each answer is
    checked on the part that distinguishes the two experts' references."""
    decisive = [i for i in range(len(PROMPTS)) if deciding_prefix(fresh_outputs[BASE][i], fresh_outputs[V1][i]) <= 24]
    assert decisive, "the experts' answers must part early for this check to be sharp"
    jobs = [(e, i) for i in decisive for e in (BASE, V1)] * 3
    swaps_before = sum(slot.metrics.swaps.values())
    results = await asyncio.gather(*(slot.chat(e, request(PROMPTS[i])) for e, i in jobs))
    for (e, i), result in zip(jobs, results):
        other = V1 if e == BASE else BASE
        n = deciding_prefix(fresh_outputs[e][i], fresh_outputs[other][i])
        assert result.text[:n] == fresh_outputs[e][i][:n], (e, i, result.text)
    # grouped admission: alternating requests cost at most a swap per expert change, not per request
    assert sum(slot.metrics.swaps.values()) - swaps_before <= 2


async def test_corrupted_image_is_refused_and_previous_expert_keeps_serving(slot: EngineSlot, fresh_outputs) -> None:
    await answers(slot, V2)  # builds V2's image
    await answers(slot, BASE)
    slot.tiers.evict(V2)
    cold = slot.tiers.paths.cold(V2)
    meta = ImageMeta.read(cold)
    with cold.open("r+b") as f:  # flip one byte in the middle of the weights
        f.seek(meta.nbytes // 2)
        byte = f.read(1)
        f.seek(meta.nbytes // 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    failures = slot.metrics.swap_failures
    with prefetching(slot), pytest.raises(ExpertUnavailable, match="checksum"):
        await slot.chat(V2, request(PROMPTS[0]))
    assert slot.metrics.swap_failures == failures + 1
    assert slot.hot == BASE
    assert await answers(slot, BASE) == fresh_outputs[BASE]
    # prefetch refuses it too: a corrupt image never becomes warm
    assert slot.tiers.tier(V2) is Tier.cold
