"""Which in-model experts each layer chooses for a set of prompts (``coe moe-stats``).

Counts come from the router logits transformers records for every MoE family it implements
(``output_router_logits=True``): for each token and layer the top-k experts by router probability,
exactly the ones the model's forward pass uses. The MoTE seed uses these tables to find experts tied
to a behaviour (compare the counts of two prompt sets).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch

from coe.moe.settings import moe_settings


class NotAnMoE(Exception):
    """The checkpoint has no in-model routing to count."""


@dataclass
class RoutingStats:
    model: str
    num_experts: int
    top_k: int
    counts: list[list[int]]  # [layer][expert]: tokens routed there (each token counts top_k times)
    tokens: int
    per_prompt: list[dict] = field(default_factory=list)

    def fractions(self) -> list[list[float]]:
        """Share of token choices per expert, per layer (rows sum to 1)."""
        return [[c / max(1, sum(row)) for c in row] for row in self.counts]


def _load(model_dir: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    settings = moe_settings(model_dir)
    if settings is None:
        raise NotAnMoE(f"{model_dir}: config.json describes a dense model (no routed experts); "
                       "moe-stats needs an MoE checkpoint such as one written by `coe upcycle`")
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    net = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    net.eval()
    return settings, tokenizer, net


@torch.no_grad()
def routing_stats(model_dir: Path, prompts: Sequence[str], chat: bool = False, max_tokens: int = 512) -> RoutingStats:
    """Count each layer's top-k expert choices over every prompt token."""
    model_dir = Path(model_dir).expanduser()
    if not (model_dir / "config.json").is_file():
        raise NotAnMoE(f"{model_dir}: not a checkpoint folder (no config.json)")
    if not prompts:
        raise ValueError("give at least one prompt")
    settings, tokenizer, net = _load(model_dir)
    total: torch.Tensor | None = None
    tokens = 0
    per_prompt = []
    for prompt in prompts:
        text = prompt
        if chat and tokenizer.chat_template:
            text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                                 add_generation_prompt=True)
        ids = tokenizer(text, return_tensors="pt", truncation=True, max_length=max_tokens)
        out = net(**ids, output_router_logits=True)
        if not out.router_logits:
            raise NotAnMoE(f"{model_dir}: transformers recorded no router logits for this architecture")
        layers = []
        for logits in out.router_logits:
            choice = torch.topk(logits.float().reshape(-1, settings.num_experts), settings.top_k, dim=-1).indices
            layers.append(torch.bincount(choice.reshape(-1), minlength=settings.num_experts))
        counts = torch.stack(layers)
        total = counts if total is None else total + counts
        n = int(ids["input_ids"].shape[1])
        tokens += n
        per_prompt.append({"prompt": prompt, "tokens": n, "counts": counts.tolist()})
    assert total is not None
    return RoutingStats(str(model_dir), settings.num_experts, settings.top_k, total.tolist(), tokens, per_prompt)


def write_stats(stats: RoutingStats, out: Path, title: str | None = None) -> dict[str, Path]:
    """Write ``routing.csv`` (layer x expert fractions), ``routing.json`` (everything) and ``routing.png``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "routing.csv", "json": out / "routing.json", "png": out / "routing.png"}
    with paths["csv"].open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["layer", *[f"expert_{e}" for e in range(stats.num_experts)]])
        for layer, row in enumerate(stats.fractions()):
            writer.writerow([layer, *[f"{v:.4f}" for v in row]])
    paths["json"].write_text(json.dumps({
        "model": stats.model, "num_experts": stats.num_experts, "top_k": stats.top_k, "tokens": stats.tokens,
        "counts": stats.counts, "per_prompt": stats.per_prompt,
    }, indent=1) + "\n")
    heatmap(stats, paths["png"], title)
    return paths


def heatmap(stats: RoutingStats, path: Path, title: str | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = stats.fractions()
    fig, ax = plt.subplots(figsize=(max(4, 1.0 + 0.6 * stats.num_experts), max(3, 0.25 * len(data) + 1.2)))
    image = ax.imshow(data, aspect="auto", cmap="viridis", vmin=0.0, vmax=1.0)
    ax.set_xlabel("expert")
    ax.set_ylabel("layer")
    ax.set_xticks(range(stats.num_experts))
    ax.set_title(title or f"top-{stats.top_k} expert share per layer ({stats.tokens} tokens)", fontsize=9)
    fig.colorbar(image, ax=ax, label="share of token choices")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
