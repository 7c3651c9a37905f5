"""Brief router-only training of an upcycled MoE: every parameter but the routers stays frozen.

Loss: next-token loss (what BAM trains on) plus Mixtral's load-balancing loss, plus a domain term:
cross-entropy between a text's mean router logits and the index of the source whose domain it comes
from. The domain term matters most at top-1, where renormalised routing weights are always 1.0 and
the next-token loss gives the routers no gradient at all.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Callable, Sequence

import torch
from safetensors.torch import load_file, save_file

Progress = Callable[[str], None]


def train_router(folder: Path, texts: Sequence[tuple[str, int]], steps: int, lr: float = 1e-2,
                 batch_size: int = 4, max_tokens: int = 256, seed: int = 0,
                 progress: Progress | None = None) -> dict:
    """Train the ``gate`` weights of the Mixtral checkpoint in ``folder`` in place; returns a log."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    rng = random.Random(seed)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
    model.train()
    gates = {}
    for name, param in model.named_parameters():
        param.requires_grad = name.endswith("mlp.gate.weight")
        if param.requires_grad:
            gates[name] = param
    if not gates:
        raise RuntimeError(f"{folder}: found no router weights to train")
    domain_weight = 1.0 if model.config.num_experts_per_tok == 1 else 0.1
    optimiser = torch.optim.AdamW(list(gates.values()), lr=lr, weight_decay=0.0)
    items = list(texts)
    losses: list[float] = []
    started = time.monotonic()
    for step in range(steps):
        batch = rng.sample(items, min(batch_size, len(items)))
        total = torch.zeros(())
        for text, label in batch:
            ids = tokenizer(text, return_tensors="pt", truncation=True, max_length=max_tokens)
            out = model(**ids, labels=ids["input_ids"], output_router_logits=True)
            per_layer = torch.stack([logits.float().mean(dim=0) for logits in out.router_logits])
            domain = torch.nn.functional.cross_entropy(per_layer, torch.full((per_layer.shape[0],), label))
            total = total + (out.loss + domain_weight * domain) / len(batch)
        optimiser.zero_grad()
        total.backward()
        optimiser.step()
        losses.append(total.item())
        if progress and (step % 10 == 0 or step == steps - 1):
            progress(f"  router step {step + 1}/{steps}: loss {losses[-1]:.4f}")
    trained = {name.replace(".mlp.gate.", ".block_sparse_moe.gate."): p.detach() for name, p in gates.items()}
    weights = Path(folder) / "model.safetensors"
    state = load_file(str(weights))
    for key, value in trained.items():
        if key not in state:
            raise RuntimeError(f"{weights}: no tensor {key} to update")
        state[key] = value.to(state[key].dtype).contiguous()
    save_file(state, str(weights), metadata={"format": "pt"})
    return {"steps": steps, "lr": lr, "batch_size": batch_size, "domain_loss_weight": domain_weight,
            "loss_first": losses[0], "loss_last": losses[-1], "seconds": round(time.monotonic() - started, 1)}
