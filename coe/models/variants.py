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


# About 1.1B parameters in SmolLM2's architecture (Llama, head_dim 64, tied embeddings, its tokenizer).
ONE_B = {"hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 32,
         "num_key_value_heads": 8}


def make_scaled(source: Path, target: Path, overrides: dict[str, int] = ONE_B, seed: int = 0) -> Path:
    """Writes `target` once (idempotent): `source`'s architecture and tokenizer with `overrides` applied
    to its config and RANDOM weights (N(0, 0.02) matrices, unit norms). For copy-speed benchmarks of a
    larger model of the same architecture (`coe swap-bench --scale 1b`), never for answers: it
    generates noise."""
    import json

    import torch
    from safetensors.torch import save_file
    from transformers import AutoConfig, AutoModelForCausalLM

    stamp = json.dumps({"source": str(source), "overrides": overrides, "seed": seed}, sort_keys=True)
    done = target / ".scaled-done"
    if done.exists() and done.read_text() == stamp:
        return target
    target.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        if item.is_file() and item.suffix != ".safetensors" and item.name not in ("coe-manifest.json", "config.json"):
            shutil.copy2(item, target / item.name)
    config = json.loads((source / "config.json").read_text())
    config.update(overrides)
    (target / "config.json").write_text(json.dumps(config, indent=2))
    with torch.device("meta"):
        shapes = {n: p.shape for n, p in AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(target)).named_parameters()}
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for name, shape in shapes.items():
        if len(shape) == 1:
            tensors[name] = torch.ones(shape, dtype=torch.bfloat16)
        else:
            tensors[name] = (torch.randn(shape, generator=generator) * 0.02).to(torch.bfloat16)
    save_file(tensors, str(target / WEIGHTS), metadata={"format": "pt"})
    done.write_text(stamp)
    return target
