"""Turn a bundled GGUF into a bf16 Hugging Face checkpoint folder that vLLM-CPU can load.

vLLM-CPU does not run these GGUFs directly, and transformers' ``save_pretrained`` refuses a model
loaded from GGUF, so the state dict and config are written by hand. The result is cached and
checksummed: conversion costs tens of seconds, a checksum check well under one.

From a shell: ``python -m coe.models [NAME ...] [--cache-dir DIR]``.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.metadata
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

from coe.checksums import file_sha256
from coe.models.bundled import BundledModel, get_bundled, locate_gguf
from coe.models.cache import default_cache_dir

log = logging.getLogger(__name__)

Progress = Callable[[str], None]

MANIFEST = "coe-manifest.json"
WEIGHTS = "model.safetensors"
# Bump when the conversion changes, so folders written by an older converter are rebuilt.
FORMAT_VERSION = 2


@dataclass(frozen=True)
class PreparedModel:
    """A ready checkpoint folder; ``built`` says whether this call did the conversion."""

    name: str
    path: Path
    num_params: int
    size_bytes: int
    sha256: str
    is_base: bool
    built: bool = False


def prepare(name: str, cache_dir: Path | None = None, progress: Progress | None = None) -> PreparedModel:
    """Return the checkpoint folder ``<cache_dir>/<name>/``, converting only when needed.

    A folder whose files match its manifest is reused as is; anything else (missing, corrupted,
    older converter, other package version) is rebuilt and ``progress`` is told why.
    """
    model = get_bundled(name)
    root = Path(cache_dir) if cache_dir else default_cache_dir()
    target = root / name
    say = progress or log.info
    root.mkdir(parents=True, exist_ok=True)
    with _lock(root / f".{name}.lock"):
        reason = _stale_reason(target, model)
        if reason is None:
            say(f"{name}: already prepared at {target}")
            return _from_manifest(target, built=False)
        say(f"{name}: {reason}; building")
        started = time.monotonic()
        _build(model, root, target, say)
        say(f"{name}: prepared at {target} in {time.monotonic() - started:.1f} s")
        return _from_manifest(target, built=True)


def verify(path: Path) -> bool:
    """True when every file in the folder's manifest is present with its recorded sha256."""
    return _verify_reason(Path(path)) is None


# --- cache state -------------------------------------------------------------------------------


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def _verify_reason(folder: Path) -> str | None:
    manifest = _read_manifest(folder)
    if manifest is None or not isinstance(manifest.get("files"), dict):
        return "manifest missing or unreadable"
    for rel, meta in manifest["files"].items():
        file = folder / rel
        # The size check is free and catches truncation without hashing hundreds of MB.
        if not file.is_file() or file.stat().st_size != meta["bytes"]:
            return f"checksum mismatch ({rel} missing or resized)"
        if file_sha256(file) != meta["sha256"]:
            return f"checksum mismatch ({rel} changed on disk)"
    return None


def _installed_version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _stale_reason(target: Path, model: BundledModel) -> str | None:
    """Why the folder must be (re)built, or None when it can be reused.

    A prepared folder stays usable without the source package installed: only a package that is
    installed with another version invalidates it.
    """
    if not target.exists():
        return "not prepared yet"
    manifest = _read_manifest(target)
    if manifest is None:
        return "manifest missing or unreadable"
    if manifest.get("format") != FORMAT_VERSION:
        return "folder written by another converter version"
    installed = _installed_version(model.package)
    if installed is not None and installed != manifest["source"]["version"]:
        return f"{model.package} is now {installed}, folder was built from {manifest['source']['version']}"
    return _verify_reason(target)


def _from_manifest(folder: Path, built: bool) -> PreparedModel:
    manifest = _read_manifest(folder)
    assert manifest is not None
    return PreparedModel(
        name=manifest["name"],
        path=folder,
        num_params=manifest["num_params"],
        size_bytes=manifest["size_bytes"],
        sha256=manifest["files"][WEIGHTS]["sha256"],
        is_base=manifest["is_base"],
        built=built,
    )


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """Serialise preparers of one model: two replicas starting together must not both convert."""
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- building ----------------------------------------------------------------------------------


def _build(model: BundledModel, root: Path, target: Path, say: Progress) -> None:
    """Convert into a temp folder beside the target, so a crash never leaves a half folder in place."""
    _remove_leftovers(root, model.name)
    gguf = locate_gguf(model.name, cache_dir=root)
    tmp = Path(tempfile.mkdtemp(prefix=f".{model.name}.", suffix=".tmp", dir=root))
    try:
        say(f"{model.name}: dequantizing {gguf.name} to bf16")
        num_params = _write_weights(gguf, tmp)
        say(f"{model.name}: converting tokenizer")
        _write_tokenizer(gguf, tmp)
        _write_manifest(tmp, model, gguf, num_params)
        _apply_umask(tmp)
        _swap_into_place(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _remove_leftovers(root: Path, name: str) -> None:
    """Temp and old folders of crashed runs; safe because we hold the model's lock."""
    for stale in [*root.glob(f".{name}.*.tmp"), *root.glob(f".{name}.*.old")]:
        shutil.rmtree(stale, ignore_errors=True)


def _apply_umask(folder: Path) -> None:
    """mkdtemp and safetensors create owner-only modes; a shared cache should follow the umask."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for file in folder.iterdir():
        file.chmod(0o666 & ~umask)


def _swap_into_place(tmp: Path, target: Path) -> None:
    """rename() cannot replace a non-empty folder, so move the old one aside first."""
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
        os.rename(target, old / target.name)
    os.rename(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _write_weights(gguf: Path, out: Path) -> int:
    """Dequantize and write safetensors plus config; returns the parameter count written."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16)
    tensors = _state_dict_for_safetensors(model, torch.bfloat16)
    save_file(tensors, str(out / WEIGHTS), metadata={"format": "pt"})
    _write_config(model, out)
    model.generation_config.save_pretrained(out)  # carries bos/eos/pad ids vLLM reads
    return sum(t.numel() for t in tensors.values())


def _state_dict_for_safetensors(model: Any, dtype: Any) -> dict[str, Any]:
    """safetensors rejects tensors that share memory: a tied lm_head is dropped (loaders re-tie it)."""
    state = dict(model.state_dict())
    if getattr(model.config, "tie_word_embeddings", False):
        state.pop("lm_head.weight", None)
    return {
        k: (v.detach().to(dtype) if v.is_floating_point() else v.detach()).contiguous()
        for k, v in state.items()
    }


def _write_config(model: Any, out: Path) -> None:
    """The GGUF config carries a quantization_config that would make vLLM expect GGUF weights."""
    model.config.save_pretrained(out)
    path = out / "config.json"
    config = json.loads(path.read_text())
    config.pop("quantization_config", None)
    config.pop("_name_or_path", None)  # points into site-packages; meaningless elsewhere
    config["architectures"] = [type(model).__name__]  # GGUF loading leaves it null; vLLM needs it
    config["dtype"] = "bfloat16"
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def _gguf_tokenizer_meta(gguf: Path) -> dict[str, Any]:
    """The GGUF's own word on BOS and chat template: transformers' conversion can lose both."""
    from gguf import GGUFReader

    fields = GGUFReader(str(gguf)).fields
    meta: dict[str, Any] = {}
    if "tokenizer.ggml.add_bos_token" in fields:
        meta["add_bos"] = bool(fields["tokenizer.ggml.add_bos_token"].contents())
    if "tokenizer.chat_template" in fields:
        meta["chat_template"] = str(fields["tokenizer.chat_template"].contents())
    return meta


def _adds_bos(tokenizer: Any) -> bool:
    ids = tokenizer("x").input_ids
    return bool(ids) and ids[0] == tokenizer.bos_token_id


def _write_tokenizer(gguf: Path, out: Path) -> None:
    """Save a tokenizer that tokenizes like the GGUF does.

    Gemma's conversion drops BOS although its GGUF says add_bos_token=True, and Gemma without BOS
    degenerates. The chat template goes into tokenizer_config.json (not chat_template.jinja) so
    older readers of the folder find it too. The saved folder is reloaded to prove both survived.
    """
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    meta = _gguf_tokenizer_meta(gguf)
    if "add_bos" in meta and _adds_bos(tokenizer) != meta["add_bos"]:
        tokenizer.add_bos_token = meta["add_bos"]  # the setter rebuilds the post-processor
    if meta.get("chat_template") and not tokenizer.chat_template:
        tokenizer.chat_template = meta["chat_template"]
    tokenizer.save_pretrained(out, save_jinja_files=False)
    if "add_bos" in meta:
        _pin_add_bos(out, meta["add_bos"])
    _check_saved_tokenizer(out, meta)


def _pin_add_bos(out: Path, add_bos: bool) -> None:
    """Write add_bos_token explicitly: without it, a loader that rebuilds the post-processor from
    its class default (instead of tokenizer.json's) would silently flip BOS again."""
    path = out / "tokenizer_config.json"
    config = json.loads(path.read_text())
    config["add_bos_token"] = add_bos
    path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")


def _check_saved_tokenizer(out: Path, meta: dict[str, Any]) -> None:
    from transformers import AutoTokenizer

    saved = AutoTokenizer.from_pretrained(out)
    if "add_bos" in meta and _adds_bos(saved) != meta["add_bos"]:
        raise RuntimeError(f"saved tokenizer adds BOS={_adds_bos(saved)}, GGUF says {meta['add_bos']}")
    if meta.get("chat_template") and saved.chat_template != meta["chat_template"]:
        raise RuntimeError("saved tokenizer lost the GGUF's chat template")


def _write_manifest(folder: Path, model: BundledModel, gguf: Path, num_params: int) -> None:
    files = {
        p.relative_to(folder).as_posix(): {"sha256": file_sha256(p), "bytes": p.stat().st_size}
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }
    manifest = {
        "format": FORMAT_VERSION,
        "name": model.name,
        "is_base": model.is_base,
        "licence": model.licence,
        "source": {
            "package": model.package,
            "version": _installed_version(model.package),
            "gguf_file": gguf.name,
            "gguf_sha256": file_sha256(gguf),
        },
        "dtype": "bfloat16",
        "num_params": num_params,
        "size_bytes": sum(f["bytes"] for f in files.values()),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "files": files,
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
