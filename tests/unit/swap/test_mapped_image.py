"""Warm images kept mapped in the engine process: the bytes copied are the file's, and a mapping never
outlives the file it was made from (coe/swap/mapped_image.py, SlotWorkerExtension.coe_load_image)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import torch
import xxhash
from safetensors.torch import save_file

from coe.checksums import file_checksum
from coe.swap.image import stat_identity
from coe.swap.mapped_image import MappedImage
from coe.swap.slot_worker import SlotWorkerExtension


def _image(path: Path, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    tensors = {"embed": torch.randn(64, 8, generator=g).to(torch.bfloat16), "norm": torch.randn(8, generator=g),
               "head": torch.randn(8, 64, generator=g).to(torch.bfloat16)}
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(tensors, str(tmp))
    os.replace(tmp, path)  # as the warm tier writes images: a new file renamed over the old
    return tensors


def _zeros_like(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: torch.zeros_like(v) for k, v in tensors.items()}


def test_copy_into_writes_the_files_bytes(tmp_path: Path) -> None:
    path = tmp_path / "a.safetensors"
    expected = _image(path, seed=0)
    params = _zeros_like(expected)
    image = MappedImage(str(path))
    image.copy_into(params)
    assert all(torch.equal(params[k], expected[k]) for k in expected)
    assert image.nbytes == sum(t.numel() * t.element_size() for t in expected.values())
    image.close()


def test_a_replaced_or_deleted_file_is_no_longer_current(tmp_path: Path) -> None:
    path = tmp_path / "a.safetensors"
    _image(path, seed=0)
    image = MappedImage(str(path))
    os.utime(path)  # the warm tier's LRU touch: the same bytes, still current
    assert image.current()
    _image(path, seed=1)
    assert not image.current()
    image.close()
    again = MappedImage(str(path))
    path.unlink()
    assert not again.current()
    again.close()


class _Host(SlotWorkerExtension):
    """The worker extension's own methods on plain tensors instead of a vLLM model runner."""

    def __init__(self, params: dict[str, torch.Tensor]) -> None:
        self.params = params

    def _coe_params(self) -> dict[str, torch.Tensor]:
        return self.params


def test_worker_reuses_a_mapping_and_drops_it_when_the_image_changes(tmp_path: Path) -> None:
    path = tmp_path / "a.safetensors"
    first = _image(path, seed=0)
    host = _Host(_zeros_like(first))
    assert host.coe_load_image(str(path))["mapping_reused"] is False
    assert host.coe_load_image(str(path))["mapping_reused"] is True
    second = _image(path, seed=1)  # evicted and promoted again: new bytes under the same name
    result = host.coe_load_image(str(path))
    assert result["mapping_reused"] is False  # never the old mapping's bytes
    assert all(torch.equal(host.params[k], second[k]) for k in second)
    path.unlink()
    assert host.coe_forget_images() == 0  # an evicted image's pages are let go


@pytest.mark.parametrize("algorithm", ["xxh3_128", "sha256"])  # sha256: sidecars written before xxh3
def test_cold_load_hashes_the_whole_file(tmp_path: Path, algorithm: str) -> None:
    path = tmp_path / "a.safetensors"
    expected = _image(path, seed=2)
    host = _Host(_zeros_like(expected))
    result = host.coe_load_image(str(path), "hash", algorithm)
    assert result["checksum"] == file_checksum(path, algorithm)
    reference = xxhash.xxh3_128(path.read_bytes()) if algorithm == "xxh3_128" else hashlib.sha256(path.read_bytes())
    assert result["checksum"] == f"{algorithm}:{reference.hexdigest()}"
    assert result["identity"] == stat_identity(path)  # what the slot records as verified
    assert all(torch.equal(host.params[k], expected[k]) for k in expected)


def test_a_verified_cold_load_reads_the_same_bytes_without_a_hash(tmp_path: Path) -> None:
    path = tmp_path / "a.safetensors"
    expected = _image(path, seed=3)
    host = _Host(_zeros_like(expected))
    result = host.coe_load_image(str(path), "read")
    assert result["checksum"] is None and result["bytes"] == MappedImage(str(path)).nbytes
    assert all(torch.equal(host.params[k], expected[k]) for k in expected)


def test_an_unknown_load_mode_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.safetensors"
    host = _Host(_zeros_like(_image(path, seed=4)))
    with pytest.raises(ValueError, match="unknown image load mode"):
        host.coe_load_image(str(path), "fast")
