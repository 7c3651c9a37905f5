"""A static token table trained on the labelled prompts: MiniLM's accuracy at lookup-and-mean speed.

The distilled table (``router_training.embedders.distill_static``) sees every token alone, so it
knows what a token means but not which tokens matter for routing: it classifies about 3 points
worse than MiniLM. Here the table is fine-tuned, starting from that distillation, on the stage-1
train prompts with two losses, as fastText-style classifiers and model2vec's tokenlearn do:

- cross-entropy of a linear head over the mean-pooled, L2-normalised vector (the head is thrown
  away: the router fits its own classifier on the result, as for any embedder);
- cosine distance between a learned linear map of that vector and the prompt's MiniLM embedding,
  so the table keeps MiniLM's geometry for everything the categories do not say (the stage-2
  predictor regresses expert scores on the same vector);
- an L2 pull towards the distilled rows, so tokens seen in a few prompts do not drift far.

Only rows of tokens in the training prompts move; every other row stays as distilled. The result
is an ordinary static table (``embeddings.npy`` + tokenizer), served by
``coe.routing.embedders.StaticTableEmbedder`` unchanged: serving reads arrays and runs no code.
Trained once per (settings, train prompts) and cached, like the other trained embedders.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np

from coe.routing.embedders import STATIC_FILES, StaticTableEmbedder
from router_training.data import DEFAULT_CAP, DEFAULT_SEED, LabelledPrompt
from router_training.embedder_training import (
    atomic_dir,
    default_train_items,
    embedder_cache_dir,
    label_ids,
    training_key,
)

logger = logging.getLogger(__name__)

TUNED_FORMAT = 1


@dataclass(frozen=True)
class StaticTuningConfig:
    """Settings measured in the session that added this (3 seeded splits of the default set)."""

    epochs: int = 40
    batch_size: int = 32
    learning_rate: float = 3e-3
    distill_weight: float = 1.0
    anchor_weight: float = 1e-4
    logit_scale: float = 10.0  # cosine-sized logits need a temperature to train the head at all
    seed: int = DEFAULT_SEED


def tune_table(
    table: np.ndarray,
    token_ids: Sequence[np.ndarray],
    labels: Sequence[str],
    targets: np.ndarray,
    config: StaticTuningConfig,
    threads: int = 2,
) -> np.ndarray:
    """Return a copy of ``table`` with the rows of the prompts' tokens fine-tuned (see module doc).

    ``token_ids[i]`` are prompt i's ids into ``table`` and ``targets[i]`` its MiniLM embedding.
    """
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    torch.manual_seed(config.seed)
    used = np.unique(np.concatenate([ids for ids in token_ids if ids.size] or [np.zeros(1, np.int64)]))
    local = [torch.from_numpy(np.searchsorted(used, ids).astype(np.int64)) for ids in token_ids]
    start = torch.from_numpy(table[used].astype(np.float32))
    rows = torch.nn.Parameter(start.clone())
    _, label_index = label_ids(labels)
    y = torch.tensor(label_index)
    head = torch.nn.Linear(table.shape[1], int(y.max()) + 1)
    to_teacher = torch.nn.Linear(table.shape[1], targets.shape[1], bias=False)
    teacher = torch.from_numpy(np.asarray(targets, dtype=np.float32))
    optimiser = torch.optim.Adam([rows, *head.parameters(), *to_teacher.parameters()], lr=config.learning_rate)
    trainable = np.array([i for i, ids in enumerate(local) if len(ids)])
    rng = np.random.default_rng(config.seed)

    def pooled(batch: np.ndarray) -> torch.Tensor:
        flat = torch.cat([local[i] for i in batch])
        offsets = torch.tensor([0] + [len(local[i]) for i in batch[:-1]]).cumsum(0)
        return F.normalize(F.embedding_bag(flat, rows, offsets, mode="mean"), dim=1)

    for _epoch in range(config.epochs):
        order = rng.permutation(trainable)
        for b in range(0, len(order), config.batch_size):
            batch = order[b : b + config.batch_size]
            vectors = pooled(batch)
            loss = F.cross_entropy(head(vectors) * config.logit_scale, y[batch])
            loss = loss + config.distill_weight * (1 - F.cosine_similarity(to_teacher(vectors), teacher[batch])).mean()
            loss = loss + config.anchor_weight * ((rows - start) ** 2).sum()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    tuned = np.array(table, dtype=np.float32, copy=True)
    tuned[used] = rows.detach().numpy()
    return tuned


def tuned_cache_path(items: Sequence[LabelledPrompt], config: StaticTuningConfig, base_meta: dict[str, Any],
                     cache_dir: Path | None = None) -> Path:
    key = training_key("static-tuned", {**asdict(config), "base": base_meta, "format": TUNED_FORMAT}, items)
    return embedder_cache_dir(cache_dir) / f"static-tuned-{key}"


def train_tuned_static(
    items: Sequence[LabelledPrompt],
    base: StaticTableEmbedder,
    out_dir: Path,
    config: StaticTuningConfig,
    threads: int = 2,
) -> Path:
    """Embed the prompts with MiniLM (the teacher), tune ``base``'s table on them, write a static folder."""
    from router_training.embedders import MiniLMEmbedder

    started = time.perf_counter()
    texts = [item.text for item in items]
    logger.info("tuning the static table on %d prompts (MiniLM targets first, about 1 min per 1,000)", len(texts))
    targets = MiniLMEmbedder(threads=threads).encode(texts)
    table = base.table
    token_ids = base.token_ids(texts)
    tuned = tune_table(table, token_ids, [item.category for item in items], targets, config, threads=threads)
    with atomic_dir(Path(out_dir)) as tmp:
        np.save(tmp / "embeddings.npy", tuned)
        (tmp / "tokenizer.json").write_bytes((base.folder / "tokenizer.json").read_bytes())
        meta = {
            **base.meta,
            "tuned": {
                "format": TUNED_FORMAT,
                "prompts": len(items),
                "config": asdict(config),
                "train_seconds": round(time.perf_counter() - started, 1),
            },
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    logger.info("tuned static table in %.0f s -> %s", meta["tuned"]["train_seconds"], out_dir)
    return Path(out_dir)


class TunedStaticEmbedder(StaticTableEmbedder):
    """The distilled static table fine-tuned on the train split (trains into the cache on first use).

    Served as ``static``: ``name`` is what the artifact records, and the table is copied into it like
    the distilled one. ``train_items`` left out means the default dataset's train split, as
    ``router_training.compare`` splits it for ``seed``; ``base`` left out is the full distilled table.
    """

    name = "static"
    needs_training_data: ClassVar[bool] = True

    def __init__(
        self,
        train_items: Sequence[LabelledPrompt] | None = None,
        seed: int = DEFAULT_SEED,
        cap: int | None = DEFAULT_CAP,
        config: StaticTuningConfig | None = None,
        cache_dir: Path | None = None,
        threads: int = 2,
        max_tokens: int = 512,
        base: StaticTableEmbedder | None = None,
    ) -> None:
        from router_training.embedders import StaticEmbedder

        items = list(train_items) if train_items is not None else default_train_items(seed, cap)
        config = config or StaticTuningConfig(seed=seed)
        base = base or StaticEmbedder(threads=threads)  # tests pass a small distillation
        folder = tuned_cache_path(items, config, base.meta, cache_dir)
        self.trained_here = not all((folder / f).is_file() for f in STATIC_FILES)
        if self.trained_here:
            train_tuned_static(items, base, folder, config, threads=threads)
        super().__init__(folder, max_tokens=max_tokens)

    @property
    def train_seconds(self) -> float:
        return float(self.meta["tuned"]["train_seconds"])
