"""Quick real LoRA specialists of SmolLM2, trained in seconds by `coe finetune`'s code, for the tests and
for benches that run before `make experts` has built the full ones.

A few steps at a high learning rate on the code and math data move the weights enough that the
specialists answer differently from the base (so a test that compares them can fail), and each is
written both ways, as `coe finetune` writes it: a PEFT adapter in `<folder>/adapter` and the merged
checkpoint in `<folder>`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from coe.finetune.data import domain_examples
from coe.finetune.layout import ADAPTER_FOLDER
from coe.finetune.train import TrainSettings, lora_finetune, save_checkpoint

QUICK = TrainSettings(steps=4, batch_size=4, micro_batch=2, lr=2e-3, rank=8, alpha=16, max_tokens=128, warmup=1)


def build_specialists(base: Path, root: Path, domains: tuple[str, ...] = ("code", "math"),
                      dtype: torch.dtype = torch.bfloat16) -> dict[str, Path]:
    """domain -> folder holding the merged checkpoint (in `dtype`) and, in adapter/, the same fine-tune
    as an adapter."""
    built = {}
    for seed, domain in enumerate(domains):
        folder = root / f"smollm2-{domain}"
        settings = TrainSettings(**{**QUICK.__dict__, "seed": seed})
        model, _tokenizer, _log = lora_finetune(base, domain_examples(domain, 32, seed), settings,
                                                adapter_out=folder / ADAPTER_FOLDER)
        save_checkpoint(model, base, folder, dtype)
        built[domain] = folder
    return built
