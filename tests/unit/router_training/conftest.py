"""A small static distillation shared by the embedder tests (ids below 8000, 64 dims: about 10 s)."""

from __future__ import annotations

import pytest

from router_training.embedders import StaticEmbedder

# Ids below 8000 hold the common English words the tests use.
VOCAB_LIMIT = 8000
DIMS = 64


@pytest.fixture(scope="session")
def small_static(tmp_path_factory: pytest.TempPathFactory) -> StaticEmbedder:
    return StaticEmbedder(cache_dir=tmp_path_factory.mktemp("static"), dims=DIMS, vocab_limit=VOCAB_LIMIT)
