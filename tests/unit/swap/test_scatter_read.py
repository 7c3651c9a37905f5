"""A cold image read into many buffers with few preadv calls, hashed on a second thread: the same
bytes, in the same order, as reading and hashing the file whole (coe/swap/scatter_read.py)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import xxhash

from coe.swap import scatter_read
from coe.swap.scatter_read import batches, preadv_exactly, read_into


def _buffers(sizes: list[int]) -> list[np.ndarray]:
    return [np.zeros(n, dtype=np.uint8) for n in sizes]


def test_batches_keep_order_and_respect_the_byte_and_buffer_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    views = [memoryview(b) for b in _buffers([3, 4, 10, 1, 1, 2])]
    groups = batches(views, limit=7)
    assert [[v.nbytes for v in g] for g in groups] == [[3, 4], [10], [1, 1, 2]]  # a view over the limit goes alone
    monkeypatch.setattr(scatter_read, "MAX_IOVECS", 2)
    assert [[v.nbytes for v in g] for g in batches(views, limit=100)] == [[3, 4], [10, 1], [1, 2]]


@pytest.mark.parametrize("limit", [64 << 20, 5000])  # one batch; many (and a buffer split across none)
def test_read_into_fills_every_buffer_and_hashes_the_bytes_in_file_order(tmp_path: Path, limit: int,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scatter_read, "READ_BATCH_BYTES", limit)
    data = np.random.default_rng(0).integers(0, 256, size=40_000, dtype=np.uint8).tobytes()
    path = tmp_path / "image"
    path.write_bytes(b"HEADER" + data)
    sizes = [1000, 3000, 0, 7000, 29_000]
    buffers = _buffers(sizes)
    digest = xxhash.xxh3_128(b"HEADER")
    fd = os.open(path, os.O_RDONLY)
    try:
        assert read_into(fd, 6, [memoryview(b) for b in buffers], digest) == len(data)
    finally:
        os.close(fd)
    assert b"".join(b.tobytes() for b in buffers) == data
    assert digest.hexdigest() == xxhash.xxh3_128(b"HEADER" + data).hexdigest()


def test_a_file_that_ends_early_is_an_error_not_zeros(tmp_path: Path) -> None:
    path = tmp_path / "short"
    path.write_bytes(b"x" * 100)
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(EOFError, match="ends early, at byte 100"):
            preadv_exactly(fd, [memoryview(b) for b in _buffers([60, 60])], 0)
    finally:
        os.close(fd)
