"""Where prepared model checkpoints live on disk (see coe/paths.py for every state folder)."""

from __future__ import annotations

from pathlib import Path

from coe.paths import model_cache_dir


def default_cache_dir() -> Path:
    """The folder that holds prepared models: ``COE_CACHE_DIR``, else the XDG cache convention."""
    return model_cache_dir()
