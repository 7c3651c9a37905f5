"""Stage 2 per prompt: predict every expert's score for this prompt, then pick by a calibrated rule.

A category map answers "which expert is best for prompts like these on average"; two prompts of one
category can still want different experts, and a new prompt source breaks the categories. The
predictor is a ridge regression of each expert's score on the prompt embedding and the stage-1
category probabilities, so the category map is the special case where only the category matters.

The choice rule keeps the router honest against the best single expert:

    utility(e) = predicted(e) - lam * cost(e) / max cost  (- margin, for a switch made for quality)

The margin is the predicted gain a switch must beat, tuned by cross-validation at training time (a
large margin means the predictor did not earn its switches: the router stays on the best single
expert unless a price moves it). `lam` prices
cost in score units; each knob (`coe:quality`, `coe:budget-0.3`, ...) is one `lam`, calibrated on
held-out prompts by `coe train-router` and stored in the artifact as operating points.

Plain arrays only (`predictor.npz`, read with allow_pickle=False): loading runs no code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

PREDICTOR_FILE = "predictor.npz"
OUT_OF_REACH = 1e12  # a margin no predicted gain beats


@dataclass(frozen=True)
class ScorePredictor:
    """scores = [embedding, category probabilities] @ weights + bias, one column per expert."""

    weights: np.ndarray  # [embedding dim + categories, experts]
    bias: np.ndarray  # [experts]
    experts: tuple[str, ...]

    def predict(self, vectors: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
        features = np.hstack([np.asarray(vectors, dtype=np.float64), np.asarray(probabilities, dtype=np.float64)])
        return features @ self.weights + self.bias

    def save(self, path: Path) -> None:
        np.savez(path, weights=self.weights, bias=self.bias, experts=np.array(self.experts, dtype=str))

    @classmethod
    def load(cls, path: Path) -> "ScorePredictor":
        with np.load(path, allow_pickle=False) as data:
            return cls(data["weights"].astype(np.float64), data["bias"].astype(np.float64),
                       tuple(str(e) for e in data["experts"]))

    def restricted_to(self, experts: list[str]) -> "ScorePredictor":
        columns = [self.experts.index(e) for e in experts]
        return ScorePredictor(self.weights[:, columns], self.bias[columns], tuple(experts))


def penalties(costs: np.ndarray, lam: float, margin: float | np.ndarray, best: int) -> np.ndarray:
    """What each expert's predicted score must overcome besides its price: the margin, for every
    switch made for quality. At a price (lam > 0) a switch to a cheaper expert is made for cost, and
    the price already weighs it; a margin there would keep the best single expert until the price
    is high enough to move every prompt at once. `margin` may be one per prompt (gated_margin):
    the result is then [prompts, experts]."""
    costs = np.asarray(costs, dtype=np.float64)
    penalty = np.zeros(np.shape(margin) + (len(costs),)) + np.asarray(margin, dtype=np.float64)[..., None]
    if lam > 0:
        penalty[..., costs < costs[best]] = 0.0
    penalty[..., best] = 0.0
    return penalty


def gated_margin(margin: float, confidence: np.ndarray | None, min_confidence: float) -> float | np.ndarray:
    """The margin per prompt: out of reach (no switch for quality) where stage 1's top-category
    probability is below `min_confidence`. A prompt stage 1 does not recognise is likely from a source
    the predictor never saw, and there its predicted gains were measured to be wrong (MMLU, a held-out
    domain: README). Cost switches are not gated: the price, not the prediction, makes them. Finite,
    so the experts after the first keep their predicted order (the fallback order)."""
    if confidence is None or min_confidence <= 0:
        return margin
    return np.where(np.asarray(confidence, dtype=np.float64) >= min_confidence, float(margin), float(margin) + OUT_OF_REACH)


def choose(predicted: np.ndarray, costs: np.ndarray, lam: float, margin: float | np.ndarray, best: int) -> np.ndarray:
    """Index of the chosen expert per row of `predicted` ([prompts, experts]); `costs` are relative
    (the most expensive is 1); `margin` one for all rows or one per row. The training-time
    calibration and the server both call this, so the operating points in the artifact are exactly
    what the server does."""
    costs = np.asarray(costs, dtype=np.float64)
    penalty = penalties(costs, lam, margin, best)
    utility = np.asarray(predicted, dtype=np.float64) - lam * costs[None, :] - (penalty if penalty.ndim == 2 else penalty[None, :])
    return utility.argmax(axis=1)


def preference_order(predicted_row: np.ndarray, costs: np.ndarray, lam: float, margin: float, best: int) -> list[int]:
    """Every expert for one prompt, the chosen one first: the order fallbacks follow."""
    costs = np.asarray(costs, dtype=np.float64)
    utility = np.asarray(predicted_row, dtype=np.float64) - lam * costs - penalties(costs, lam, margin, best)
    return [int(j) for j in np.argsort(-utility, kind="stable")]
