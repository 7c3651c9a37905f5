"""Tune the stage-1 fallback threshold on the calibration split instead of hand-setting it.

A prompt is routed to its predicted category's expert when the classifier's top probability is at
least the threshold; below it the general expert answers, because a wrong specialist costs more
than a generalist. The objective: the smallest threshold (so the most prompts routed) whose routed
prompts are at least ``target_accuracy`` correct on the calibration split. Smallest is right because
the accuracy constraint carries the quality requirement and every extra routed prompt is one more
that gets a specialist.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

DEFAULT_TARGET_ACCURACY = 0.9
# Above any probability yet finite, so it survives JSON (router.json) unlike float("inf").
NEVER = float(np.nextafter(1.0, 2.0))


@dataclass(frozen=True)
class ThresholdResult:
    """The tuned threshold and what it does on the split it was tuned on.

    When no threshold reaches the target (``feasible`` false), the threshold is just above 1.0 so
    every prompt falls back: the router never claims accuracy it lacks.
    """

    threshold: float
    accepted_fraction: float
    accepted_accuracy: float
    target_accuracy: float
    feasible: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def acceptance(
    probabilities: np.ndarray, classes: Sequence[str], y_true: Sequence[str], threshold: float
) -> tuple[float, float]:
    """``(accepted_fraction, accuracy_among_accepted)`` at a threshold; accuracy is 0 if none pass.

    Used on the held-out split to report what the calibration-tuned threshold really does.
    """
    top, correct = _top_and_correct(probabilities, classes, y_true)
    accepted = top >= threshold
    if not accepted.any():
        return 0.0, 0.0
    return float(accepted.mean()), float(correct[accepted].mean())


def _top_and_correct(
    probabilities: np.ndarray, classes: Sequence[str], y_true: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or probabilities.shape[0] != len(y_true):
        raise ValueError("probabilities must be (n_samples, n_classes) matching y_true")
    predicted = np.asarray(classes)[probabilities.argmax(axis=1)]
    return probabilities.max(axis=1), predicted == np.asarray(y_true)


def tune_threshold(
    probabilities: np.ndarray,
    classes: Sequence[str],
    y_true: Sequence[str],
    target_accuracy: float = DEFAULT_TARGET_ACCURACY,
) -> ThresholdResult:
    """Smallest top-probability threshold whose accepted prompts reach ``target_accuracy``.

    Candidates are the observed top probabilities (accuracy only changes there). Because the
    feasible set for a higher target is a subset of the one for a lower target, the threshold
    never decreases as the target rises.
    """
    if not 0.0 < target_accuracy <= 1.0:
        raise ValueError(f"target_accuracy must be in (0, 1], got {target_accuracy}")
    top, correct = _top_and_correct(probabilities, classes, y_true)
    if top.size == 0:
        raise ValueError("cannot tune a threshold on an empty calibration split")
    order = np.argsort(-top, kind="stable")
    top_sorted, correct_sorted = top[order], correct[order]
    # Accepting everything with top >= t means accepting a prefix of the descending order; the
    # prefix for t ends at the last occurrence of t, so evaluate only those positions (ties).
    cum_correct = np.cumsum(correct_sorted)
    counts = np.arange(1, top.size + 1)
    last_of_tie = np.r_[top_sorted[1:] != top_sorted[:-1], True]
    accuracy = cum_correct / counts
    feasible = last_of_tie & (accuracy >= target_accuracy - 1e-12)
    if not feasible.any():
        return ThresholdResult(NEVER, 0.0, 0.0, target_accuracy, False)
    end = int(np.flatnonzero(feasible)[-1])  # the longest feasible prefix = the smallest threshold
    return ThresholdResult(
        threshold=float(top_sorted[end]),
        accepted_fraction=float(counts[end] / top.size),
        accepted_accuracy=float(accuracy[end]),
        target_accuracy=target_accuracy,
        feasible=True,
    )
