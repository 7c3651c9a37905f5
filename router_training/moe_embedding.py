"""``moe``: a mixture of per-domain embedding experts over frozen MiniLM, mixed by a learned gate.

After the seed paper (Hallee et al., "Contrastive Learning and Mixture of Experts Enables Precise
Vector Embeddings"): one expert per domain, trained contrastively, so each domain gets its own
notion of similarity instead of one compromise. Fine-tuning a MiniLM copy per domain would cost
four times the ``contrastive`` embedder's minutes and four models in memory, so here an expert is a
small residual adapter on the frozen MiniLM vector ``x``:

    expert_k(x) = x + (x A_k) B_k                  (rank-r, B_k starts at 0: every expert starts as x)
    gate(x)     = softmax(x W + b)                 (one weight per category)
    moe(x)      = normalise(sum_k gate_k(x) expert_k(x))

Training (train split only, full batch, seconds on CPU) minimises the supervised contrastive loss
of ``moe(x)`` plus the gate's cross-entropy against the category, for as many steps as minimise it
on a held-out fifth of the train split (see ``train_moe``). The cross-entropy is what makes
expert k a *domain* expert: the gate sends category-k prompts to it, so its gradient comes mostly
from them (the paper assigns experts by domain; here the assignment is learned, as it must be at
inference time where there is no label). Inference is numpy on top of MiniLM: microseconds extra.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Sequence

import numpy as np

from router_training.data import DEFAULT_CAP, DEFAULT_SEED, LabelledPrompt
from router_training.embedder_training import (
    atomic_dir,
    default_train_items,
    embedder_cache_dir,
    label_ids,
    supcon_loss,
    training_key,
)
from router_training.embedders import Embedder, _normalise
from router_training.splits import shuffled_groups

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

KIND = "moe-adapters"
FORMAT = 2  # 2: step count chosen on a validation part


@dataclass(frozen=True)
class MoEConfig:
    """Gate and expert settings; all of them are part of the cache key."""

    rank: int = 32
    """Rank of each expert's residual adapter; 4 x 2 x 384 x 32 = 98k weights for ~600 prompts."""
    steps: int = 300
    """Most full-batch AdamW steps; the validation part picks how many are used."""
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    """Decoupled (AdamW) decay; mild, the adapters start at zero and stay small anyway."""
    temperature: float = 0.1
    """Supervised-contrastive temperature, as in the ``contrastive`` embedder."""
    gate_weight: float = 1.0
    """Weight of the gate's cross-entropy next to the contrastive loss."""
    validation_fraction: float = 0.2
    """Share of the training items held out (per category) to pick the step count; 0 disables."""
    eval_every: int = 10
    """Steps between validation checks."""
    seed: int = DEFAULT_SEED
    """Seeds the adapters' initialisation and the validation hold-out."""


@dataclass(frozen=True)
class MoEWeights:
    """The trained mixture as plain arrays, so encoding needs numpy only."""

    categories: tuple[str, ...]
    gate_w: np.ndarray  # (dim, K)
    gate_b: np.ndarray  # (K,)
    down: np.ndarray  # (K, dim, rank)
    up: np.ndarray  # (K, rank, dim)

    def gate(self, base: np.ndarray) -> np.ndarray:
        """Per-prompt mixing weights over the experts (rows sum to 1)."""
        logits = base @ self.gate_w + self.gate_b
        logits -= logits.max(axis=1, keepdims=True)
        weights = np.exp(logits)
        return weights / weights.sum(axis=1, keepdims=True)

    def apply(self, base: np.ndarray) -> np.ndarray:
        """Mix the experts' outputs for L2-normalised base vectors; returns normalised rows."""
        base = np.asarray(base, dtype=np.float32)
        deltas = np.einsum("nd,kdr,kre->nke", base, self.down, self.up, optimize=True)
        mixed = base + np.einsum("nk,nke->ne", self.gate(base), deltas)
        return _normalise(mixed)


def moe_cache_path(
    items: Sequence[LabelledPrompt], config: MoEConfig, base_name: str, cache_dir: Path | None = None
) -> Path:
    """Folder of the mixture trained on ``items`` over the embedder ``base_name``."""
    key = training_key(KIND, {"format": FORMAT, "base": base_name, **asdict(config)}, items)
    return embedder_cache_dir(cache_dir) / f"moe-{key}"


def _validation_part(ids: Sequence[int], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Per-category seeded hold-out of ``fraction`` of the items (at least one of each category
    that has two or more), so the step count is chosen on prompts the mixture was not fitted on."""
    fit: list[int] = []
    validation: list[int] = []
    for _label, indices in shuffled_groups(ids, random.Random(seed)):
        n_val = max(1, round(len(indices) * fraction)) if len(indices) >= 2 else 0
        validation += indices[:n_val]
        fit += indices[n_val:]
    return sorted(fit), sorted(validation)


def _fit(
    x: "torch.Tensor",
    y: "torch.Tensor",
    k: int,
    config: MoEConfig,
    steps: int,
    validation: tuple["torch.Tensor", "torch.Tensor"] | None = None,
) -> tuple[list["torch.Tensor"], list[float], int]:
    """Full-batch AdamW on (x, y); with ``validation``, also returns the step of lowest validation
    loss (checked every ``eval_every`` steps), else ``steps``."""
    import torch
    import torch.nn.functional as F

    generator = torch.Generator().manual_seed(config.seed)
    dim = x.shape[1]
    gate_w = torch.zeros(dim, k, requires_grad=True)
    gate_b = torch.zeros(k, requires_grad=True)
    down = (torch.randn(k, dim, config.rank, generator=generator) / dim**0.5).requires_grad_()
    up = torch.zeros(k, config.rank, dim, requires_grad=True)
    params = [gate_w, gate_b, down, up]
    optimiser = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)

    def loss_of(features: "torch.Tensor", labels: "torch.Tensor") -> "torch.Tensor":
        gate_logits = features @ gate_w + gate_b
        deltas = torch.einsum("nd,kdr,kre->nke", features, down, up)
        mixed = F.normalize(features + torch.einsum("nk,nke->ne", gate_logits.softmax(dim=1), deltas), dim=1)
        gate_loss = F.cross_entropy(gate_logits, labels)
        return supcon_loss(mixed, labels, config.temperature) + config.gate_weight * gate_loss

    losses: list[float] = []
    best_step, best_loss = 0, float("inf")
    for step in range(1, steps + 1):
        loss = loss_of(x, y)
        loss.backward()
        optimiser.step()
        optimiser.zero_grad()
        losses.append(float(loss.detach()))
        if validation is not None and (step % config.eval_every == 0 or step == steps):
            with torch.no_grad():
                validation_loss = float(loss_of(*validation))
            if validation_loss < best_loss:
                best_step, best_loss = step, validation_loss
    return params, losses, best_step if validation is not None else steps


def train_moe(
    base: np.ndarray, categories: Sequence[str], config: MoEConfig
) -> tuple[MoEWeights, list[float], int]:
    """Fit gate and experts on base embeddings; returns the weights, the loss per step of the final
    fit and its step count.

    Fitted on all items for as many steps as did best on a validation part first: an earlier
    version trained a fixed 300 steps, separated the train split almost perfectly and then
    generalised worse than frozen MiniLM (the classifier trained on those too-clean vectors).
    """
    import torch

    names, ids = label_ids(categories)
    if len(names) < 2:
        raise ValueError("a mixture of domain experts needs at least two categories")
    x = torch.tensor(np.asarray(base, dtype=np.float32))
    y = torch.tensor(ids)
    steps = config.steps
    if config.validation_fraction > 0:
        fit, validation = _validation_part(ids, config.validation_fraction, config.seed)
        _, _, steps = _fit(x[fit], y[fit], len(names), config, config.steps, (x[validation], y[validation]))
        steps = max(steps, 1)
    params, losses, _ = _fit(x, y, len(names), config, steps)
    gate_w, gate_b, down, up = (t.detach().numpy().astype(np.float32) for t in params)
    return MoEWeights(tuple(names), gate_w, gate_b, down, up), losses, steps


def _save(folder: Path, weights: MoEWeights, meta: dict[str, Any]) -> None:
    with atomic_dir(folder) as tmp:
        np.savez(
            tmp / "weights.npz",
            gate_w=weights.gate_w, gate_b=weights.gate_b, down=weights.down, up=weights.up,
        )
        meta = {**meta, "categories": list(weights.categories)}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")


def _load(folder: Path) -> tuple[MoEWeights, dict[str, Any]]:
    meta = json.loads((folder / "meta.json").read_text())
    with np.load(folder / "weights.npz") as arrays:
        weights = MoEWeights(
            tuple(meta["categories"]), arrays["gate_w"], arrays["gate_b"], arrays["down"], arrays["up"]
        )
    return weights, meta


class MoEEmbedder(Embedder):
    """Gate-mixed domain experts over frozen MiniLM; trains into the cache on first use.

    ``train_items``, ``seed`` and ``cap`` work as in ``ContrastiveEmbedder``. ``base`` lets a caller
    that already holds a MiniLM embedder share it (loading one costs seconds and ~100 MB).
    """

    name = "moe"
    needs_training_data: ClassVar[bool] = True

    def __init__(
        self,
        train_items: Sequence[LabelledPrompt] | None = None,
        seed: int = DEFAULT_SEED,
        cap: int | None = DEFAULT_CAP,
        config: MoEConfig | None = None,
        cache_dir: Path | None = None,
        base: Embedder | None = None,
        threads: int = 2,
    ) -> None:
        if base is None:
            from router_training.embedders import get_embedder

            base = get_embedder("minilm", threads=threads)
        self._base = base
        items = list(train_items) if train_items is not None else default_train_items(seed, cap)
        config = config or MoEConfig(seed=seed)
        self.folder = moe_cache_path(items, config, base.name, cache_dir)
        self.trained_here = not (self.folder / "meta.json").is_file()
        if self.trained_here:
            started = time.perf_counter()
            logger.info("training the MoE embedding on %d prompts (one-off; cached afterwards)", len(items))
            base_vectors = base.encode([item.text for item in items])
            encoded = time.perf_counter()
            weights, losses, steps = train_moe(base_vectors, [item.category for item in items], config)
            meta = {
                "format": FORMAT,
                "base": base.name,
                "config": asdict(config),
                "train_items": len(items),
                "steps": steps,
                "first_loss": round(losses[0], 4),
                "last_loss": round(losses[-1], 4),
                "base_encode_seconds": round(encoded - started, 1),
                "train_seconds": round(time.perf_counter() - started, 1),
            }
            _save(self.folder, weights, meta)
            logger.info("trained the MoE embedding in %.0f s -> %s", meta["train_seconds"], self.folder)
        self.weights, self.meta = _load(self.folder)

    @property
    def train_seconds(self) -> float:
        return float(self.meta["train_seconds"])

    @property
    def dim(self) -> int:
        return int(self.weights.gate_w.shape[0])

    def encode(self, texts: list[str]) -> np.ndarray:
        return self.weights.apply(self._base.encode(texts))
