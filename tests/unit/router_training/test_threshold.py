"""Threshold tuning: the objective on small hand-checked cases and its monotonicity."""

from __future__ import annotations

import numpy as np
import pytest

from router_training.threshold import NEVER, acceptance, tune_threshold

CLASSES = ["a", "b"]


def _probs(top: list[float]) -> np.ndarray:
    top_arr = np.asarray(top)
    return np.stack([top_arr, 1 - top_arr], axis=1)  # class "a" is always predicted


def test_smallest_threshold_meeting_the_target() -> None:
    probs = _probs([0.99, 0.95, 0.9, 0.8, 0.7, 0.6])
    y = ["a", "a", "a", "b", "a", "b"]  # correct, correct, correct, wrong, correct, wrong
    result = tune_threshold(probs, CLASSES, y, target_accuracy=0.8)
    # prefixes: 1/1, 2/2, 3/3, 3/4=.75, 4/5=.8, 4/6  -> longest feasible ends at 0.7
    assert result.threshold == pytest.approx(0.7)
    assert result.accepted_fraction == pytest.approx(5 / 6)
    assert result.accepted_accuracy == pytest.approx(0.8)
    assert result.feasible
    assert acceptance(probs, CLASSES, y, result.threshold) == pytest.approx((5 / 6, 0.8))


def test_ties_are_accepted_or_rejected_together() -> None:
    probs = _probs([0.9, 0.8, 0.8])
    result = tune_threshold(probs, CLASSES, ["a", "a", "b"], target_accuracy=0.9)
    assert result.threshold == pytest.approx(0.9)  # 0.8 would admit the wrong twin too
    assert result.accepted_fraction == pytest.approx(1 / 3)


def test_unreachable_target_routes_nothing() -> None:
    probs = _probs([1.0, 0.9])
    result = tune_threshold(probs, CLASSES, ["b", "b"], target_accuracy=0.5)
    assert not result.feasible
    assert result.threshold == NEVER > 1.0
    assert acceptance(probs, CLASSES, ["b", "b"], result.threshold) == (0.0, 0.0)


def test_threshold_rises_and_coverage_falls_with_the_target() -> None:
    rng = np.random.default_rng(0)
    n, k = 400, 4
    logits = rng.normal(size=(n, k)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    classes = ["w", "x", "y", "z"]
    # truth agrees with the argmax more often when the model is confident: a calibrated-ish model
    agree = rng.random(n) < probs.max(axis=1)
    truth = [classes[int(p.argmax())] if ok else classes[(int(p.argmax()) + 1) % k] for p, ok in zip(probs, agree)]
    results = [tune_threshold(probs, classes, truth, t) for t in (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)]
    thresholds = [r.threshold for r in results]
    fractions = [r.accepted_fraction for r in results]
    assert thresholds == sorted(thresholds) and len(set(thresholds)) > 3
    assert fractions == sorted(fractions, reverse=True)
    assert all(r.accepted_accuracy >= r.target_accuracy for r in results if r.feasible)


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="target_accuracy"):
        tune_threshold(_probs([0.9]), CLASSES, ["a"], target_accuracy=0.0)
    with pytest.raises(ValueError, match="matching"):
        tune_threshold(_probs([0.9, 0.8]), CLASSES, ["a"])
