"""An engine slot: one running vLLM engine that serves any expert of its pool, one at a time.

The slot owns the engine, the warm/cold tiers it reads from and the scheduler that decides when a
swap may happen. A swap copies the expert's image into the engine's parameters (warm: read from
tmpfs; cold: read from disk, hashed on the way; first use: vLLM's own loader from the Hugging Face
checkpoint, after which the image is saved), then clears the prefix cache so no KV block computed by
the previous expert is reused. A refused image leaves the previous expert in the engine.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from coe.config import ExpertConfig, SwapPoolConfig
from coe.errors import ExpertUnavailable
from coe.experts.vllm_backend import VLLMBackend
from coe.protocol import GenerationDelta, GenerationRequest, GenerationResult
from coe.checksums import algorithm_of
from coe.swap.image import ImageMeta, ImageMismatch, check_fits, file_checksum, file_identity, file_sha256, layout_fingerprint, stat_identity
from coe.swap.metrics import SwapMetrics
from coe.swap.scheduler import SwapScheduler
from coe.swap.slot_worker import SLOT_WEIGHTS_ENV
from coe.swap.tiers import Tier, TierPaths, TierStore

log = logging.getLogger(__name__)

WORKER_EXTENSION = "coe.swap.slot_worker.SlotWorkerExtension"
# Config keys that do not change the weights' layout or the tokenizer's meaning.
# Keys that name or describe a checkpoint without changing the engine's layout; "_"-prefixed keys
# (e.g. `_model_name_or_path` of a GGUF conversion, absent from a fine-tune's config) are ignored too.
_LAYOUT_NEUTRAL_KEYS = {"name_or_path", "transformers_version", "torch_dtype", "dtype"}


@dataclass(frozen=True)
class Loaded:
    """What one load put into the engine, for `last_swap` and the swap metrics."""

    source: str  # "warm", "cold" or "checkpoint" (first use: vLLM's loader, then the image is written)
    nbytes: int
    copy_seconds: float | None = None  # the copy alone, inside the engine process (images only)
    checksum_checked: bool = False  # a cold file hashed on this load (its first, or after it changed)
    build_seconds: dict[str, float] = field(default_factory=dict)  # checkpoint loads: reload, image write


class EngineSlot:
    def __init__(
        self,
        name: str,
        pool: SwapPoolConfig,
        experts: dict[str, ExpertConfig],
        checkpoints: dict[str, Path],
        image_root: Path,
        cpu_bind: str | None = None,
    ) -> None:
        self.name = name
        self.pool = pool
        self.experts = experts
        self.checkpoints = checkpoints
        self.image_root = image_root
        base = experts[pool.experts[0]]
        options = base.engine.model_copy(update={"cpu_bind": cpu_bind} if cpu_bind is not None else {})
        self.backend = VLLMBackend(checkpoints[base.id], options, base.prompt_format, name, WORKER_EXTENSION)
        self.hot = base.id
        self.metrics = SwapMetrics()
        self.tiers: TierStore | None = None
        self.scheduler: SwapScheduler | None = None
        self._layout: list = []
        self._fits_checked: dict[str, tuple[int, int, int] | None] = {}  # image path -> file_identity when check_fits passed
        self._views: dict[str, VLLMBackend] = {}
        self._promoting: dict[str, asyncio.Task] = {}
        self._broken: str | None = None
        self.last_swap: dict | None = None
        self.boot_seconds = 0.0  # the engine boot alone (without saving the first image)

    # -- lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        os.environ[SLOT_WEIGHTS_ENV] = self.pool.slot_weights
        started = time.perf_counter()
        await self.backend.start()
        self.boot_seconds = time.perf_counter() - started
        self._layout = [(n, d, tuple(s)) for n, d, s in (await self._rpc("coe_layout"))]
        fingerprint = layout_fingerprint(self._layout)
        self.tiers = TierStore(
            TierPaths(self.image_root / fingerprint, self.pool.warm_dir / fingerprint),
            self.pool.warm_budget_bytes,
            self.pool.eviction,
        )
        for expert_id in self.pool.experts:
            view = copy.copy(self.backend)
            view.prompt_format = self.experts[expert_id].prompt_format
            view.served_name = expert_id
            self._views[expert_id] = view
        if not self._image_current(self.hot):
            await self._save_image(self.hot)
        self.scheduler = SwapScheduler(
            self.hot, self._swap, self.pool.batching, self.pool.max_wait_ms / 1000, on_queued=self._on_queued,
            max_queued=self.pool.max_queued, gather_s=self.pool.gather_ms / 1000,
        )

    async def shutdown(self) -> None:
        for task in self._promoting.values():
            task.cancel()
        self.backend.close()

    # -- serving ------------------------------------------------------------------------------------

    async def chat(self, expert: str, request: GenerationRequest) -> GenerationResult:
        view = self._view(expert)
        self._count_hit(expert)
        async with self.scheduler.admit(expert):
            return await view.chat(request)

    async def chat_stream(self, expert: str, request: GenerationRequest) -> AsyncIterator[GenerationDelta]:
        view = self._view(expert)
        self._count_hit(expert)
        async with self.scheduler.admit(expert):
            async for delta in view.chat_stream(request):
                yield delta

    async def check_health(self) -> None:
        if self._broken:
            raise ExpertUnavailable(self._broken)
        await self.backend.check_health()

    def describe(self) -> dict:
        """What the ingress, `/v1/models` and `/metrics` show about this slot."""
        tiers = {e: (Tier.hot if e == self.hot else self.tiers.tier(e)).value for e in self.pool.experts}
        return {
            "slot": self.name,
            "pool": self.pool.id,
            "hot": self.hot,
            "tiers": tiers,
            "queued": self.scheduler.queued if self.scheduler else {},
            "in_flight": self.scheduler.in_flight if self.scheduler else 0,
            "metrics": self.metrics.snapshot(),
            "slot_weights": self.pool.slot_weights,
            "last_swap": self.last_swap,
        }

    def _view(self, expert: str) -> VLLMBackend:
        if self._broken:
            raise ExpertUnavailable(self._broken)
        view = self._views.get(expert)
        if view is None:
            raise ExpertUnavailable(f"slot {self.name} does not serve expert '{expert}'")
        return view

    def _count_hit(self, expert: str) -> None:
        if expert == self.scheduler.current and not self.scheduler.queued:
            self.metrics.hits += 1
        else:
            self.metrics.misses += 1

    # -- tiers --------------------------------------------------------------------------------------

    def _on_queued(self, expert: str) -> None:
        """Router-informed prefetch: a queued request names its expert; start reading it into RAM."""
        if not self.pool.prefetch or expert == self.hot or expert in self._promoting:
            return
        if self.tiers.tier(expert) is Tier.cold and self.pool.warm_budget_bytes > 0:
            self._promoting[expert] = asyncio.get_running_loop().create_task(self._promote(expert))

    async def _promote(self, expert: str) -> None:
        loop = asyncio.get_running_loop()

        def forget_evicted() -> None:  # runs in promote's thread: the engine lets go of evicted images' pages
            asyncio.run_coroutine_threadsafe(self._rpc("coe_forget_images"), loop).result(timeout=60)

        try:
            if await asyncio.to_thread(self.tiers.promote, expert, frozenset({self.hot}), forget_evicted):
                self.metrics.promotions += 1
        except Exception as err:  # a bad image is refused again, loudly, when it is swapped in
            log.warning("slot %s: could not promote %s to warm: %s", self.name, expert, err)
        finally:
            self._promoting.pop(expert, None)

    async def _swap(self, expert: str) -> None:
        """Called by the scheduler with nothing in flight. Raises ExpertUnavailable if refused."""
        if expert in self._promoting:
            await asyncio.shield(self._promoting[expert])
        previous, started = self.hot, time.perf_counter()
        try:
            # The prefix-cache reset goes out with the load instead of after it (one engine round trip
            # less per swap): nothing runs on the engine until this swap returns, so either order
            # leaves no KV block of the previous expert for the next request.
            loaded, _ = await asyncio.gather(self._load(expert), self.backend.engine.reset_prefix_cache())
        except Exception as err:  # refused or failed: the engine must go back to what it served
            self.metrics.swap_failures += 1
            await self._restore(previous)
            verb = "refused" if isinstance(err, ImageMismatch) else "failed to load"
            raise ExpertUnavailable(f"expert '{expert}' {verb}: {err}; '{previous}' stays loaded") from err
        self.hot = expert
        self.tiers.touch(expert)
        self.last_swap = {"expert": expert, "source": loaded.source, "bytes": loaded.nbytes,
                          "seconds": time.perf_counter() - started, "copy_seconds": loaded.copy_seconds,
                          "checksum_checked": loaded.checksum_checked, **loaded.build_seconds}
        self.metrics.record_swap(f"{loaded.source}->hot", loaded.nbytes, self.last_swap["seconds"])
        log.info("slot %s: %s -> %s from %s in %.3f s", self.name, previous, expert, loaded.source, time.perf_counter() - started)
        if loaded.source == Tier.cold.value and self.pool.warm_budget_bytes > 0:
            self._promoting[expert] = asyncio.get_running_loop().create_task(self._promote(expert))

    async def _load(self, expert: str) -> Loaded:
        tier = self.tiers.tier(expert)
        if tier is not Tier.unbuilt and not self._image_current(expert):
            if self.tiers.evict(expert):
                await self._rpc("coe_forget_images")  # its pages are freed now, not at the next image load
            tier = Tier.unbuilt
        if tier is Tier.unbuilt:
            return await self._build(expert)
        path = self.tiers.paths.warm(expert) if tier is Tier.warm else self.tiers.paths.cold(expert)
        self._check_fits(path)
        meta = ImageMeta.read(path)
        mode = "mapped" if tier is Tier.warm else "read" if meta.trusts(path) else "hash"
        result = await self._rpc("coe_load_image", str(path), mode, algorithm_of(meta.checksum))
        if mode == "hash":
            if result["checksum"] != meta.checksum:
                raise ImageMismatch(f"{path}: checksum mismatch (recorded {meta.checksum[:20]}, read {result['checksum'][:20]})")
            if result["identity"] is not None:  # verified: later cold loads of this file skip the hash
                meta.verified_as(result["identity"]).write(path)
        return Loaded(tier.value, result["bytes"], copy_seconds=result["seconds"], checksum_checked=mode == "hash")

    async def _build(self, expert: str) -> Loaded:
        """First use: vLLM's loader fills the engine from the checkpoint, then the image is saved."""
        checkpoint = self.checkpoints[expert]
        self._check_same_family(expert, checkpoint)
        started = time.perf_counter()
        await self._rpc("coe_load_checkpoint", str(checkpoint))
        reloaded = time.perf_counter()
        nbytes = (await self._save_image(expert)).nbytes
        return Loaded("checkpoint", nbytes, build_seconds={  # the reload and the image it leaves behind, timed apart
            "reload_seconds": reloaded - started, "image_write_seconds": time.perf_counter() - reloaded})

    async def _restore(self, expert: str) -> None:
        try:
            await self._load(expert)
            await self.backend.engine.reset_prefix_cache()
        except Exception as err:
            self._broken = f"slot {self.name} could not restore '{expert}' after a refused swap: {err}"
            log.error(self._broken)
            raise

    # -- images -------------------------------------------------------------------------------------

    def _check_fits(self, path: Path) -> None:
        """`check_fits` once per `file_identity` (device, inode, size; not the mtime, which the warm
        tier's LRU clock changes on every use): an unchanged file's header is not parsed again each swap."""
        identity = file_identity(path)
        if identity is not None and self._fits_checked.get(str(path)) == identity:
            return
        check_fits(path, self._layout)
        self._fits_checked[str(path)] = identity

    def _source_key(self, expert: str) -> str:
        """Identity of the checkpoint an image was made from: path plus its weights' size and mtime."""
        checkpoint = self.checkpoints[expert]
        parts = [str(checkpoint.resolve())]
        for f in sorted(checkpoint.glob("*.safetensors")):
            st = f.stat()
            parts.append(f"{f.name}:{st.st_size}:{st.st_mtime_ns}")
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]

    def _image_current(self, expert: str) -> bool:
        cold = self.tiers.paths.cold(expert)
        try:
            return ImageMeta.read(cold).source == self._source_key(expert)
        except (FileNotFoundError, json.JSONDecodeError, TypeError):
            return False

    async def _save_image(self, expert: str) -> ImageMeta:
        path = self.tiers.paths.cold(expert)
        await self._rpc("coe_save_image", str(path))
        written = stat_identity(path)
        meta = ImageMeta(expert, path.parent.name, await asyncio.to_thread(file_checksum, path),
                         path.stat().st_size, self._source_key(expert))
        if written is not None and written == stat_identity(path):  # hashed the bytes the engine wrote
            meta = meta.verified_as(written)
        meta.write(path)
        return meta

    def _check_same_family(self, expert: str, checkpoint: Path) -> None:
        base = self.checkpoints[self.pool.experts[0]]
        mine, theirs = (_layout_config(p) for p in (base, checkpoint))
        if mine != theirs:
            keys = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))[:5]
            raise ImageMismatch(f"{checkpoint} is not the same architecture as {base} (differs in {keys})")
        for name in ("tokenizer.json", "tokenizer.model"):
            a, b = base / name, checkpoint / name
            if a.exists() != b.exists() or (a.exists() and file_sha256(a) != file_sha256(b)):
                raise ImageMismatch(f"{checkpoint} has another tokenizer than {base}; a slot has one tokenizer")

    async def _rpc(self, method: str, *args):
        return (await self.backend.engine.collective_rpc(method, args=args))[0]

    async def _rpc_kw(self, method: str, **kwargs):
        return (await self.backend.engine.collective_rpc(method, kwargs=kwargs))[0]


def _layout_config(checkpoint: Path) -> dict:
    config = json.loads((checkpoint / "config.json").read_text())
    return {k: v for k, v in config.items() if k not in _LAYOUT_NEUTRAL_KEYS and not k.startswith("_")}
