"""Every folder CoE writes state into, each overridable by one environment variable.

Why one module: CI (and a careful user) must be able to move *all* state to a fresh folder, so that a
missing build step cannot hide behind a cache left on the developer's machine. `.ci/run` sets every
variable below to a new temporary folder.

  COE_CACHE_DIR    prepared and built models, slot images (cold tier), embedder and embedding caches
                   (default: $XDG_CACHE_HOME/coe/models, else ~/.cache/coe/models)
  COE_WARM_DIR     the warm tier: slot images in tmpfs (default: /dev/shm/coe-warm)
  COE_ROUTERS_DIR  router artifacts, the default router among them (default: beside the model cache,
                   $XDG_CACHE_HOME/coe/routers)
  COE_RESULTS_DIR  benchmark and eval results (default: bench/results and evals/results in the
                   working directory; with the variable: $COE_RESULTS_DIR/bench and .../evals)
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_WARM_DIR = Path("/dev/shm/coe-warm")


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value).expanduser() if value else None


def _xdg_coe() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "coe"


def model_cache_dir() -> Path:
    """Prepared models and everything derived from them. Converting a GGUF takes tens of seconds, so
    results are kept across runs; the XDG cache convention puts them where users expect caches."""
    return _env_path("COE_CACHE_DIR") or _xdg_coe() / "models"


def cache_subdir(name: str) -> Path:
    """A derived cache (embeddings, distilled or fine-tuned embedders) inside the model cache, so one
    variable moves them all."""
    return model_cache_dir() / name


def warm_dir() -> Path:
    """The warm tier's tmpfs folder, unless a pool's `warm_dir` says otherwise."""
    return _env_path("COE_WARM_DIR") or DEFAULT_WARM_DIR


def routers_dir() -> Path:
    """Where `coe train-router` writes artifacts by default and where `built:NAME` routers live."""
    return _env_path("COE_ROUTERS_DIR") or _xdg_coe() / "routers"


def results_dir(area: str) -> Path:
    """Results of an area ("bench" or "evals"): `<area>/results` under the working directory, or
    `$COE_RESULTS_DIR/<area>`."""
    root = _env_path("COE_RESULTS_DIR")
    return root / area if root else Path(area) / "results"
