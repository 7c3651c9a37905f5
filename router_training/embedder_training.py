"""What the trained embedders (``contrastive``, ``moe``) share: training data, cache keys, the loss.

Both are fitted on labelled prompts, so two things must hold or the comparison table lies:

- They see the *train* split only. The default training set is rebuilt here from the same
  ``default_dataset`` + ``stratified_split`` that ``router_training.compare`` uses, and the cache key
  hashes the exact (text, category) pairs, so a model trained on another split (or another cap or
  seed) is never loaded by mistake.
- They are trained once. Fine-tuning MiniLM takes minutes on 2 cores, so results live under
  ``<coe cache>/../router-embedders/<kind>-<key>`` and are written atomically (temporary folder,
  then rename), so a crash never leaves a half model that a later run loads.

The loss is supervised contrastive (Khosla et al. 2020): every prompt of the same category in the
batch is a positive. MultipleNegativesRankingLoss on (anchor, same-category) pairs would treat the
other same-category prompts in the batch as negatives; with four categories that is about a quarter
of each batch, so it would push apart exactly what should come together.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from router_training.data import DEFAULT_CAP, DEFAULT_SEED, LabelledPrompt
from router_training.splits import shuffled_groups

if TYPE_CHECKING:
    import torch

CACHE_FOLDER = "router-embedders"


def embedder_cache_dir(cache_dir: Path | None = None) -> Path:
    """Folder that holds trained embedders: next to the prepared expert models, not inside them,
    because ``COE_CACHE_DIR`` names the models folder and its listing should stay models only."""
    if cache_dir is not None:
        return Path(cache_dir)
    from coe.models.cache import default_cache_dir

    return default_cache_dir().parent / CACHE_FOLDER


def default_train_items(seed: int = DEFAULT_SEED, cap: int | None = DEFAULT_CAP) -> list[LabelledPrompt]:
    """The train split of the default dataset, exactly as ``compare`` splits it for this seed."""
    from router_training.data import default_dataset
    from router_training.splits import stratified_split

    dataset = default_dataset(cap=cap, seed=seed)
    split = stratified_split([item.category for item in dataset], seed=seed)
    return [dataset[i] for i in split.train]


def training_key(kind: str, config: dict[str, Any], items: Sequence[LabelledPrompt]) -> str:
    """Short hash of everything that changes the trained weights: kind, settings and data.

    ``source`` is left out on purpose: it is provenance and does not reach the model.
    """
    payload = {
        "kind": kind,
        "config": config,
        "train": [[item.text, item.category] for item in items],
    }
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


@contextlib.contextmanager
def atomic_dir(out_dir: Path) -> Iterator[Path]:
    """Yield a temporary sibling folder and rename it to ``out_dir`` only if the block succeeds."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out_dir.name + ".", dir=out_dir.parent))
    try:
        yield tmp
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def balanced_batches(labels: Sequence[str], batch_size: int, rng: random.Random) -> list[list[int]]:
    """One epoch of index batches with the categories interleaved.

    The contrastive loss needs at least one positive per anchor; a plain shuffle can put a lone
    category member in a small batch, where it contributes nothing. Interleaving the per-category
    shuffles round-robin gives every batch of >= 2 x categories a couple of members of each.
    """
    queues = [indices for _label, indices in shuffled_groups(labels, rng)]
    order: list[int] = []
    while any(queues):
        for queue in queues:
            if queue:
                order.append(queue.pop())
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def supcon_loss(embeddings: "torch.Tensor", labels: "torch.Tensor", temperature: float) -> "torch.Tensor":
    """Supervised contrastive loss over L2-normalised rows; anchors without a positive are skipped."""
    import torch

    n = embeddings.shape[0]
    logits = embeddings @ embeddings.T / temperature
    self_mask = torch.eye(n, dtype=torch.bool, device=embeddings.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positives = (labels[:, None] == labels[None, :]) & ~self_mask
    counts = positives.sum(dim=1)
    has_positive = counts > 0
    if not bool(has_positive.any()):
        return embeddings.sum() * 0.0  # keeps the graph; nothing to learn from this batch
    mean_log_prob = log_prob.masked_fill(~positives, 0.0).sum(dim=1)[has_positive] / counts[has_positive]
    return -mean_log_prob.mean()


def label_ids(categories: Sequence[str]) -> tuple[list[str], list[int]]:
    """Sorted category names and each item's index into them (stable across runs)."""
    names = sorted(set(categories))
    position = {name: i for i, name in enumerate(names)}
    return names, [position[c] for c in categories]
