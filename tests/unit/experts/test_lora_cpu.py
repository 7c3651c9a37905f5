"""CoE's CPU multi-LoRA product against the definition, y += (x·Aᵀ·scale)·Bᵀ per token's own slot.

The engine-level check (real adapters, a real vLLM engine, mixed batches equal to merged checkpoints)
is tests/integration/test_lora_experts.py; this one pins the arithmetic on every kind of batch.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from coe.experts.lora_cpu import add_lora_linear, slot_mask

SLOTS, RANK, IN, OUT = (3, 8, 32, (48, 16, 16))  # three output slices, as a fused qkv projection


def _reference(x, a_stacked, b_stacked, scale, slices, indices):
    y = torch.zeros(x.shape[0], sum(slices))
    for row, slot in enumerate(indices):
        if slot < 0:
            continue
        offset = 0
        for a, b, size in zip(a_stacked, b_stacked, slices):
            y[row, offset:offset + size] = (x[row].double() @ a[slot, 0].double().t() * scale) @ b[slot, 0].double().t()
            offset += size
    return y


@pytest.mark.parametrize("indices", [[1, 1, 1, 1], [-1, -1, -1], [0, -1, 2, 2, 1], [-1, 2], [2], [0, 1, 2]],
                         ids=["one adapter", "base only", "mixed with base", "base then adapter", "batch of one",
                              "every slot"])
def test_each_row_gets_its_own_slot_and_base_rows_stay_unchanged(indices: list[int]) -> None:
    torch.manual_seed(0)
    x = torch.randn(len(indices), IN)
    a_stacked = tuple(torch.randn(SLOTS, 1, RANK, IN) for _ in OUT)
    b_stacked = tuple(torch.randn(SLOTS, 1, size, RANK) for size in OUT)
    before = torch.randn(len(indices), sum(OUT))
    y = before.clone()
    wrapper = SimpleNamespace(token_lora_indices=torch.tensor(indices))
    add_lora_linear(wrapper, y, x, a_stacked, b_stacked, 0.5, OUT)
    expected = before.double() + _reference(x, a_stacked, b_stacked, 0.5, OUT, indices)
    assert torch.allclose(y.double(), expected, rtol=1e-4, atol=1e-4)
    base_rows = [i for i, slot in enumerate(indices) if slot < 0]
    assert torch.equal(y[base_rows], before[base_rows])  # exactly, not within a tolerance


def test_padding_rows_beyond_the_indices_use_no_adapter() -> None:
    assert slot_mask([1, 1], rows=3, slots=2)[0] is None  # the padding row makes it a mixed batch
    only, mask = slot_mask([1, 1], rows=3, slots=2)
    assert mask[:, :, 0].tolist() == [[0.0, 1.0], [0.0, 1.0], [0.0, 0.0]]
    assert slot_mask([0, 0], rows=2, slots=2) == (0, None)
    assert slot_mask([-1], rows=1, slots=2) == (None, None)
