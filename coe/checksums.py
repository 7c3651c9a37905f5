"""File checksums, streamed.

Two kinds, for two jobs. sha256 names what must not be swapped for other bytes: prepared model
folders and the embedder files a router artifact names. Slot images (coe/swap) are CoE's own caches,
written by the engine that reads them: their checksum only has to catch a torn or corrupted file, and
it sits on a swap's critical path, so they use xxh3-128, which hashes at memory speed (about 15 GB/s
here against sha256's 1 GB/s, slower than the disk). Anyone who could forge an image could rewrite its
sidecar too, so a cryptographic hash would add nothing there.

A checksum string is "<algorithm>:<hex>", so a sidecar says how to check it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

CHUNK = 16 << 20
IMAGE_ALGORITHM = "xxh3_128"
ALGORITHMS = ("xxh3_128", "sha256")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def new_hasher(algorithm: str) -> Any:
    """A streaming hasher (`update`, `hexdigest`) for one of ALGORITHMS."""
    if algorithm == "xxh3_128":
        import xxhash

        return xxhash.xxh3_128()
    if algorithm == "sha256":
        return hashlib.sha256()
    raise ValueError(f"unknown checksum algorithm {algorithm!r}; known: {', '.join(ALGORITHMS)}")


def algorithm_of(checksum: str) -> str:
    algorithm, sep, _ = checksum.partition(":")
    if not sep or algorithm not in ALGORITHMS:
        raise ValueError(f"malformed checksum {checksum[:40]!r}: expected '<algorithm>:<hex>' with one of {', '.join(ALGORITHMS)}")
    return algorithm


def file_checksum(path: Path, algorithm: str = IMAGE_ALGORITHM) -> str:
    """'<algorithm>:<hex>' of a file's bytes."""
    digest = new_hasher(algorithm)
    with Path(path).open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return f"{algorithm}:{digest.hexdigest()}"
