"""A warm image kept mapped inside the engine process, so that swapping it in is a memory copy.

Why: the warm tier is a file in tmpfs. Reading it with read() costs the kernel's copy per 4 KiB page
(measured here: about 0.45x of memcpy for a 269 MB image, whatever the thread count), and mapping it
afresh for each swap costs a page fault per page. A mapping kept open between swaps has its pages
mapped after the first copy from it, so later swaps copy at memory speed. The tensors over the
mapping, and the image's header, are built once per mapping: with a few hundred tensors per model,
building them per swap costs milliseconds.

tmpfs pages stay allocated while they are mapped, even after the file is deleted, so the owner must
close mappings whose file was evicted or replaced (`current()`), or the warm budget stops holding.
"""

from __future__ import annotations

import mmap
import os
import struct
import warnings

import torch

from coe.swap.image import file_identity, parse_header


class MappedImage:
    """One image file mapped read-only, with a uint8 tensor over each of its tensors' bytes."""

    def __init__(self, path: str) -> None:
        self.path = path
        fd = os.open(path, os.O_RDONLY)  # one open: identity, header and bytes all come from this inode
        try:
            st = os.fstat(fd)
            self.identity = (st.st_dev, st.st_ino, st.st_size)
            self._mapping = mmap.mmap(fd, st.st_size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
        finally:
            os.close(fd)
        try:
            (length,) = struct.unpack("<Q", self._mapping[:8])
            data_start, entries = parse_header(length, self._mapping[8 : 8 + length], str(path))
        except Exception:
            self._mapping.close()
            raise
        with warnings.catch_warnings():  # the mapping is read-only; torch warns that it cannot write to it
            warnings.simplefilter("ignore", UserWarning)
            self._sources = {e.name: torch.frombuffer(self._mapping, dtype=torch.uint8, count=e.end - e.start,
                                                      offset=data_start + e.start) for e in entries}
        self.nbytes = sum(t.numel() for t in self._sources.values())

    def current(self) -> bool:
        return file_identity(self.path) == self.identity

    def copy_into(self, params: dict[str, torch.Tensor]) -> None:
        for name, source in self._sources.items():
            params[name].view(-1).view(torch.uint8).copy_(source)

    def close(self) -> None:
        # The tensors point into the mapping's memory: reading one after the unmap would crash the
        # process, so they go first (and none is ever handed out).
        self._sources = {}
        self._mapping.close()
