"""In-model routing settings read from a checkpoint's config.json, whatever the MoE family.

Why: Mixtral, Qwen2-MoE / Qwen3-MoE, OLMoE and DeepSeek-MoE name the same three facts differently;
`coe models list` and `coe moe-stats` need them in one shape without loading any weights.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

EXPERT_COUNT_KEYS = ("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts")
TOP_K_KEYS = ("num_experts_per_tok", "moe_top_k", "top_k")


@dataclass(frozen=True)
class MoESettings:
    num_experts: int
    top_k: int
    shared_experts: int  # always-on experts beside the routed ones (0: none)

    def describe(self) -> str:
        shared = f" +{self.shared_experts} shared" if self.shared_experts else ""
        return f"{self.num_experts} experts, top-{self.top_k}{shared}"


def _config(source: dict | Path) -> dict:
    if isinstance(source, dict):
        return source
    file = Path(source) / "config.json" if Path(source).is_dir() else Path(source)
    return json.loads(file.read_text()) if file.is_file() else {}


def moe_settings(source: dict | Path) -> MoESettings | None:
    """The routing settings of a config (dict, folder or config.json), or None for a dense model."""
    config = _config(source)
    config = config.get("text_config", config) if "text_config" in config else config
    experts = next((config[k] for k in EXPERT_COUNT_KEYS if isinstance(config.get(k), int)), None)
    top_k = next((config[k] for k in TOP_K_KEYS if isinstance(config.get(k), int)), None)
    if not experts or experts < 2 or not top_k:
        return None
    shared = config.get("n_shared_experts") or 0
    if not shared and config.get("shared_expert_intermediate_size"):
        shared = 1  # Qwen2-MoE: one gated shared expert of that width
    return MoESettings(int(experts), int(top_k), int(shared))
