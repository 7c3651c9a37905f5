"""Which config differences keep two checkpoints in one slot: names and provenance do, shapes do not."""

from __future__ import annotations

import json
from pathlib import Path

from coe.swap.slot import _layout_config


def _write(folder: Path, config: dict) -> Path:
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_provenance_keys_are_ignored_but_shapes_are_not(tmp_path: Path) -> None:
    shape = {"hidden_size": 576, "num_hidden_layers": 30, "architectures": ["LlamaForCausalLM"]}
    converted = _write(tmp_path / "a", {**shape, "_model_name_or_path": "Smollm2 135M", "torch_dtype": "bfloat16"})
    finetuned = _write(tmp_path / "b", {**shape, "transformers_version": "4.57.0", "dtype": "bfloat16"})
    wider = _write(tmp_path / "c", {**shape, "hidden_size": 640})
    assert _layout_config(converted) == _layout_config(finetuned)
    assert _layout_config(converted) != _layout_config(wider)
