"""Multi-LoRA on vLLM-CPU, correct and about 3x cheaper: replaces PunicaWrapperCPU's linear-layer LoRA.

Runs inside the engine process (the worker imports it: VLLMBackend names `LoRAWorkerExtension` as the
`worker_extension_cls` of every engine with adapters). GPUs keep vLLM's kernels: nothing is replaced there.

Why (measured on this 2-core machine, vLLM-CPU 0.32, SmolLM2-135M with rank-8 adapters on its seven
linear layers, eager): vLLM's CPU path (vllm/lora/ops/torch_ops) gathers every token's adapter weights
and runs an einsum per slice, about a dozen small torch ops per layer; a decode step at batch 1 went
from 21 ms without LoRA to 50-65 ms with it, the LoRA calls alone 28-36 ms. It also indexes the
stacked weights with -1 for "no adapter", which torch reads as the last slot: in a batch mixing base
and adapter requests, the base requests ran through the last adapter loaded.

What replaces it: which slot each token uses is read once per step. Per slice, two matrix products:
the shrink x·Aᵀ in float32 (as vLLM's), then the expand in the activations' dtype, added to the
output. When the batch mixes adapters, the shrink runs over every slot's rank rows at once and a
per-token mask keeps only the token's own slot, so a mixed batch costs the same few calls as a
single-adapter one. Base tokens (index -1) get an all-zero mask: exactly "no adapter". The embedding and logits LoRA calls keep
vLLM's code, but the rows of base tokens are put back afterwards, so -1 cannot reach them either.
"""

from __future__ import annotations

from typing import Any

import torch

_INSTALLED_ATTR = "_coe_lora_cpu"


def slot_mask(indices: list[int], rows: int, slots: int) -> tuple[int | None, torch.Tensor | None]:
    """How a step's tokens use the adapter slots: (k, None) when every row uses slot k; else (None, a
    (rows, slots, 1) float mask, 1 where a row uses that slot). Base rows (-1) and padding rows beyond
    `indices` use none; (None, None) when no row uses any."""
    ids = indices[:rows] + [-1] * max(0, rows - len(indices))
    used = set(ids) - {-1}
    if not used:
        return None, None
    if len(used) == 1 and -1 not in ids:
        return used.pop(), None
    mask = torch.zeros(rows, slots, 1, dtype=torch.float32)
    for row, slot in enumerate(ids):
        if slot >= 0:
            mask[row, slot, 0] = 1.0
    return None, mask


def add_lora_linear(wrapper: Any, y: torch.Tensor, x: torch.Tensor, lora_a_stacked: tuple[torch.Tensor, ...],
                    lora_b_stacked: tuple[torch.Tensor, ...], scale: float, output_slices: tuple[int, ...],
                    *, buffer: Any = None, **kwargs: Any) -> None:
    """y[:, slice i] += (x · A_iᵀ · scale) · B_iᵀ with each token's adapter; the semantics of vLLM's call.

    A batch of several adapters is one product over every slot's rank rows, masked per token to its
    own slot: the same few torch ops whatever the mix (the extra rank rows cost less than the calls)."""
    x = x.view(-1, x.shape[-1])
    out = y.view(-1, y.shape[-1])
    slots, rank = lora_a_stacked[0].shape[0], lora_a_stacked[0].shape[-2]
    only, mask = _step_slots(wrapper, x.shape[0], slots)
    if only is None and mask is None:
        return  # no token of this step uses an adapter
    xf = x.float()
    offset = 0
    for a, b, size in zip(lora_a_stacked, lora_b_stacked, output_slices):
        width = min(size, b.shape[-2])
        if only is not None:
            a_k = a[only].view(rank, a.shape[-1])  # (rank, in)
            b_k = b[only].view(b.shape[-2], rank)  # (out, rank)
            shrunk = (xf @ a_k.float().t()).mul_(scale).to(out.dtype)
            delta = shrunk @ b_k.t()
        else:
            a_all = a.view(slots * rank, a.shape[-1])  # every slot's rank rows
            shrunk = (xf @ a_all.float().t()).view(-1, slots, rank).mul_(mask).mul_(scale).to(out.dtype)
            b_all = b.view(slots, b.shape[-2], rank).transpose(1, 2).reshape(slots * rank, b.shape[-2])
            delta = shrunk.view(-1, slots * rank) @ b_all
        out[:, offset:offset + width].add_(delta[:, :width])
        offset += size


def _step_slots(wrapper: Any, rows: int, slots: int) -> tuple[int | None, torch.Tensor | None]:
    """The step's slot use, computed on its first LoRA layer and reused by the others."""
    cached = getattr(wrapper, "_coe_slots", None)
    if cached is None or cached[0] != (rows, slots):
        cached = ((rows, slots), slot_mask(wrapper.token_lora_indices.tolist(), rows, slots))
        wrapper._coe_slots = cached
    return cached[1]


def _keeping_base_rows(original: Any, indices_of: Any) -> Any:
    """Wraps a vLLM LoRA call so that the output rows of base tokens (index -1) come back unchanged."""

    def call(wrapper: Any, y: torch.Tensor, *args: Any, **kwargs: Any) -> None:
        flat = y.view(-1, y.shape[-1])
        indices = indices_of(wrapper)[: flat.shape[0]]
        base = (indices < 0).nonzero().flatten()
        kept = flat.index_select(0, base) if base.numel() else None
        original(wrapper, y, *args, **kwargs)
        if kept is not None:
            flat.index_copy_(0, base, kept)

    return call


def install() -> bool:
    """Replaces the CPU wrapper's calls (once per process); False where vLLM is not the CPU build."""
    try:
        from vllm.lora.punica_wrapper.punica_cpu import PunicaWrapperCPU
        from vllm.platforms import current_platform
    except ImportError:
        return False
    if not current_platform.is_cpu():
        return False
    if getattr(PunicaWrapperCPU, _INSTALLED_ATTR, False):
        return True
    for name in ("add_lora_linear", "add_lora_logits", "add_lora_embedding", "update_metadata"):
        if not callable(getattr(PunicaWrapperCPU, name, None)):
            raise RuntimeError(f"this vLLM's PunicaWrapperCPU has no {name}(): coe/experts/lora_cpu.py needs updating")
    original_update = PunicaWrapperCPU.update_metadata

    def update_metadata(wrapper: Any, *args: Any, **kwargs: Any) -> None:
        wrapper._coe_slots = None  # a new batch: its slot use is read again on its first LoRA layer
        original_update(wrapper, *args, **kwargs)

    PunicaWrapperCPU.update_metadata = update_metadata
    PunicaWrapperCPU.add_lora_linear = add_lora_linear
    PunicaWrapperCPU.add_lora_logits = _keeping_base_rows(PunicaWrapperCPU.add_lora_logits, lambda w: w.sampler_indices)
    PunicaWrapperCPU.add_lora_embedding = _keeping_base_rows(PunicaWrapperCPU.add_lora_embedding,
                                                             lambda w: w.token_lora_indices)
    setattr(PunicaWrapperCPU, _INSTALLED_ATTR, True)
    return True


INSTALLED = install()


class LoRAWorkerExtension:
    """Mixed into vLLM's worker: importing it installed the replacement in the engine process."""

    def coe_lora_cpu_installed(self) -> bool:
        return INSTALLED
