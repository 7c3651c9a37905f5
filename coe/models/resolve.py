"""Where an expert's weights are: a prepared bundled model or a local checkpoint folder.

Resolution happens in the driver before any replica starts, so a missing package or a bad path is
reported once, plainly, instead of as a crashing replica that Serve keeps restarting.
"""

from __future__ import annotations

import json
from pathlib import Path

from coe.config import ExpertConfig


class CheckpointError(Exception):
    """An expert's weights cannot be used; the message says why and what to do."""


def _check_architecture(expert: ExpertConfig, folder: Path) -> None:
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise CheckpointError(f"expert '{expert.id}': {folder} has no config.json (not a HF checkpoint)")
    architectures = json.loads(config_file.read_text()).get("architectures") or []
    if expert.architecture and expert.architecture not in architectures:
        raise CheckpointError(
            f"expert '{expert.id}': coe.yaml says architecture {expert.architecture}, "
            f"but {config_file} says {architectures}"
        )


def resolve_checkpoint(expert: ExpertConfig, cache_dir: Path | None = None, progress=None) -> Path:
    """Return a vLLM-loadable folder for a local expert, preparing a bundled model on first use."""
    if expert.weights is None:
        raise CheckpointError(f"expert '{expert.id}' is remote and has no local weights")
    name = expert.bundled_name
    if name is not None:
        from coe.models.prepare import prepare

        folder = prepare(name, cache_dir, progress=progress).path
    else:
        folder = Path(expert.weights).expanduser()
        if not folder.is_dir():
            raise CheckpointError(f"expert '{expert.id}': weights folder {folder} does not exist")
    _check_architecture(expert, folder)
    return folder
