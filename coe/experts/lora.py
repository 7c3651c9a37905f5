"""The LoRA adapters one vLLM engine serves beside its base weights (multi-LoRA, as in S-LoRA/Punica).

Why adapters and not swaps: specialists fine-tuned from one base differ by a few MB of low-rank
weights. vLLM batches requests for different adapters and the base together, so a request for a
specialist never drains the engine or copies a checkpoint. vLLM's tiers map onto CoE's: hot = one of
`max_loras` slots of the running batch, warm = its host-RAM cache (`max_cpu_loras`), cold = the
adapter folder on disk, loaded on first use. vLLM does not say which cached adapters sit in a slot
at a given instant (a batch fills the slots from the cache as it is scheduled), so CoE reports
warm and cold; the engine preloads as many adapters as its cache holds when it starts.

A vLLM-CPU bug this module works around (measured, vLLM 0.32): vLLM marks a token that uses no
adapter with slot index -1, and its CPU LoRA ops (vllm/lora/ops/torch_ops) index the stacked adapter
weights with it, which in torch is the *last* slot. A batch that mixes base and adapter requests
therefore runs its base requests through the last adapter loaded (a batch of base requests alone is
fine: vLLM skips LoRA then). GPU kernels mask -1. On CPU, CoE sends base requests through a zero
adapter (a copy of a real one with every weight zero, so x·A·B adds exactly 0): no request of a
LoRA engine carries -1. It takes one slot, counted in max_loras.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from coe.config import EngineOptions
from coe.errors import ExpertUnavailable

VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # the max_lora_rank values vLLM accepts
ZERO_ADAPTER = "coe-base-weights"  # the zero adapter base requests take on CPU (see the module docstring)


def adapter_rank(folder: Path) -> int:
    """The rank `r` in a PEFT adapter_config.json."""
    return int(json.loads((folder / "adapter_config.json").read_text())["r"])


class LoRASet:
    """Named adapters of one engine, each with the stable integer id vLLM keys its caches by."""

    def __init__(self, adapters: dict[str, Path], zero_for_base: bool | None = None) -> None:
        """`zero_for_base`: send base requests through a zero adapter (default: on CPU, where vLLM needs it)."""
        self.paths = {name: Path(path) for name, path in adapters.items()}
        self.ids = {name: i + 1 for i, name in enumerate(self.paths)}  # vLLM reserves 0 for "no adapter"
        self.zero_for_base = bool(self.paths) and (_on_cpu() if zero_for_base is None else zero_for_base)
        self._zero: Any = None

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
        extra = 1 if self.zero_for_base else 0
        slots = min(options.lora_slots, len(self.paths)) + extra
        return {"enable_lora": True, "max_loras": slots, "max_lora_rank": supported,
                "max_cpu_loras": max(slots, min(options.lora_cache, len(self.paths)) + extra)}

    def request_for(self, name: str | None, engine_name: str) -> Any:
        """vLLM's LoRARequest for adapter `name`; for the base weights None, or the zero adapter on CPU."""
        if name is None:
            return self.zero_request() if self.zero_for_base else None
        if name not in self.paths:
            raise ExpertUnavailable(f"expert '{engine_name}' serves no adapter '{name}' (it serves: "
                                    f"{', '.join(self.paths) or 'none'})")
        from vllm.lora.request import LoRARequest

        return LoRARequest(lora_name=name, lora_int_id=self.ids[name], lora_path=str(self.paths[name]))

    def preload(self, options: EngineOptions) -> list[Any]:
        """LoRARequests of the adapters to load at start: as many as the engine's cache holds."""
        zero = [self.zero_request()] if self.zero_for_base else []
        return zero + [self.request_for(name, "") for name in self.names[: options.lora_cache]]

    def zero_request(self) -> Any:
        """The zero adapter, written once to a temporary folder (it lives as long as this engine)."""
        if self._zero is None:
            from vllm.lora.request import LoRARequest

            self._zero_dir = tempfile.TemporaryDirectory(prefix="coe-zero-lora-")
            write_zero_adapter(next(iter(self.paths.values())), Path(self._zero_dir.name))
            self._zero = LoRARequest(lora_name=ZERO_ADAPTER, lora_int_id=len(self.paths) + 1,
                                     lora_path=self._zero_dir.name)
        return self._zero

    def tiers(self, loaded_ids: set[int] | list[int]) -> dict[str, str]:
        loaded = set(loaded_ids)
        return {name: "warm" if self.ids[name] in loaded else "cold" for name in self.paths}


def write_zero_adapter(template: Path, out: Path) -> Path:
    """`template`'s adapter with every weight zero: the same modules and ranks, an exact no-op."""
    from safetensors.torch import load_file, save_file

    weights = load_file(str(template / "adapter_model.safetensors"))
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.new_zeros(v.shape).contiguous() for k, v in weights.items()}, str(out / "adapter_model.safetensors"))
    (out / "adapter_config.json").write_text((template / "adapter_config.json").read_text())
    return out


def _on_cpu() -> bool:
    from vllm.platforms import current_platform

    return current_platform.is_cpu()
