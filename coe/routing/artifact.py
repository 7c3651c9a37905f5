"""A trained router on disk: one versioned folder, written by `coe train-router`, read by the server.

    router.json        what the router is: embedder, categories, maps, threshold, general expert,
                       the K-shot selection report and the held-out metrics
    classifier.joblib  the scikit-learn stage-1 classifier (a pickle: load only artifacts you made)
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

FORMAT_VERSION = 1
MANIFEST = "router.json"
CLASSIFIER_FILE = "classifier.joblib"


class RouterArtifactError(Exception):
    """The artifact folder is missing, incomplete, or names experts the config does not have."""


@dataclass
class RouterArtifact:
    version: str
    embedder: str
    classifier: str
    categories: list[str]
    threshold: float
    general_expert: str
    maps: dict[str, dict[str, str]]  # mode ("quality", "balanced", "cheap") -> category -> expert
    selection: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    embedder_options: dict[str, Any] = field(default_factory=dict)  # e.g. the seed a trained embedder used
    created: str = ""
    format: int = FORMAT_VERSION

    def experts(self) -> set[str]:
        return {self.general_expert} | {e for m in self.maps.values() for e in m.values()}

    def save(self, folder: Path, classifier_model: Any) -> Path:
        import joblib

        folder.mkdir(parents=True, exist_ok=True)
        joblib.dump(classifier_model, folder / CLASSIFIER_FILE)
        (folder / MANIFEST).write_text(json.dumps(asdict(self), indent=2, default=str) + "\n")
        return folder

    @classmethod
    def load(cls, folder: Path) -> tuple["RouterArtifact", Any]:
        import joblib

        manifest = folder / MANIFEST
        if not manifest.is_file():
            raise RouterArtifactError(f"{folder} is not a router artifact (no {MANIFEST}); run `coe train-router`")
        try:
            data = json.loads(manifest.read_text())
            artifact = cls(**data)
        except (ValueError, TypeError) as err:
            raise RouterArtifactError(f"{manifest} is malformed: {err}") from None
        if artifact.format != FORMAT_VERSION:
            raise RouterArtifactError(f"{manifest} has format {artifact.format}; this CoE reads {FORMAT_VERSION}")
        missing = [c for m in artifact.maps.values() for c in artifact.categories if c not in m]
        if "quality" not in artifact.maps or missing:
            raise RouterArtifactError(f"{manifest}: every map needs an expert for every category")
        return artifact, joblib.load(folder / CLASSIFIER_FILE)

    def check_experts(self, known: set[str]) -> None:
        unknown = sorted(self.experts() - known)
        if unknown:
            raise RouterArtifactError(
                f"router {self.version} routes to expert(s) {', '.join(unknown)} that coe.yaml does not define "
                f"(it has: {', '.join(sorted(known))})"
            )
