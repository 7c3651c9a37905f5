"""Runs inside a vLLM worker (named by `worker_extension_cls`): copies slot images into the engine's
own parameters and writes them out.

Importing this module also changes how vLLM-CPU prepares linear layers, before the model loads. By
default vLLM-CPU packs each GEMM weight into a oneDNN/sgl buffer and empties `layer.weight`, after which
copying into the parameters silently changes nothing. A slot therefore keeps real weights:
- "unpacked" (default): linear layers multiply with the weight tensor itself (torch's own GEMM), so a
  swap is one copy per tensor at memory speed;
- "repack": vLLM's packed kernels stay, and every swap re-packs each layer after the copy (slower swaps,
  faster decode on CPUs where packing pays).
GPUs never pack, so there the patch is not installed and a copy is all a swap needs.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import torch

from coe.checksums import IMAGE_ALGORITHM, new_hasher
from coe.swap.image import read_header, stat_identity
from coe.swap.mapped_image import MappedImage
from coe.swap.scatter_read import read_into

SLOT_WEIGHTS_ENV = "COE_SLOT_WEIGHTS"
DTYPE_CODES = {torch.bfloat16: "BF16", torch.float16: "F16", torch.float32: "F32", torch.int64: "I64",
               torch.int32: "I32", torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL"}


def _install_cpu_dispatch_patch() -> str | None:
    try:
        from vllm.model_executor.layers import utils as layer_utils
        from vllm.platforms import current_platform
    except ImportError:
        return None
    if not current_platform.is_cpu() or getattr(layer_utils, "_coe_patched", False):
        return None
    mode = os.environ.get(SLOT_WEIGHTS_ENV, "unpacked")
    original = layer_utils.dispatch_cpu_unquantized_gemm

    def keep_weights(layer: torch.nn.Module, remove_weight: bool) -> None:
        if mode == "repack" or layer.weight.is_meta or layer.weight.ndim != 2:
            original(layer, remove_weight=False)
        else:
            layer.cpu_linear = torch.nn.functional.linear

    layer_utils.dispatch_cpu_unquantized_gemm = keep_weights
    layer_utils._coe_original_dispatch = original
    layer_utils._coe_patched = True
    return mode


PATCH_MODE = _install_cpu_dispatch_patch()


class SlotWorkerExtension:
    """Mixed into vLLM's worker class; methods are reached with `engine.collective_rpc(name, ...)`."""

    def _coe_params(self) -> dict[str, torch.Tensor]:
        model = self.model_runner.get_model()  # type: ignore[attr-defined]
        return {name: p.data for name, p in model.named_parameters()}

    def coe_layout(self) -> list[tuple[str, str, tuple[int, ...]]]:
        return [(n, DTYPE_CODES[t.dtype], tuple(t.shape)) for n, t in self._coe_params().items()]

    def coe_patch_mode(self) -> str | None:
        return PATCH_MODE

    def coe_load_checkpoint(self, weights_path: str) -> None:
        """Fills the engine from a checkpoint through vLLM's own in-place reload (first use of an expert).

        On CPU, vLLM's reload skips one step for fused-MoE layers: the weights are copied into the
        existing parameters in their plain layout, but the grouped-GEMM pre-packing that the first load
        applied is not redone, so the kernel reads unpacked bytes as packed ones and the model answers
        garbage. The pre-packing is redone here; dense layers are unaffected."""
        self.reload_weights(weights_path=weights_path)  # type: ignore[attr-defined]
        _prepack_cpu_moe(self.model_runner.get_model())  # type: ignore[attr-defined]

    def coe_save_image(self, path: str) -> int:
        """Writes the current parameters as safetensors (atomically); returns the bytes written."""
        from safetensors.torch import save_file

        params = {n: t.contiguous() for n, t in self._coe_params().items()}
        tmp = f"{path}.tmp-{os.getpid()}"
        save_file(params, tmp)
        os.replace(tmp, path)
        return Path(path).stat().st_size

    def coe_load_image(self, path: str, mode: str = "mapped", algorithm: str = IMAGE_ALGORITHM) -> dict:
        """Copies an image into the parameters; the caller has checked that its layout fits.

        mode "mapped": a warm image (tmpfs) copied from a mapping this engine keeps open between swaps
        (coe/swap/mapped_image.py says why): from the second swap of an image on, a plain memory copy
        per tensor. mode "read": a cold image (disk) whose bytes were verified before (coe/swap/image.py,
        `ImageMeta.trusts`), read sequentially straight into the parameters' memory, many tensors per
        system call (coe/swap/scatter_read.py). mode "hash": the same read, hashed with `algorithm` on a
        second thread behind it, so the caller can refuse the image; the result then carries
        the checksum ("<algorithm>:<hex>") and the file's identity while it was read (None if it changed
        meanwhile), which the caller records.
        Returns bytes, seconds and whether a kept mapping was used."""
        if mode not in ("mapped", "read", "hash"):
            raise ValueError(f"unknown image load mode {mode!r}")
        started = time.perf_counter()
        self.coe_forget_images()
        params = self._coe_params()
        if mode == "mapped":
            maps = self._coe_maps()
            reused = path in maps
            if not reused:
                maps[path] = MappedImage(path)
            maps[path].copy_into(params)
            self._coe_after_copy()
            return {"bytes": maps[path].nbytes, "seconds": time.perf_counter() - started, "checksum": None,
                    "identity": None, "mapping_reused": reused}
        data_start, entries = read_header(Path(path))
        digest = new_hasher(algorithm) if mode == "hash" else None
        before = stat_identity(path)
        views = [_bytes_of(params[e.name]) for e in entries]  # back to back, in their dtypes' sizes: parse_header
        fd = os.open(path, os.O_RDONLY)
        try:
            if hasattr(os, "posix_fadvise"):
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
            if digest is not None:
                digest.update(os.pread(fd, data_start, 0))
            nbytes = read_into(fd, data_start, views, digest)
        finally:
            os.close(fd)
        self._coe_after_copy()
        return {"bytes": nbytes, "seconds": time.perf_counter() - started,
                "checksum": f"{algorithm}:{digest.hexdigest()}" if digest is not None else None,
                "identity": before if before == stat_identity(path) else None, "mapping_reused": False}

    def _coe_maps(self) -> dict[str, MappedImage]:
        return self.__dict__.setdefault("_coe_mapped_images", {})

    def coe_forget_images(self) -> int:
        """Closes the kept mappings of images that were evicted or replaced since they were mapped (their
        tmpfs pages stay allocated while mapped); returns how many stay mapped. Runs before every image
        load and after every warm-tier change of this slot, so a mapping outlives its file by at most
        until this slot's next swap (an eviction made by another slot of the pool)."""
        maps = self._coe_maps()
        for path, image in list(maps.items()):
            if not image.current():
                maps.pop(path).close()
        return len(maps)

    def _coe_after_copy(self) -> None:
        if PATCH_MODE != "repack":
            return
        from vllm.model_executor.layers import utils as layer_utils

        for module in self.model_runner.get_model().modules():
            weight = getattr(module, "weight", None)
            if hasattr(module, "cpu_linear") and weight is not None and weight.ndim == 2:
                layer_utils._coe_original_dispatch(module, remove_weight=False)


def _prepack_cpu_moe(model: torch.nn.Module) -> int:
    """Re-packs every CPU fused-MoE layer's w13/w2 from the plain layout in place; returns how many."""
    try:
        from vllm import _custom_ops as ops
        from vllm.model_executor.layers.fused_moe.experts.cpu_moe import (
            CPUUnquantizedExperts,
        )
    except ImportError:  # not vLLM-CPU: nothing is pre-packed
        return 0
    repacked = 0
    for module in model.modules():
        kernel = getattr(getattr(module, "quant_method", None), "moe_kernel", None)
        experts = getattr(kernel, "fused_experts", None)
        if not isinstance(experts, CPUUnquantizedExperts) or getattr(experts, "_use_zentorch", False):
            continue
        config = experts.moe_config
        if experts._padded_intermediate_size(config) != config.intermediate_size_per_partition:
            raise NotImplementedError("swapping MoE experts whose intermediate size vLLM-CPU pads is not supported")
        for name in ("w13_weight", "w2_weight"):
            param = getattr(module, name)
            param.data.copy_(ops.cpu_prepack_moe_weight(param.data, experts.isa))
        repacked += 1
    return repacked


def _bytes_of(tensor: torch.Tensor) -> memoryview:
    return memoryview(tensor.view(-1).view(torch.uint8).numpy())
