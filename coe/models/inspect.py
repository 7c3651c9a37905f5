"""What a checkpoint folder holds, read cheaply: parameter count and bytes from safetensors headers.

`coe models list` must answer instantly, so nothing here loads tensors or hashes files.
"""

from __future__ import annotations

import json
import re
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
    active_params: int | None = None  # parameters one token runs through (== num_params when dense)


ROUTED_EXPERT = re.compile(r"\.experts\.\d+\.")  # Mixtral/Qwen-MoE/OLMoE/DeepSeek routed experts; not shared ones


def _safetensors_params(file: Path) -> tuple[int, int]:
    """(all parameters, parameters of routed experts) from one file's header."""
    with open(file, "rb") as handle:
        (header_len,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(header_len))
    sizes = {key: prod(meta["shape"]) for key, meta in header.items() if key != "__metadata__"}
    return sum(sizes.values()), sum(n for key, n in sizes.items() if ROUTED_EXPERT.search(key))


def checkpoint_stats(folder: Path) -> CheckpointStats:
    if not folder.is_dir():
        return CheckpointStats(None, None, None, None)
    weights = sorted(folder.glob("*.safetensors"))
    config_file = folder / "config.json"
    arch = settings = None
    if config_file.is_file():
        from coe.moe.settings import moe_settings

        config = json.loads(config_file.read_text())
        arch = (config.get("architectures") or [None])[0]
        settings = moe_settings(config)
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    if not weights:
        return CheckpointStats(folder, None, size, arch, settings.describe() if settings else None)
    counts = [_safetensors_params(w) for w in weights]
    params, routed = sum(c[0] for c in counts), sum(c[1] for c in counts)
    active = params
    if settings is not None and routed:  # each token runs top_k of the routed experts
        active = params - routed + routed * settings.top_k // settings.num_experts
    return CheckpointStats(folder, params, size, arch, settings.describe() if settings else None, active)


def expert_folder(expert: ExpertConfig, cache_dir: Path | None) -> Path | None:
    """Where the expert's weights are or will be, without preparing anything."""
    if expert.weights is None:
        return None
    name = expert.bundled_name or expert.built_name
    if name is not None:
        return (cache_dir or default_cache_dir()) / name
    return Path(expert.weights).expanduser()
