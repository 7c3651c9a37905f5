"""Stage 2 per prompt as the server runs it: the choice rule, the budget knob, arrays without pickle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from coe.routing.artifact import LinearClassifier, RouterArtifact
from coe.routing.knobs import parse_knob
from coe.routing.predictor import ScorePredictor, choose, preference_order
from coe.routing.router import CategoryRouter


def test_a_switch_must_beat_the_margin() -> None:
    predicted = np.array([[0.50, 0.55, 0.10], [0.50, 0.80, 0.10]])
    costs = np.ones(3)
    assert choose(predicted, costs, 0.0, 0.1, best=0).tolist() == [0, 1]  # +0.05 stays, +0.30 moves
    assert choose(predicted, costs, 0.0, 0.0, best=0).tolist() == [1, 1]


def test_a_price_moves_prompts_to_the_cheap_expert_where_it_loses_little() -> None:
    predicted = np.array([[0.50, 0.49], [0.90, 0.20]])  # expert 1 is cheap: close on row 0, far on row 1
    costs = np.array([1.0, 0.1])
    assert choose(predicted, costs, 0.0, 0.0, best=0).tolist() == [0, 0]
    assert choose(predicted, costs, 0.1, 0.0, best=0).tolist() == [1, 0]
    assert choose(predicted, costs, 10.0, 0.0, best=0).tolist() == [1, 1]
    assert preference_order(predicted[1], costs, 0.1, 0.0, best=0) == [0, 1]


def test_predictor_arrays_round_trip_without_pickle(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    predictor = ScorePredictor(rng.normal(size=(5, 3)), rng.normal(size=3), ("a", "b", "c"))
    predictor.save(tmp_path / "p.npz")
    with np.load(tmp_path / "p.npz", allow_pickle=False) as data:
        assert set(data.files) == {"weights", "bias", "experts"}
    loaded = ScorePredictor.load(tmp_path / "p.npz")
    x, probs = rng.normal(size=(4, 3)), rng.random(size=(4, 2))
    np.testing.assert_allclose(loaded.predict(x, probs), predictor.predict(x, probs))
    only = loaded.restricted_to(["c", "a"])
    np.testing.assert_allclose(only.predict(x, probs), predictor.predict(x, probs)[:, [2, 0]])


class WordCountEmbedder:
    """Two features a test can steer: 'code' and 'math' counts (the router's logic is under test, not
    an embedding model's)."""

    def encode(self, texts: list[str]) -> np.ndarray:
        return np.array([[t.count("code"), t.count("math")] for t in texts], dtype=float)


def _router(tmp_path: Path, min_confidence: float = 0.0, quality_switches: bool = True) -> CategoryRouter:
    # predicted(expert) = 0.5 + 0.3 * "code" count for coder; 0.6 flat for general; 0.4 for tiny (cheap)
    weights = np.array([[0.0, 0.3, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    predictor = ScorePredictor(weights, np.array([0.6, 0.5, 0.4]), ("general", "coder", "tiny"))
    classifier = LinearClassifier(np.array([[1.0, -1.0], [-1.0, 1.0]]), np.zeros(2), ("coding", "math"))
    artifact = RouterArtifact(
        version="t", embedder={"name": "test"}, classifier="logreg", categories=["coding", "math"], threshold=0.5,
        general_ranking=["general", "coder", "tiny"],
        rankings={"quality": {"coding": ["coder"], "math": ["general"]}},
        predictor={"kind": "ridge", "alpha": 1.0, "margin": 0.05, "experts": ["general", "coder", "tiny"],
                   "min_confidence": min_confidence, "quality_switches": quality_switches},
        relative_costs={"general": 1.0, "coder": 1.0, "tiny": 0.1},
        operating_points=[{"lam": 0.0, "spend": 1.0, "quality": 0.7}, {"lam": 0.25, "spend": 0.4, "quality": 0.6},
                          {"lam": 1.0, "spend": 0.1, "quality": 0.4}],
        knob_lams={"quality": 0.0, "balanced": 0.25, "cheap": 1.0},
    )
    folder = artifact.save(tmp_path / "r", classifier, predictor=predictor)
    loaded, loaded_classifier = RouterArtifact.load(folder)
    return CategoryRouter(loaded, loaded_classifier, WordCountEmbedder(), loaded.load_predictor(folder))


def test_router_leaves_the_best_single_expert_only_for_a_predicted_gain(tmp_path: Path) -> None:
    router = _router(tmp_path)
    plain = router.decide([{"role": "user", "content": "hello"}])
    assert plain.expert == "general" and "no predicted gain beats the margin 0.05" in plain.reason
    coding = router.decide([{"role": "user", "content": "code code"}])  # coder 1.1 vs general 0.6
    assert coding.expert == "coder" and coding.category == "coding"
    assert coding.ranking[0] == "coder" and set(coding.ranking) == {"general", "coder", "tiny"}
    assert coding.to_metadata()["predicted_scores"]["coder"] == pytest.approx(1.1)


def test_a_router_without_quality_switches_says_so_instead_of_quoting_its_margin(tmp_path: Path) -> None:
    """Training writes quality_switches=false with a sentinel margin (1000 standard deviations); a
    reason quoting that number ("the margin 362") tells a user nothing, and neither does the confidence
    gate, which such a router's prompts meet or not to the same effect."""
    router = _router(tmp_path, min_confidence=0.9, quality_switches=False)
    for prompt in ("hello", "code math"):  # below the margin; below the gate
        kept = router.decide([{"role": "user", "content": prompt}])
        assert kept.expert == "general" and "does not switch for quality" in kept.reason
        assert "margin" not in kept.reason and "confidence" not in kept.reason


def test_an_unfamiliar_prompt_is_not_switched_for_quality(tmp_path: Path) -> None:
    """"code math" is a 50/50 prompt for stage 1 (confidence 0.5) where the coder is predicted 0.8
    against 0.6: switched without the gate, kept on the best single expert below it; a confident
    prompt still switches, a price still moves the unfamiliar one to the cheap expert, and an explicit
    `coe:<threshold>` replaces the gate."""
    mixed = [{"role": "user", "content": "code math"}]
    assert _router(tmp_path / "plain").decide(mixed).expert == "coder"
    gated = _router(tmp_path / "gated", min_confidence=0.9)
    kept = gated.decide(mixed)
    assert kept.expert == "general" and "confidence 0.500 below 0.900" in kept.reason
    assert kept.ranking[1] == "coder"  # the fallback order still follows the predictions
    assert gated.decide([{"role": "user", "content": "code code"}]).expert == "coder"
    assert gated.decide(mixed, parse_knob("coe:budget-0.1")).expert == "tiny"
    assert gated.decide(mixed, parse_knob("coe:0")).expert == "coder"  # an explicit threshold replaces the gate


def test_budget_knob_takes_the_cheapest_calibrated_point_that_fits(tmp_path: Path) -> None:
    router = _router(tmp_path)
    assert router.lam_for(parse_knob("coe:budget-1")) == 0.0
    assert router.lam_for(parse_knob("coe:budget-0.5")) == 0.25
    assert router.lam_for(parse_knob("coe:budget-0")) == 1.0  # below every point: the cheapest one
    assert router.lam_for(parse_knob("coe:cheap")) == 1.0
    cheap = router.decide([{"role": "user", "content": "hello"}], parse_knob("coe:budget-0.1"))
    assert cheap.expert == "tiny" and cheap.lam == 1.0


def test_threshold_knob_sends_unsure_prompts_to_the_general_expert(tmp_path: Path) -> None:
    router = _router(tmp_path)
    unsure = router.decide([{"role": "user", "content": "code math"}], parse_knob("coe:0.9"))  # 50/50 categories
    assert unsure.expert == "general" and unsure.fallback


def test_serving_a_subset_keeps_the_predictor_columns_in_step(tmp_path: Path) -> None:
    folder = tmp_path / "r"
    _router(tmp_path)
    artifact, classifier = RouterArtifact.load(folder)
    predictor = artifact.load_predictor(folder)
    served = artifact.restricted_to({"general", "tiny"})
    router = CategoryRouter(served, classifier, WordCountEmbedder(), predictor.restricted_to(served.predictor["experts"]))
    assert router.decide([{"role": "user", "content": "code code code"}]).expert == "general"


def test_the_margin_guards_quality_switches_not_cost_savings() -> None:
    predicted = np.array([[0.50, 0.49], [0.90, 0.20]])  # expert 1 is cheap
    costs = np.array([1.0, 0.1])
    never = 1e3  # a margin that forbids every switch made for quality
    assert choose(predicted, costs, 0.0, never, best=0).tolist() == [0, 0]
    # A modest price still moves the prompt where the cheap expert is predicted to lose little.
    assert choose(predicted, costs, 0.1, never, best=0).tolist() == [1, 0]
    # A switch to an expert that is not cheaper still has to beat the margin.
    assert choose(np.array([[0.5, 0.9]]), np.array([1.0, 1.0]), 0.1, never, best=0).tolist() == [0]
