"""Router initialisation from each source's mean hidden state.

Why: a zero or random router sends tokens to experts at random, so an upcycled MoE starts worse than
any of its sources. A token of source i's domain should go to expert i; the mean FFN input of source
i on its own domain texts is a direction such tokens share. Rows are centred across sources (fine-tunes
of one base share most of that mean) and scaled to unit norm, so the router logit of expert i is how
far a token leans towards source i's domain.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import torch

Progress = Callable[[str], None]


@torch.no_grad()
def mean_ffn_inputs(source: Path, texts: Sequence[str], max_tokens: int = 256) -> torch.Tensor:
    """[layers, hidden] mean of every layer's FFN input (post-attention norm output) over all tokens."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not texts:
        raise ValueError(f"no calibration texts for {source}")
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    model = AutoModelForCausalLM.from_pretrained(str(source), dtype=torch.float32)
    model.eval()
    layers = model.model.layers
    sums = torch.zeros(len(layers), model.config.hidden_size)
    count = 0
    captured: dict[int, torch.Tensor] = {}
    hooks = [
        layer.post_attention_layernorm.register_forward_hook(
            lambda _m, _i, out, idx=idx: captured.__setitem__(idx, out.detach())
        )
        for idx, layer in enumerate(layers)
    ]
    try:
        for text in texts:
            ids = tokenizer(text, return_tensors="pt", truncation=True, max_length=max_tokens)
            model(**ids)
            for idx in range(len(layers)):
                sums[idx] += captured[idx][0].sum(dim=0)
            count += ids["input_ids"].shape[1]
    finally:
        for hook in hooks:
            hook.remove()
    return sums / count


def gates_from_means(means: torch.Tensor) -> torch.Tensor:
    """[experts, layers, hidden] means -> [layers, experts, hidden] router weights (centred, unit rows)."""
    per_layer = means.permute(1, 0, 2)
    centred = per_layer - per_layer.mean(dim=1, keepdim=True)
    norms = centred.norm(dim=-1, keepdim=True)
    return torch.where(norms > 1e-6, centred / norms.clamp_min(1e-6), torch.zeros_like(centred))


def mean_hidden_router(sources: Sequence[Path], calibration: Sequence[Sequence[str]],
                       progress: Progress | None = None) -> torch.Tensor:
    means = []
    for source, texts in zip(sources, calibration):
        if progress:
            progress(f"  mean hidden state of {source} over {len(texts)} texts")
        means.append(mean_ffn_inputs(Path(source), texts))
    return gates_from_means(torch.stack(means))
