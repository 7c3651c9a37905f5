"""The static table fine-tuned on labelled prompts: what moves, what it learns, how it is served."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from coe.routing.embedders import StaticTableEmbedder, load_served_embedder
from router_training.data import default_dataset
from router_training.embedders import MiniLMEmbedder, StaticEmbedder
from router_training.static_tuning import StaticTuningConfig, TunedStaticEmbedder, tune_table


@pytest.fixture(scope="module")
def prompts() -> list:
    return default_dataset(cap=12)  # 48 real prompts, 12 per category


def _centroid_accuracy(vectors: np.ndarray, labels: list[str]) -> float:
    """Leave-one-out nearest-centroid accuracy: how well the categories separate in this space."""
    names = sorted(set(labels))
    y = np.array([names.index(label) for label in labels])
    sums = np.stack([vectors[y == c].sum(axis=0) for c in range(len(names))])
    counts = np.bincount(y, minlength=len(names)).astype(float)
    hits = 0
    for i, v in enumerate(vectors):
        centroids = sums.copy()
        centroids[y[i]] -= v
        centroids /= (counts - (np.arange(len(names)) == y[i]))[:, None]
        hits += int(np.argmax(centroids @ v) == y[i])
    return hits / len(vectors)


def test_tuning_moves_only_the_prompts_tokens_and_separates_their_categories(
    small_static: StaticEmbedder, prompts: list
) -> None:
    texts, labels = [p.text for p in prompts], [p.category for p in prompts]
    ids = small_static.token_ids(texts)
    targets = MiniLMEmbedder().encode(texts)
    tuned = tune_table(small_static.table, ids, labels, targets, StaticTuningConfig(epochs=20))

    seen = np.unique(np.concatenate(ids))
    unseen = np.setdiff1d(np.arange(small_static.table.shape[0]), seen)
    np.testing.assert_array_equal(tuned[unseen], small_static.table[unseen])
    assert not np.allclose(tuned[seen], small_static.table[seen])

    def pooled(table: np.ndarray) -> np.ndarray:
        rows = np.stack([table[i].mean(axis=0) for i in ids])
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)

    assert _centroid_accuracy(pooled(tuned), labels) > _centroid_accuracy(pooled(small_static.table), labels)


def test_tuned_table_is_cached_and_served_as_a_plain_static_table(
    small_static: StaticEmbedder, prompts: list, tmp_path: Path
) -> None:
    config = StaticTuningConfig(epochs=2)
    first = TunedStaticEmbedder(prompts, config=config, cache_dir=tmp_path, base=small_static)
    assert first.trained_here and first.name == "static"
    assert first.meta["tuned"]["prompts"] == len(prompts) and first.train_seconds > 0
    table = first.folder / "embeddings.npy"
    stamp = table.stat().st_mtime_ns

    again = TunedStaticEmbedder(prompts, config=config, cache_dir=tmp_path, base=small_static)
    assert not again.trained_here and table.stat().st_mtime_ns == stamp
    other = TunedStaticEmbedder(prompts[:-1], config=config, cache_dir=tmp_path, base=small_static)
    assert other.folder != first.folder  # other prompts, another table: never loaded by mistake

    served = load_served_embedder(first.fingerprint(), first.folder)
    assert type(served) is StaticTableEmbedder
    texts = ["write a function that sorts a list", "a poem about the sea"]
    np.testing.assert_array_equal(served.encode(texts), first.encode(texts))
