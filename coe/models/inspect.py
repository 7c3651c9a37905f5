"""What a checkpoint folder holds, read cheaply: parameter count and bytes from safetensors headers.

`coe models list` must answer instantly, so nothing here loads tensors or hashes files.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from math import prod
from pathlib import Path

from coe.config import ExpertConfig
from coe.models.cache import default_cache_dir


@dataclass(frozen=True)
class CheckpointStats:
    path: Path | None
    num_params: int | None
    size_bytes: int | None
    architecture: str | None
    routing: str | None = None  # in-model MoE routing (experts, top-k, shared experts); None when dense


def _safetensors_params(file: Path) -> int:
    with open(file, "rb") as handle:
        (header_len,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(header_len))
    return sum(prod(meta["shape"]) for key, meta in header.items() if key != "__metadata__")


def checkpoint_stats(folder: Path) -> CheckpointStats:
    if not folder.is_dir():
        return CheckpointStats(None, None, None, None)
    weights = sorted(folder.glob("*.safetensors"))
    config_file = folder / "config.json"
    arch = routing = None
    if config_file.is_file():
        from coe.moe.settings import moe_settings

        config = json.loads(config_file.read_text())
        arch = (config.get("architectures") or [None])[0]
        settings = moe_settings(config)
        routing = settings.describe() if settings else None
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    params = sum(_safetensors_params(w) for w in weights) if weights else None
    return CheckpointStats(folder, params, size, arch, routing)


def expert_folder(expert: ExpertConfig, cache_dir: Path | None) -> Path | None:
    """Where the expert's weights are or will be, without preparing anything."""
    if expert.weights is None:
        return None
    if expert.bundled_name is not None:
        return (cache_dir or default_cache_dir()) / expert.bundled_name
    return Path(expert.weights).expanduser()
