"""The LoRA adapters one vLLM engine serves beside its base weights (multi-LoRA, as in S-LoRA/Punica).

Why adapters and not swaps: specialists fine-tuned from one base differ by a few MB of low-rank
weights. vLLM batches requests for different adapters and the base together, so a request for a
specialist never drains the engine or copies a checkpoint. vLLM's tiers map onto CoE's: hot = one of
`max_loras` slots of the running batch, warm = its host-RAM cache (`max_cpu_loras`), cold = the
adapter folder on disk, loaded on first use. vLLM does not say which cached adapters sit in a slot
at a given instant (a batch fills the slots from the cache as it is scheduled), so CoE reports
warm and cold; the engine preloads as many adapters as its cache holds when it starts.

On vLLM-CPU the engine process runs CoE's replacement of vLLM's CPU LoRA ops (coe/experts/lora_cpu.py):
vLLM's own are about 3x slower per decode step here and run the base requests of a mixed batch
through the last adapter loaded (index -1 read as the last slot).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from coe.config import EngineOptions
from coe.errors import ExpertUnavailable

VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # the max_lora_rank values vLLM accepts


def adapter_rank(folder: Path) -> int:
    """The rank `r` in a PEFT adapter_config.json."""
    return int(json.loads((folder / "adapter_config.json").read_text())["r"])


class LoRASet:
    """Named adapters of one engine, each with the stable integer id vLLM keys its caches by."""

    def __init__(self, adapters: dict[str, Path]) -> None:
        self.paths = {name: Path(path) for name, path in adapters.items()}
        self.ids = {name: i + 1 for i, name in enumerate(self.paths)}  # vLLM reserves 0 for "no adapter"

    @property
    def names(self) -> list[str]:
        return list(self.paths)

    def engine_args(self, options: EngineOptions) -> dict[str, Any]:
        """AsyncEngineArgs that turn LoRA on, sized for these adapters; nothing when there are none."""
        if not self.paths:
            return {}
        rank = max(adapter_rank(path) for path in self.paths.values())
        supported = next((r for r in VLLM_LORA_RANKS if r >= rank), None)
        if supported is None:
            raise ExpertUnavailable(f"adapter rank {rank} is above the largest vLLM serves ({VLLM_LORA_RANKS[-1]})")
        slots = min(options.lora_slots, len(self.paths))
        return {"enable_lora": True, "max_loras": slots, "max_lora_rank": supported,
                "max_cpu_loras": max(slots, min(options.lora_cache, len(self.paths)))}

    def request_for(self, name: str | None, engine_name: str) -> Any:
        """vLLM's LoRARequest for adapter `name`; None for the base weights."""
        if name is None:
            return None
        if name not in self.paths:
            raise ExpertUnavailable(f"expert '{engine_name}' serves no adapter '{name}' (it serves: "
                                    f"{', '.join(self.paths) or 'none'})")
        from vllm.lora.request import LoRARequest

        return LoRARequest(lora_name=name, lora_int_id=self.ids[name], lora_path=str(self.paths[name]))

    def preload(self, options: EngineOptions) -> list[Any]:
        """LoRARequests of the adapters to load at start: as many as the engine's cache holds."""
        return [self.request_for(name, "") for name in self.names[: options.lora_cache]]

    def tiers(self, loaded_ids: set[int] | list[int]) -> dict[str, str]:
        loaded = set(loaded_ids)
        return {name: "warm" if self.ids[name] in loaded else "cold" for name in self.paths}
