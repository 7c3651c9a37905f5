"""The router artifact: plain arrays and JSON, rankings that survive experts the server lacks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from coe.routing.artifact import CLASSIFIER_FILE, MANIFEST, LinearClassifier, RouterArtifact, RouterArtifactError


def _artifact() -> RouterArtifact:
    return RouterArtifact(
        version="t", embedder={"name": "minilm"}, classifier="logreg", categories=["coding", "math", "writing"],
        threshold=0.4, general_ranking=["moe", "base", "gemma"],
        rankings={"quality": {"coding": ["moe", "base"], "math": ["math-spec", "moe", "base"], "writing": ["moe", "base"]}},
    )


@pytest.fixture
def fitted() -> tuple[LogisticRegression, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(90, 8))
    y = np.array(["coding", "math", "writing"])[np.argmax(x[:, :3], axis=1)]
    return LogisticRegression(C=3.0, max_iter=500).fit(x, y), rng.normal(size=(20, 8))


def test_linear_classifier_reproduces_sklearn(fitted, tmp_path: Path) -> None:
    model, x = fitted
    linear = LinearClassifier.from_sklearn(model)
    linear.save(tmp_path / "c.npz")
    loaded = LinearClassifier.load(tmp_path / "c.npz")
    np.testing.assert_allclose(loaded.predict_proba(x), model.predict_proba(x), atol=1e-10)
    assert loaded.classes == ("coding", "math", "writing")


def test_round_trip_and_no_pickle(fitted, tmp_path: Path) -> None:
    model, _ = fitted
    folder = _artifact().save(tmp_path / "r", LinearClassifier.from_sklearn(model))
    artifact, classifier = RouterArtifact.load(folder)
    assert artifact.maps["quality"] == {"coding": "moe", "math": "math-spec", "writing": "moe"}
    assert artifact.general_expert == "moe"
    with np.load(folder / CLASSIFIER_FILE, allow_pickle=False) as data:  # would raise on object arrays
        assert set(data.files) == {"coef", "intercept", "classes"}
    assert not [p for p in folder.rglob("*") if p.suffix in (".pkl", ".joblib", ".pickle")]


def test_a_missing_specialist_hands_its_category_to_the_next_in_line() -> None:
    served = _artifact().restricted_to({"base", "gemma"})
    assert served.maps["quality"] == {"coding": "base", "math": "base", "writing": "base"}
    assert served.general_expert == "base"
    partly = _artifact().restricted_to({"moe", "base"})
    assert partly.maps["quality"]["math"] == "moe"


def test_nothing_served_is_a_clear_error() -> None:
    with pytest.raises(RouterArtifactError, match="none of them is served"):
        _artifact().restricted_to({"other"})


def test_old_pickle_artifacts_are_refused_with_what_to_do(tmp_path: Path) -> None:
    (tmp_path / MANIFEST).write_text(json.dumps({"format": 1, "version": "old"}))
    with pytest.raises(RouterArtifactError, match="retrain"):
        RouterArtifact.load(tmp_path)
