"""Where prepared model checkpoints live on disk."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """Return the folder that holds prepared models.

    Converting a GGUF takes tens of seconds, so results are kept across runs. ``COE_CACHE_DIR``
    (the models folder itself) wins so tests and deployments can pin a location; otherwise the XDG
    cache convention is followed so the files land where users expect caches to be.
    """
    override = os.environ.get("COE_CACHE_DIR")
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "coe" / "models"
