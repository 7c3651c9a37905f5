"""The warm and cold tiers: where an expert's slot image lives when it is not in an engine.

cold: `<cache>/slot-images/<fingerprint>/<expert>.safetensors` on disk, with a checksum sidecar.
warm: the same file in tmpfs (`/dev/shm` by default), i.e. host RAM that an engine process reads
      without a second copy; bounded by a byte budget and evicted LRU (or least-frequently-used).
Promotion cold -> warm verifies the checksum while copying, so a warm image is always a verified
one, and warm -> hot can skip hashing and run at memory speed.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Callable, Iterator

from coe.checksums import algorithm_of, new_hasher
from coe.swap.image import HASH_CHUNK, ImageMeta, sidecar_path

log = logging.getLogger(__name__)

# Left free in the tmpfs beyond an image's bytes: other users of /dev/shm (Ray's object store, vLLM's
# shared-memory queues) must not be starved by a warm image.
WARM_HEADROOM_BYTES = 64 << 20

class Tier(str, Enum):
    hot = "hot"
    warm = "warm"
    cold = "cold"
    unbuilt = "unbuilt"  # only the Hugging Face checkpoint exists; the first load builds the image


class EvictionPolicy(str, Enum):
    lru = "lru"
    lfu = "lfu"  # least frequently used, ties broken by recency


class ChecksumMismatch(ValueError):
    """An image's bytes differ from what its sidecar recorded: it is refused, never served."""


@dataclass(frozen=True)
class TierPaths:
    cold_dir: Path
    warm_dir: Path

    def cold(self, expert: str) -> Path:
        return self.cold_dir / f"{expert}.safetensors"

    def warm(self, expert: str) -> Path:
        return self.warm_dir / f"{expert}.safetensors"


class TierStore:
    """One per engine slot; slots of one node share the directories (a file lock guards changes)."""

    def __init__(self, paths: TierPaths, warm_budget_bytes: int, policy: EvictionPolicy = EvictionPolicy.lru):
        self.paths = paths
        self.warm_budget_bytes = warm_budget_bytes
        self.policy = policy
        self.uses: Counter[str] = Counter()
        self.warm_refused: str | None = None  # why the last promotion could not be written, if it failed
        self.headroom_bytes = WARM_HEADROOM_BYTES
        paths.cold_dir.mkdir(parents=True, exist_ok=True)
        paths.warm_dir.mkdir(parents=True, exist_ok=True)

    def tier(self, expert: str) -> Tier:
        if self.paths.warm(expert).exists() and sidecar_path(self.paths.warm(expert)).exists():
            return Tier.warm
        if self.paths.cold(expert).exists() and sidecar_path(self.paths.cold(expert)).exists():
            return Tier.cold
        return Tier.unbuilt

    def meta(self, expert: str) -> ImageMeta:
        return ImageMeta.read(self.paths.cold(expert))

    def touch(self, expert: str) -> None:
        """Records a use: LRU order is the warm file's mtime (shared by processes), LFU adds a count."""
        self.uses[expert] += 1
        warm = self.paths.warm(expert)
        if warm.exists():
            os.utime(warm)

    def warm_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.paths.warm_dir.glob("*.safetensors"))

    def promote(self, expert: str, protect: frozenset[str] = frozenset(),
                after_evict: Callable[[], None] | None = None) -> Path | None:
        """cold -> warm, checksum verified on the way. Returns the warm path, or None if it cannot fit.
        `after_evict` runs when images were evicted to make room, before the free space is checked: an
        engine that keeps images mapped lets go of theirs there, or their pages would stay allocated."""
        with self._locked():
            warm = self.paths.warm(expert)
            if warm.exists() and sidecar_path(warm).exists():
                return warm
            cold = self.paths.cold(expert)
            meta = ImageMeta.read(cold)
            before = self.warm_bytes()
            fits = meta.nbytes <= self.warm_budget_bytes and self._make_room(meta.nbytes, protect | {expert})
            if after_evict is not None and self.warm_bytes() < before:
                after_evict()
            if not fits:
                return None
            if not self._has_room(expert, meta.nbytes):
                return None
            tmp = warm.with_name(f".{warm.name}.{os.getpid()}.tmp")
            try:
                algorithm = algorithm_of(meta.checksum)
                digest = new_hasher(algorithm)
                with cold.open("rb") as src, tmp.open("wb") as dst:
                    while chunk := src.read(HASH_CHUNK):
                        digest.update(chunk)
                        dst.write(chunk)
                if f"{algorithm}:{digest.hexdigest()}" != meta.checksum:
                    raise ChecksumMismatch(f"{cold}: checksum does not match its sidecar; refusing it")
                shutil.copyfile(sidecar_path(cold), sidecar_path(warm))
                os.replace(tmp, warm)
            except OSError as err:  # e.g. ENOSPC: another process filled the tmpfs meanwhile
                sidecar_path(warm).unlink(missing_ok=True)
                self._refuse_warm(f"writing {expert}'s image to {self.paths.warm_dir} failed ({err.strerror or err})")
                return None
            finally:
                tmp.unlink(missing_ok=True)  # never leave a partial image behind
            return warm

    def _has_room(self, expert: str, nbytes: int) -> bool:
        """The byte budget is a promise only if the tmpfs really has that much free: a small /dev/shm
        (a container's default is 64 MB) must mean cold-only swaps, not a half-written file."""
        stat = os.statvfs(self.paths.warm_dir)
        free = stat.f_bavail * stat.f_frsize
        if free >= nbytes + self.headroom_bytes:
            return True
        self._refuse_warm(
            f"{self.paths.warm_dir} has {free / 2**20:.0f} MiB free, {expert}'s image needs {nbytes / 2**20:.0f} MiB"
        )
        return False

    def _refuse_warm(self, why: str) -> None:
        """One clear message per store, then quiet: swaps keep working from the cold tier."""
        if not self.warm_refused:
            log.warning("warm tier off for now: %s; swapping from disk (cold) instead. Give the tmpfs more room "
                        "(e.g. docker --shm-size, a bigger /dev/shm) or lower the pool's warm_gib.", why)
        self.warm_refused = why

    def evict(self, expert: str) -> bool:
        with self._locked():
            return self._drop_warm(expert)

    def _drop_warm(self, expert: str) -> bool:
        warm = self.paths.warm(expert)
        if not warm.exists():
            return False
        sidecar_path(warm).unlink(missing_ok=True)
        warm.unlink(missing_ok=True)  # an engine still reading it keeps its open file until done
        log.info("evicted %s from the warm tier", expert)
        return True

    def _make_room(self, needed: int, protect: set[str] | frozenset[str]) -> bool:
        victims = sorted(
            (p for p in self.paths.warm_dir.glob("*.safetensors") if p.stem not in protect),
            key=self._eviction_key,
        )
        used = self.warm_bytes()
        for victim in victims:
            if used + needed <= self.warm_budget_bytes:
                break
            used -= victim.stat().st_size
            self._drop_warm(victim.stem)
        return used + needed <= self.warm_budget_bytes

    def _eviction_key(self, path: Path) -> tuple[float, ...]:
        recency = path.stat().st_mtime
        if self.policy is EvictionPolicy.lfu:
            return (self.uses[path.stem], recency)
        return (recency,)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with (self.paths.warm_dir / ".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)




def tier_on_this_machine(expert: str, image_root: Path, warm_dir: Path) -> Tier:
    """Without a running service: warm if a verified image sits in tmpfs, cold if only on disk,
    unbuilt if only the checkpoint exists (any engine layout; `GET /v1/models` knows what is hot)."""
    for root, tier in ((warm_dir, Tier.warm), (image_root, Tier.cold)):
        if any(sidecar_path(p).exists() for p in root.glob(f"*/{expert}.safetensors")):
            return tier
    return Tier.unbuilt
