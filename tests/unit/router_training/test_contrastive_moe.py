"""The trained embedders (``contrastive``, ``moe``) on a tiny subset: 40 prompts, a few steps each.

The separation checks compare against frozen MiniLM on the same prompts: mean cosine to prompts of
the same category minus mean cosine to the others must grow. A sign error in the loss, labels that
are not wired through, or a gate that ignores its experts all make that gap shrink or stay put.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np
import pytest

from router_training import embedders as embedders_module
from router_training.compare import EmbedderCost, compare_stage1
from router_training.contrastive import ContrastiveConfig, ContrastiveEmbedder, contrastive_cache_path
from router_training.data import LabelledPrompt, default_dataset
from router_training.embedder_training import balanced_batches, supcon_loss
from router_training.embedders import Embedder, MiniLMEmbedder
from router_training.moe_embedding import MoEConfig, MoEEmbedder
from router_training.splits import stratified_split

PER_CATEGORY = 10  # 40 prompts
TINY_CONTRASTIVE = ContrastiveConfig(steps=10, batch_size=8, max_seq_length=32, learning_rate=2e-4)
TINY_MOE = MoEConfig(rank=8, steps=60)
SEQ = 64  # encoding length for base and fine-tuned model alike: same inputs, a third of the time
# One torch thread: on shared CI cores two threads spin against other jobs and ran 5-8x slower here.
THREADS = 1


@pytest.fixture(scope="module")
def items() -> list[LabelledPrompt]:
    return default_dataset(cap=PER_CATEGORY)


@pytest.fixture(scope="module")
def base() -> MiniLMEmbedder:
    return MiniLMEmbedder(threads=THREADS, max_seq_length=SEQ)


@pytest.fixture(scope="module")
def base_vectors(items: list[LabelledPrompt], base: MiniLMEmbedder) -> np.ndarray:
    return base.encode([item.text for item in items])


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("router-embedders")


@pytest.fixture(scope="module")
def contrastive(items: list[LabelledPrompt], cache: Path) -> ContrastiveEmbedder:
    return ContrastiveEmbedder(
        train_items=items, config=TINY_CONTRASTIVE, cache_dir=cache, max_seq_length=SEQ, threads=THREADS
    )


@pytest.fixture(scope="module")
def moe(items: list[LabelledPrompt], cache: Path, base: MiniLMEmbedder) -> MoEEmbedder:
    return MoEEmbedder(train_items=items, config=TINY_MOE, cache_dir=cache, base=base)


def separation(vectors: np.ndarray, categories: Sequence[str]) -> float:
    """Mean same-category cosine (self pairs excluded) minus mean different-category cosine."""
    labels = np.asarray(categories)
    similarity = vectors @ vectors.T
    same = labels[:, None] == labels[None, :]
    np.fill_diagonal(same, False)
    different = labels[:, None] != labels[None, :]
    return float(similarity[same].mean() - similarity[different].mean())


def test_supcon_loss_rewards_grouping_by_label_and_skips_lone_anchors() -> None:
    import torch

    labels = torch.tensor([0, 0, 1, 1])
    grouped = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    mixed = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    assert supcon_loss(grouped, labels, 0.1) < supcon_loss(mixed, labels, 0.1)
    # The label-1 row has no positive: it only serves as a negative, so the loss is the two label-0
    # anchors' -log(e^1 / (e^1 + e^0)) at temperature 1, not NaN and not diluted by a zero term.
    lone = supcon_loss(grouped[:3], torch.tensor([0, 0, 1]), 1.0)
    assert float(lone) == pytest.approx(math.log1p(math.exp(-1.0)), rel=1e-5)


def test_balanced_batches_cover_every_item_once_and_mix_categories() -> None:
    import random

    labels = ["a"] * 6 + ["b"] * 6 + ["c"] * 3
    batches = balanced_batches(labels, 6, random.Random(0))
    assert sorted(i for batch in batches for i in batch) == list(range(15))
    assert all({labels[i] for i in batch} == {"a", "b", "c"} for batch in batches[:2])


@pytest.mark.parametrize("fixture", ["contrastive", "moe"])
def test_trained_vectors_are_normalised_with_the_base_width(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    embedder: Embedder = request.getfixturevalue(fixture)
    vectors = embedder.encode(["write a haiku about autumn", "solve x^2 = 4", "fix this segfault"])
    assert vectors.dtype == np.float32 and vectors.shape == (3, 384) == (3, embedder.dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert embedder.trained_here and embedder.train_seconds > 0


@pytest.mark.parametrize("fixture", ["contrastive", "moe"])
def test_training_brings_same_category_prompts_closer(
    fixture: str, request: pytest.FixtureRequest, items: list[LabelledPrompt], base_vectors: np.ndarray
) -> None:
    embedder: Embedder = request.getfixturevalue(fixture)
    texts, categories = [item.text for item in items], [item.category for item in items]
    before = separation(base_vectors, categories)
    after = separation(embedder.encode(texts), categories)
    print(f"{fixture}: separation {before:.3f} -> {after:.3f}")
    assert after > before + 0.05, (before, after)


def test_contrastive_is_loaded_from_cache_not_retrained(
    contrastive: ContrastiveEmbedder, items: list[LabelledPrompt], cache: Path
) -> None:
    stamp = (contrastive.folder / "coe_meta.json").stat().st_mtime_ns
    again = ContrastiveEmbedder(
        train_items=items, config=TINY_CONTRASTIVE, cache_dir=cache, max_seq_length=SEQ, threads=THREADS
    )
    assert not again.trained_here and again.folder == contrastive.folder
    assert (again.folder / "coe_meta.json").stat().st_mtime_ns == stamp
    assert again.train_seconds == contrastive.train_seconds
    np.testing.assert_allclose(again.encode(["hello world"]), contrastive.encode(["hello world"]), atol=1e-6)


def test_moe_is_loaded_from_cache_not_retrained(
    moe: MoEEmbedder, items: list[LabelledPrompt], cache: Path, base: MiniLMEmbedder
) -> None:
    stamp = (moe.folder / "weights.npz").stat().st_mtime_ns
    again = MoEEmbedder(train_items=items, config=TINY_MOE, cache_dir=cache, base=base)
    assert not again.trained_here and again.folder == moe.folder
    assert (again.folder / "weights.npz").stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(again.encode(["hello world"]), moe.encode(["hello world"]))
    assert not [p for p in cache.iterdir() if "." in p.name]  # no temporary folders left behind


def test_moe_gate_routes_training_prompts_to_their_category(
    moe: MoEEmbedder, items: list[LabelledPrompt], base_vectors: np.ndarray
) -> None:
    gate = moe.weights.gate(base_vectors)
    np.testing.assert_allclose(gate.sum(axis=1), 1.0, rtol=1e-5)
    routed = np.asarray(moe.weights.categories)[gate.argmax(axis=1)]
    assert (routed == np.asarray([item.category for item in items])).mean() >= 0.8


def test_cache_key_follows_the_training_data_and_settings(items: list[LabelledPrompt], cache: Path) -> None:
    path = contrastive_cache_path(items, TINY_CONTRASTIVE, cache)
    assert path.parent == cache
    assert contrastive_cache_path(items[1:], TINY_CONTRASTIVE, cache) != path
    relabelled = [LabelledPrompt(items[0].text, "writing" if items[0].category != "writing" else "math", "x")]
    assert contrastive_cache_path(relabelled + items[1:], TINY_CONTRASTIVE, cache) != path
    other_settings = dataclasses.replace(TINY_CONTRASTIVE, steps=11)
    assert contrastive_cache_path(items, other_settings, cache) != path


class _RecordingEmbedder(Embedder):
    """Stands in for a trained embedder: records what ``compare`` trains it on."""

    name = "recording"
    needs_training_data: ClassVar[bool] = True
    seen: ClassVar[list[list[LabelledPrompt]]] = []

    def __init__(self, train_items: Sequence[LabelledPrompt], seed: int, **_: Any) -> None:
        self.seen.append(list(train_items))

    @property
    def dim(self) -> int:
        return 4

    def encode(self, texts: list[str]) -> np.ndarray:
        rng = np.random.default_rng(len(texts))
        vectors = rng.normal(size=(len(texts), 4)).astype(np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_compare_trains_embedders_on_the_train_split_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(embedders_module._REGISTRY, "recording", f"{__name__}:_RecordingEmbedder")
    dataset = default_dataset(cap=PER_CATEGORY)
    costs: list[EmbedderCost] = []
    rows = compare_stage1(dataset, seed=3, embedders=["recording"], costs=costs)
    split = stratified_split([item.category for item in dataset], seed=3)
    assert _RecordingEmbedder.seen[-1] == [dataset[i] for i in split.train]
    assert [row.method for row in rows][-1:] == ["recording + logreg"]  # trained: logreg only
    assert [c.embedder for c in costs] == ["recording"]
