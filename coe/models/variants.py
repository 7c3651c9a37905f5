"""Synthetic variants of a checkpoint: same architecture and tokenizer, measurably different weights.

The swap manager needs many experts of one architecture to be exercised, and only two real small
LLMs exist offline. A variant adds seeded noise to every matrix so that its greedy output differs
from its source's. Variants are test and benchmark material, named `*-variant-<seed>` wherever they
appear; they are not experts anyone should serve for quality.
"""

from __future__ import annotations

import shutil
from pathlib import Path

WEIGHTS = "model.safetensors"


def make_variant(source: Path, target: Path, seed: int, noise: float = 0.05) -> Path:
    """Writes `target` once (idempotent): `source` with N(0, noise * std(W)) added to each matrix W."""
    import torch
    from safetensors.torch import load_file, save_file

    done = target / ".variant-done"
    if done.exists() and done.read_text() == f"{source}:{seed}:{noise}":
        return target
    target.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        if item.is_file() and item.suffix != ".safetensors" and item.name != "coe-manifest.json":
            shutil.copy2(item, target / item.name)
    generator = torch.Generator().manual_seed(seed)
    tensors = load_file(str(source / WEIGHTS))
    for name, tensor in tensors.items():
        if tensor.ndim == 2 and tensor.is_floating_point():
            w = tensor.float()
            w += torch.randn(w.shape, generator=generator) * (noise * w.std())
            tensors[name] = w.to(tensor.dtype)
    save_file(tensors, str(target / WEIGHTS), metadata={"format": "pt"})
    done.write_text(f"{source}:{seed}:{noise}")
    return target
