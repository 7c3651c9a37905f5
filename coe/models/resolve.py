"""Where an expert's weights are: a prepared bundled model or a local checkpoint folder.

Resolution happens in the driver before any replica starts, so a missing package or a bad path is
reported once, plainly, instead of as a crashing replica that Serve keeps restarting.
"""

from __future__ import annotations

import json
from pathlib import Path

from coe.config import CoEConfig, ExpertConfig
from coe.finetune.layout import ADAPTER_FOLDER
from coe.models.cache import default_cache_dir


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
    elif expert.built_name is not None:
        folder = (cache_dir or default_cache_dir()) / expert.built_name
        if not (folder / "config.json").is_file():
            raise CheckpointError(f"expert '{expert.id}': {folder} is not built yet; `make experts` builds it")
    else:
        folder = Path(expert.weights).expanduser()
        if not folder.is_dir():
            raise CheckpointError(f"expert '{expert.id}': weights folder {folder} does not exist")
    _check_architecture(expert, folder)
    return folder


def resolve_adapter(expert: ExpertConfig, cache_dir: Path | None = None) -> Path:
    """The PEFT folder of an adapter expert; `built:<name>` is the adapter `coe finetune` wrote beside <name>."""
    if expert.adapter is None:
        raise CheckpointError(f"expert '{expert.id}' is not a LoRA adapter")
    name = expert.adapter.built_name
    if name is not None:
        folder = (cache_dir or default_cache_dir()) / name / ADAPTER_FOLDER
        missing = f"{folder} is not built yet; `make experts` builds it"
    else:
        folder = Path(expert.adapter.path).expanduser()
        missing = f"adapter folder {folder} does not exist"
    if not (folder / "adapter_config.json").is_file():
        raise CheckpointError(f"expert '{expert.id}': " + (missing if not folder.is_dir() or name is not None else
                                                            f"{folder} has no adapter_config.json (not a PEFT adapter)"))
    if not (folder / "adapter_model.safetensors").is_file():  # a pickled .bin would run code when loaded
        raise CheckpointError(f"expert '{expert.id}': {folder} has no adapter_model.safetensors (CoE loads adapters "
                              "only as safetensors; convert a .bin with PEFT's save_pretrained(safe_serialization=True))")
    return folder


def resolve_local(expert: ExpertConfig, cache_dir: Path | None = None, progress=None) -> Path:
    """The folder a local expert is served from: its checkpoint, or its adapter for a LoRA expert."""
    if expert.adapter is not None:
        return resolve_adapter(expert, cache_dir)
    return resolve_checkpoint(expert, cache_dir, progress)


def without_missing_optional(config: CoEConfig) -> tuple[CoEConfig, dict[str, str]]:
    """The config minus `optional` experts whose weights are not there, and why each was left out.

    Why: the default arrangement lists the specialists and the MoE that `make experts` builds (25+
    minutes); a fresh machine must still serve the bundled experts at once, and say what it skipped."""
    skipped: dict[str, str] = {}
    for expert in config.experts:
        if expert.optional and expert.remote is None:
            try:
                resolve_local(expert, config.model_cache_dir)
            except CheckpointError as err:
                skipped[expert.id] = str(err)
    for expert in config.experts:
        if expert.adapter is not None and expert.adapter.base in skipped and expert.id not in skipped:
            if not expert.optional:
                raise CheckpointError(f"expert '{expert.id}': its base '{expert.adapter.base}' is skipped")
            skipped[expert.id] = f"expert '{expert.id}': its base '{expert.adapter.base}' is skipped"
    router = config.router
    if router is not None and router.built_name and not (router.path / "router.json").is_file():
        skipped["router"] = (f"router '{router.artifact}': {router.path} is not built yet (`make router` builds it); "
                             "model=\"coe\" answers 404 until then")
    if not skipped:
        return config, skipped
    if len([s for s in skipped if s != "router"]) == len(config.experts):
        raise CheckpointError("every expert is optional and missing: " + "; ".join(skipped.values()))
    data = config.model_dump(mode="json", exclude_unset=True)
    if "router" in skipped:
        data.pop("router", None)
    data["experts"] = [e for e in data["experts"] if e["id"] not in skipped]
    pools = [{**p, "experts": [e for e in p["experts"] if e not in skipped]} for p in data.get("pools", [])]
    data["pools"] = [p for p in pools if p["experts"]]
    return CoEConfig.model_validate(data), skipped
