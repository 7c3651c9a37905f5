"""A trained router on disk: the only link between `coe train-router` and the server.

    router.json      what the router is: embedder (and how to check it), categories, per knob the
                     experts of each category in order of preference, threshold, the general
                     expert's ranking, the K-shot selection report and the held-out metrics
    classifier.npz   stage 1: a multinomial logistic regression as plain arrays (coef, intercept,
                     classes); read with allow_pickle=False
    predictor.npz    stage 2 per prompt (format 3): ridge weights predicting each expert's score
                     (coe.routing.predictor); router.json holds its margin, the experts' relative
                     costs and the knobs' calibrated operating points
    embedder/        files of a fitted embedder (the static token table); MiniLM is not copied, the
                     manifest names its weights by sha256

Loading executes no code from the folder (no pickle, no joblib), so a router on shared storage cannot
run code in every replica. Experts are kept as rankings, not single choices: a server that does not
serve an expert (an optional one not built yet) routes its categories to the next expert in line.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from coe.routing.predictor import PREDICTOR_FILE, ScorePredictor

log = logging.getLogger(__name__)

FORMAT_VERSION = 3
READABLE_FORMATS = (2, 3)  # 2: category maps only, no predictor
MANIFEST = "router.json"
CLASSIFIER_FILE = "classifier.npz"
EMBEDDER_DIR = "embedder"


class RouterArtifactError(Exception):
    """The artifact folder is missing, incomplete, or names no expert the config serves."""


@dataclass(frozen=True)
class LinearClassifier:
    """Softmax over ``x @ coef.T + intercept``: what sklearn's multinomial LogisticRegression computes."""

    coef: np.ndarray  # [classes, dim]
    intercept: np.ndarray  # [classes]
    classes: tuple[str, ...]

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        logits = np.asarray(x, dtype=np.float64) @ self.coef.T + self.intercept
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        return e / e.sum(axis=1, keepdims=True)

    def save(self, path: Path) -> None:
        np.savez(path, coef=self.coef, intercept=self.intercept, classes=np.array(self.classes, dtype=str))

    @classmethod
    def load(cls, path: Path) -> "LinearClassifier":
        with np.load(path, allow_pickle=False) as data:
            return cls(data["coef"].astype(np.float64), data["intercept"].astype(np.float64),
                       tuple(str(c) for c in data["classes"]))

    @classmethod
    def from_sklearn(cls, model: Any) -> "LinearClassifier":
        coef, intercept = np.asarray(model.coef_, dtype=np.float64), np.asarray(model.intercept_, dtype=np.float64)
        classes = tuple(str(c) for c in model.classes_)
        if coef.shape[0] == 1 and len(classes) == 2:  # sklearn's binary form: one row for class 1
            coef, intercept = np.vstack([-coef / 2, coef / 2]), np.array([-intercept[0] / 2, intercept[0] / 2])
        return cls(coef, intercept, classes)


@dataclass
class RouterArtifact:
    version: str
    embedder: dict[str, Any]  # {"name": ..., plus what load_served_embedder checks}
    classifier: str
    categories: list[str]
    threshold: float
    general_ranking: list[str]  # experts by mean score on all scored data, best first
    rankings: dict[str, dict[str, list[str]]]  # knob mode -> category -> experts, preferred first
    selection: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    inputs_sha256: str = ""  # of the data and scores it was trained from (deterministic rebuilds)
    # Per-prompt stage 2 (format 3; absent: the category maps decide).
    predictor: dict[str, Any] | None = None  # {"kind": "ridge", "alpha", "margin", "experts": [...]}
    relative_costs: dict[str, float] = field(default_factory=dict)  # cost_per_mtok / the highest one
    operating_points: list[dict[str, float]] = field(default_factory=list)  # calibrated {lam, spend, quality}
    knob_lams: dict[str, float] = field(default_factory=dict)  # mode -> lam
    report: dict[str, Any] = field(default_factory=dict)  # held-out quality-vs-spend summary
    format: int = FORMAT_VERSION

    @property
    def general_expert(self) -> str:
        return self.general_ranking[0]

    @cached_property
    def maps(self) -> dict[str, dict[str, str]]:
        """mode -> category -> the expert that answers (the head of each ranking); computed once, it is
        read on every routed request."""
        return {mode: {c: r[0] for c, r in ranking.items()} for mode, ranking in self.rankings.items()}

    def experts(self) -> set[str]:
        ranked = {e for m in self.rankings.values() for r in m.values() for e in r}
        return set(self.general_ranking) | ranked | set((self.predictor or {}).get("experts", []))

    def save(self, folder: Path, classifier: LinearClassifier, embedder_files: Path | None = None,
             predictor: ScorePredictor | None = None) -> Path:
        import shutil

        folder.mkdir(parents=True, exist_ok=True)
        classifier.save(folder / CLASSIFIER_FILE)
        if predictor is not None:
            predictor.save(folder / PREDICTOR_FILE)
        if embedder_files is not None:
            target = folder / EMBEDDER_DIR
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir()
            for name in self.embedder.get("files", {}):
                shutil.copyfile(embedder_files / name, target / name)
        (folder / MANIFEST).write_text(json.dumps(asdict(self), indent=2, default=str) + "\n")
        return folder

    def load_predictor(self, folder: Path) -> ScorePredictor | None:
        """The per-prompt predictor over this artifact's experts (None for a category-map router)."""
        if self.predictor is None:
            return None
        try:
            predictor = ScorePredictor.load(Path(folder) / PREDICTOR_FILE)
        except (OSError, ValueError, KeyError) as err:
            raise RouterArtifactError(f"{Path(folder) / PREDICTOR_FILE}: cannot read the predictor ({err})") from None
        if list(predictor.experts) != list(self.predictor["experts"]):
            raise RouterArtifactError(f"{folder}: predictor experts {predictor.experts} differ from the manifest's")
        return predictor

    @classmethod
    def load(cls, folder: Path) -> tuple["RouterArtifact", LinearClassifier]:
        manifest = Path(folder) / MANIFEST
        if not manifest.is_file():
            raise RouterArtifactError(f"{folder} is not a router artifact (no {MANIFEST}); run `coe train-router`")
        try:
            data = json.loads(manifest.read_text())
        except ValueError as err:
            raise RouterArtifactError(f"{manifest} is malformed: {err}") from None
        if not isinstance(data, dict) or data.get("format") not in READABLE_FORMATS:
            found = data.get("format") if isinstance(data, dict) else None
            raise RouterArtifactError(
                f"{manifest} has format {found}; this CoE reads {READABLE_FORMATS} (format 1 held a pickled "
                "classifier, which is no longer loaded): retrain it with `coe train-router`"
            )
        try:
            artifact = cls(**data)
        except TypeError as err:
            raise RouterArtifactError(f"{manifest} is malformed: {err}") from None
        missing = [c for m in artifact.rankings.values() for c in artifact.categories if not m.get(c)]
        if "quality" not in artifact.rankings or missing or not artifact.general_ranking:
            raise RouterArtifactError(f"{manifest}: every knob needs a ranking of experts for every category")
        try:
            classifier = LinearClassifier.load(Path(folder) / CLASSIFIER_FILE)
        except (OSError, ValueError, KeyError) as err:
            raise RouterArtifactError(f"{folder / CLASSIFIER_FILE}: cannot read the classifier ({err})") from None
        if list(classifier.classes) != artifact.categories:
            raise RouterArtifactError(f"{folder}: classifier classes {classifier.classes} differ from the manifest's")
        return artifact, classifier

    def restricted_to(self, served: set[str]) -> "RouterArtifact":
        """The same router over the experts this server has: each ranking keeps its order, minus
        experts that are not served. A ranking left empty falls to the general expert."""
        general = [e for e in self.general_ranking if e in served]
        if not general:
            raise RouterArtifactError(
                f"router {self.version} ranks only {', '.join(sorted(self.experts()))}; none of them is served "
                f"(this config has: {', '.join(sorted(served))})"
            )
        unserved = sorted(self.experts() - served)
        if unserved:
            log.warning("router %s: %s not served here; their categories go to the next expert in line",
                        self.version, ", ".join(unserved))
        rankings = {
            mode: {c: [e for e in r if e in served] or general for c, r in ranking.items()}
            for mode, ranking in self.rankings.items()
        }
        predictor = self.predictor
        if predictor is not None:
            predictor = {**predictor, "experts": [e for e in predictor["experts"] if e in served]}
        return replace(self, general_ranking=general, rankings=rankings, predictor=predictor)
