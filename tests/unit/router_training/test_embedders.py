"""The embedder registry and the locally distilled static embedder (on a small vocabulary slice)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from router_training.embedders import (
    StaticEmbedder,
    UnknownEmbedder,
    get_embedder,
    list_registered,
    static_cache_path,
)

from tests.unit.router_training.conftest import DIMS, VOCAB_LIMIT


@pytest.fixture(scope="module")
def static(small_static: StaticEmbedder) -> StaticEmbedder:
    return small_static


def test_registry_lists_names_and_rejects_unknown_ones() -> None:
    assert list_registered() == ["contrastive", "minilm", "moe", "static", "static-tuned"]
    with pytest.raises(UnknownEmbedder) as caught:
        get_embedder("bert-large")
    assert "'bert-large'" in str(caught.value) and "contrastive, minilm, moe, static, static-tuned" in str(caught.value)


def test_static_vectors_are_normalised_float32(static: StaticEmbedder) -> None:
    vectors = static.encode(["the cat sat on the mat", "a short note", "write a function that returns a list"])
    assert vectors.dtype == np.float32 and vectors.shape == (3, DIMS) == (3, static.dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert static.meta["vocab_rows"] == VOCAB_LIMIT


def test_static_puts_similar_texts_closer_than_unrelated_ones(static: StaticEmbedder) -> None:
    cat, dog, stocks, banks = static.encode(
        [
            "the cat sat on the mat",
            "a dog lay on the rug",
            "the stock market fell sharply today",
            "interest rates and bank shares dropped",
        ]
    )
    assert cat @ dog > max(cat @ stocks, cat @ banks, dog @ stocks, dog @ banks) + 0.2
    assert stocks @ banks > max(stocks @ cat, stocks @ dog, banks @ cat, banks @ dog) + 0.2


def test_static_text_without_known_tokens_is_a_zero_row(static: StaticEmbedder) -> None:
    # "aaa" is one word piece above the vocabulary limit, "" has none: zeros, never NaNs
    vectors = static.encode(["aaa", ""])
    np.testing.assert_array_equal(vectors, np.zeros((2, DIMS), dtype=np.float32))


def test_static_is_distilled_once_then_loaded_from_cache(static: StaticEmbedder) -> None:
    table = static.folder / "embeddings.npy"
    before = table.stat().st_mtime_ns
    again = StaticEmbedder(cache_dir=static.folder.parent, dims=DIMS, vocab_limit=VOCAB_LIMIT)
    assert table.stat().st_mtime_ns == before
    np.testing.assert_array_equal(again.encode(["hello world"]), static.encode(["hello world"]))
    assert static.folder == static_cache_path(static.folder.parent, DIMS, VOCAB_LIMIT)
    assert not [p for p in static.folder.parent.iterdir() if p != static.folder]  # no temp leftovers


def test_static_cache_dir_follows_coe_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("COE_CACHE_DIR", str(tmp_path))
    assert static_cache_path().parent == tmp_path
