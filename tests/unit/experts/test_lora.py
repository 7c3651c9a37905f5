from __future__ import annotations

import json
from pathlib import Path

import pytest

from coe.config import EngineOptions
from coe.errors import ExpertUnavailable
from coe.experts.lora import LoRASet


def _adapter(folder: Path, rank: int) -> Path:
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"r": rank}))
    return folder


def test_engine_args_turn_lora_on_sized_for_the_adapters(tmp_path: Path) -> None:
    assert LoRASet({}).engine_args(EngineOptions()) == {}
    adapters = {"a": _adapter(tmp_path / "a", 4), "b": _adapter(tmp_path / "b", 12), "c": _adapter(tmp_path / "c", 8)}
    loras = LoRASet(adapters)
    args = loras.engine_args(EngineOptions(lora_slots=2, lora_cache=8))
    assert args == {"enable_lora": True, "max_loras": 2, "max_lora_rank": 16, "max_cpu_loras": 3}
    assert len(loras.preload(EngineOptions(lora_slots=1, lora_cache=2))) == 2


def test_ids_are_stable_and_unknown_adapters_are_refused(tmp_path: Path) -> None:
    loras = LoRASet({"a": _adapter(tmp_path / "a", 8), "b": _adapter(tmp_path / "b", 8)})
    assert loras.request_for(None, "base") is None
    request = loras.request_for("b", "base")
    assert (request.lora_name, request.lora_int_id, request.lora_path) == ("b", 2, str(tmp_path / "b"))
    with pytest.raises(ExpertUnavailable, match="serves no adapter 'z'"):
        loras.request_for("z", "base")
    assert loras.tiers({2}) == {"a": "cold", "b": "warm"}


def test_a_rank_vllm_cannot_serve_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ExpertUnavailable, match="rank 1024"):
        LoRASet({"a": _adapter(tmp_path / "a", 1024)}).engine_args(EngineOptions())
