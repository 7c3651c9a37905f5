"""Slot images: an engine's own parameters, saved in the engine's layout, as a safetensors file.

vLLM fuses projections (qkv_proj, gate_up_proj) while loading a Hugging Face checkpoint, so copying a
checkpoint into a live engine means redoing that work every time (`reload_weights` reaches about
1 GB/s here). An image is taken once, from the engine after it loaded the checkpoint, so a later swap
is a sequence of plain copies in file order. The file is standard safetensors (anything can read it);
a sidecar JSON records its checksum and the layout fingerprint of the engine that wrote it.

The checksum is verified once per file: the sidecar also records the identity (device, inode, size,
mtime, ctime) the file had when its bytes were hashed, and a cold load of a file whose identity is
unchanged reads it without hashing. Any rewrite, copy or rename over the file changes that identity, and
the next load hashes it again, as git's index trusts a file whose stat data is unchanged. The checksum is
xxh3-128 (coe/checksums.py says why not sha256), so even that first load runs at about read speed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from coe.checksums import file_checksum, file_sha256  # noqa: F401  (re-exported: slot code imports them from here)

SIDECAR_SUFFIX = ".json"
HASH_CHUNK = 16 << 20
DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
               "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}  # safetensors dtype codes


@dataclass(frozen=True)
class TensorEntry:
    name: str
    dtype: str  # safetensors dtype code, e.g. "BF16"
    shape: tuple[int, ...]
    start: int  # byte offset inside the data section
    end: int


@dataclass(frozen=True)
class ImageMeta:
    """What the sidecar says about an image; `fingerprint` must equal the slot's before a swap."""

    expert: str
    fingerprint: str
    checksum: str  # "<algorithm>:<hex>" (coe.checksums)
    nbytes: int
    source: str
    verified: list[int] | None = None  # the file's `stat_identity` when its bytes last matched `checksum`

    def write(self, image: Path) -> None:
        """Atomic: slots of one node may rewrite a sidecar (recording a verification) while others read it."""
        sidecar = sidecar_path(image)
        tmp = sidecar.with_name(f".{sidecar.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        os.replace(tmp, sidecar)

    def trusts(self, image: Path) -> bool:
        """True when the file is the one whose bytes were hashed and matched: no need to hash it again."""
        return self.verified is not None and self.verified == stat_identity(image)

    def verified_as(self, identity: list[int] | None) -> "ImageMeta":
        return replace(self, verified=identity)

    @classmethod
    def read(cls, image: Path) -> "ImageMeta":
        fields = json.loads(sidecar_path(image).read_text())
        if "sha256" in fields:  # sidecars written before images had xxh3-128 checksums: still checkable
            fields["checksum"] = f"sha256:{fields.pop('sha256')}"
        return cls(**fields)


def stat_identity(path: Path | str) -> list[int] | None:
    """(device, inode, size, mtime_ns, ctime_ns), or None when the file is gone. ctime cannot be set
    from user space and changes on every write, rename or chmod, so an unchanged identity means an
    untouched file. Cold images are never touched for LRU (only warm copies are)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def file_identity(path: Path | str) -> tuple[int, int, int] | None:
    """(device, inode, size) of `stat_identity`, or None when the file is gone. Images are only ever
    replaced by renaming a new file over them (a new inode), and an inode number cannot be reused while
    its file is mapped, so equal identity means the same bytes. Not the mtime: the warm tier touches a
    file on every use (its LRU clock)."""
    full = stat_identity(path)
    return None if full is None else (full[0], full[1], full[2])


def sidecar_path(image: Path) -> Path:
    return image.with_name(image.name + SIDECAR_SUFFIX)


def read_header(path: Path) -> tuple[int, list[TensorEntry]]:
    """Offset of the data section and the tensors in file order (safetensors layout)."""
    with path.open("rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        return parse_header(length, f.read(length), str(path))


def parse_header(length: int, header_bytes: bytes, source: str = "image") -> tuple[int, list[TensorEntry]]:
    """`read_header` on bytes already read (or mapped): the 8-byte length and the JSON after it.

    Refuses (ImageMismatch) a header whose tensors leave holes, overlap, or take other byte sizes than
    their shapes and dtypes say. The safetensors format forbids all three, and loads rely on it: a cold
    load reads the data section in one sequence of scatter reads straight into the parameters
    (coe/swap/scatter_read.py), so with `check_fits` (names, dtypes, shapes) this is what guarantees
    every tensor's bytes land in its own parameter."""
    header = json.loads(header_bytes)
    entries = [
        TensorEntry(name, spec["dtype"], tuple(spec["shape"]), *spec["data_offsets"])
        for name, spec in header.items()
        if name != "__metadata__"
    ]
    entries.sort(key=lambda e: e.start)
    expected_start = 0
    for e in entries:
        if e.dtype not in DTYPE_BYTES:
            raise ImageMismatch(f"{source}: tensor {e.name}: unknown safetensors dtype {e.dtype!r}")
        size = DTYPE_BYTES[e.dtype] * math.prod(e.shape)
        if e.start != expected_start or e.end - e.start != size:
            raise ImageMismatch(f"{source}: tensor {e.name}: bytes {e.start}-{e.end}, expected {expected_start}-"
                                f"{expected_start + size} (tensors back to back, {e.dtype} {list(e.shape)})")
        expected_start = e.end
    return 8 + length, entries


def layout_fingerprint(layout: list[tuple[str, str, tuple[int, ...]]]) -> str:
    """Names, dtypes and shapes of an engine's parameters: two engines can share images iff equal."""
    text = json.dumps(sorted([name, dtype, list(shape)] for name, dtype, shape in layout))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def drop_page_cache(path: Path) -> bool:
    """Asks the kernel to forget a file's cached pages (no root needed); False where unsupported."""
    if not hasattr(os, "posix_fadvise"):
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd) if os.access(path, os.W_OK) else None
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        return True
    finally:
        os.close(fd)


class ImageMismatch(ValueError):
    """An image does not fit the engine (another layout) or its bytes are not what was recorded."""


def check_fits(path: Path, layout: list[tuple[str, str, tuple[int, ...]]]) -> None:
    """Refuses an image whose tensors differ from the engine's parameters, before any byte is copied."""
    _, entries = read_header(path)
    mine = {name: (dtype, tuple(shape)) for name, dtype, shape in layout}
    theirs = {e.name: (e.dtype, e.shape) for e in entries}
    if mine != theirs:
        missing = sorted(set(mine) - set(theirs))[:3]
        extra = sorted(set(theirs) - set(mine))[:3]
        differ = sorted(n for n in set(mine) & set(theirs) if mine[n] != theirs[n])[:3]
        raise ImageMismatch(f"{path.name} does not fit this engine (missing {missing}, unexpected {extra}, differing {differ})")
