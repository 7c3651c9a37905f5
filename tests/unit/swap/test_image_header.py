"""Image headers: loads read the data section straight into the parameters, so the header must lay the
tensors back to back in their dtypes' sizes (the safetensors rule); anything else is refused by name."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from coe.swap.image import DTYPE_BYTES, ImageMismatch, parse_header, read_header
from coe.swap.mapped_image import MappedImage
from coe.swap.slot_worker import DTYPE_CODES


def header(**tensors: tuple[str, list[int], int, int]) -> bytes:
    return json.dumps({name: {"dtype": d, "shape": s, "data_offsets": [a, b]}
                       for name, (d, s, a, b) in tensors.items()}).encode()


def test_sizes_agree_with_torch() -> None:
    for dtype, code in DTYPE_CODES.items():
        assert DTYPE_BYTES[code] == torch.empty(0, dtype=dtype).element_size(), code


def test_a_file_safetensors_wrote_parses_in_file_order(tmp_path: Path) -> None:
    path = tmp_path / "x.safetensors"
    save_file({"b": torch.zeros(3, dtype=torch.bfloat16), "a": torch.zeros(2, 2), "c": torch.zeros(5, dtype=torch.int8)},
              str(path))
    data_start, entries = read_header(path)
    assert [e.start for e in entries] == sorted(e.start for e in entries) and entries[0].start == 0
    assert sum(e.end - e.start for e in entries) == 6 + 16 + 5 == path.stat().st_size - data_start


@pytest.mark.parametrize("tensors, complaint", [
    ({"a": ("F32", [2], 4, 12)}, r"tensor a: bytes 4-12, expected 0-8"),  # a hole before the first
    ({"a": ("F32", [2], 0, 8), "b": ("F32", [1], 12, 16)}, r"tensor b: bytes 12-16, expected 8-12"),  # a hole
    ({"a": ("F32", [2], 0, 8), "b": ("F32", [1], 4, 8)}, r"tensor b: bytes 4-8, expected 8-12"),  # overlap
    ({"a": ("BF16", [2, 3], 0, 24)}, r"tensor a: bytes 0-24, expected 0-12 \(tensors back to back, BF16 \[2, 3\]\)"),
    ({"a": ("Q4_K", [8], 0, 8)}, r"tensor a: unknown safetensors dtype 'Q4_K'"),
])
def test_a_malformed_layout_is_refused_by_name(tensors: dict, complaint: str) -> None:
    raw = header(**tensors)
    with pytest.raises(ImageMismatch, match=f"^img.safetensors: {complaint}"):
        parse_header(len(raw), raw, "img.safetensors")


def test_a_mapped_image_refuses_it_too(tmp_path: Path) -> None:
    raw = header(a=("F32", [2], 0, 4))
    path = tmp_path / "bad.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(8))
    with pytest.raises(ImageMismatch, match=f"^{re.escape(str(path))}: tensor a: bytes 0-4, expected 0-8"):
        MappedImage(str(path))
    with pytest.raises(ImageMismatch, match=f"^{re.escape(str(path))}: tensor a"):
        read_header(path)
