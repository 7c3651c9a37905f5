"""The sha256 of a file, streamed: model folders, slot images and router embedders all check theirs."""

from __future__ import annotations

import hashlib
from pathlib import Path

CHUNK = 16 << 20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
