"""The two-stage router: stage 1 classifies the conversation into a category; stage 2 predicts each
expert's score for this very prompt (embedding + category) and picks by a calibrated, cost-aware
rule (coe.routing.predictor). Routers without a predictor (format 2) look the category up in their
K-shot map, falling back to the general expert below the confidence threshold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from coe.routing.artifact import EMBEDDER_DIR, LinearClassifier, RouterArtifact
from coe.routing.knobs import RoutingKnob
from coe.routing.predictor import ScorePredictor, gated_margin, preference_order
from coe.routing.text import conversation_text


@dataclass(frozen=True)
class RoutingDecision:
    expert: str
    category: str
    confidence: float
    mode: str
    threshold: float
    fallback: bool
    top: tuple[tuple[str, float], ...] = field(default=())
    reason: str = ""
    predicted: tuple[tuple[str, float], ...] = field(default=())  # expert -> predicted score, preferred first
    lam: float = 0.0

    @property
    def ranking(self) -> list[str]:
        """Every routable expert, the chosen one first: the order fallbacks follow."""
        return [e for e, _ in self.predicted] if self.predicted else [self.expert]

    def to_metadata(self) -> dict[str, Any]:
        return {
            "expert": self.expert,
            "category": self.category,
            "confidence": round(self.confidence, 4),
            "mode": self.mode,
            "threshold": round(self.threshold, 4),
            "fallback": self.fallback,
            "top_categories": [{"category": c, "probability": round(p, 4)} for c, p in self.top],
            "predicted_scores": {e: round(s, 4) for e, s in self.predicted},
            "cost_price": round(self.lam, 6),
            "reason": self.reason,
        }


class CategoryRouter:
    def __init__(self, artifact: RouterArtifact, classifier: LinearClassifier, embedder: Any,
                 predictor: ScorePredictor | None = None) -> None:
        self.artifact = artifact
        self.classifier = classifier
        self.embedder = embedder
        self.classes = list(classifier.classes)
        self.predictor = predictor
        if predictor is not None:
            self.costs = np.array([artifact.relative_costs.get(e, 1.0) for e in predictor.experts])
            self.best = list(predictor.experts).index(artifact.general_expert)
            self.margin = float(artifact.predictor["margin"])
            self.min_confidence = float(artifact.predictor.get("min_confidence", 0.0))
            # False when training found no quality switch that paid (the margin is then a sentinel no
            # gain beats; its number means nothing to a reader). Artifacts before it: True.
            self.quality_switches = bool(artifact.predictor.get("quality_switches", True))

    def _why_best_single(self, chosen: str, confidence: float, gate: float, gated: bool) -> str:
        """Which guard kept the prompt on the best single expert, most general first: a router that
        never switches for quality says that (its gate and margin are then moot)."""
        if not self.quality_switches:
            return (f"best single expert {chosen}: this router does not switch for quality (in training no switch "
                    f"paid, or none could be checked)")
        if gated:
            return (f"best single expert {chosen}: stage-1 confidence {confidence:.3f} below {gate:.3f}, too "
                    f"unfamiliar a prompt to switch for quality")
        return f"best single expert {chosen}: no predicted gain beats the margin {self.margin:.3g}"

    @classmethod
    def load(cls, folder: Path, served: set[str] | None = None) -> "CategoryRouter":
        """Reads arrays and JSON only (see coe.routing.artifact); `served` restricts the router to
        the experts this server has."""
        from coe.routing.embedders import load_served_embedder

        artifact, classifier = RouterArtifact.load(folder)
        predictor = artifact.load_predictor(folder)
        if served is not None:
            artifact = artifact.restricted_to(served)
            if predictor is not None:
                predictor = predictor.restricted_to(artifact.predictor["experts"])
        embedder = load_served_embedder(artifact.embedder, Path(folder) / EMBEDDER_DIR)
        return cls(artifact, classifier, embedder, predictor)

    def probabilities(self, messages: Sequence[Mapping[str, str]]) -> list[tuple[str, float]]:
        return self.probabilities_of(self.embedder.encode([conversation_text(messages)]))[0]

    def probabilities_of(self, vectors: Any) -> list[list[tuple[str, float]]]:
        """Per embedded conversation, (category, probability) best first."""
        return [sorted(zip(self.classes, (float(p) for p in row)), key=lambda cp: -cp[1])
                for row in self.classifier.predict_proba(vectors)]

    def decide(self, messages: Sequence[Mapping[str, str]], knob: RoutingKnob = RoutingKnob()) -> RoutingDecision:
        return self.decide_batch(self.embedder.encode([conversation_text(messages)]), knob)[0]

    def lam_for(self, knob: RoutingKnob) -> float:
        """The knob's price of cost: a budget takes the cheapest calibrated point whose spend fits it."""
        points = self.artifact.operating_points
        if knob.budget is not None and points:
            fitting = [p for p in points if p["spend"] <= knob.budget + 1e-9]
            return min(fitting, key=lambda p: p["lam"])["lam"] if fitting else max(p["lam"] for p in points)
        return float(self.artifact.knob_lams.get(knob.mode, 0.0))

    def decide_batch(self, vectors: np.ndarray, knob: RoutingKnob = RoutingKnob()) -> list[RoutingDecision]:
        """Decisions for embedded conversations (`coe route --input` batches them)."""
        probs = self.classifier.predict_proba(vectors)
        ranked = [sorted(zip(self.classes, (float(p) for p in row)), key=lambda cp: -cp[1]) for row in probs]
        if self.predictor is None:
            return [self.decide_ranked(r, knob) for r in ranked]
        lam = self.lam_for(knob)
        predicted = self.predictor.predict(vectors, probs)
        experts = self.predictor.experts
        decisions = []
        for row, categories in zip(predicted, ranked):
            category, confidence = categories[0]
            # An explicit `coe:<threshold>` is the confidence the client accepts: it replaces the gate.
            gate = self.min_confidence if knob.threshold is None else knob.threshold
            margin = float(gated_margin(self.margin, np.array([confidence]), gate)[0]) if gate > 0 else self.margin
            order = preference_order(row, self.costs, lam, margin, self.best)
            scores = tuple((experts[j], float(row[j])) for j in order)
            if knob.threshold is not None and confidence < knob.threshold:
                decisions.append(RoutingDecision(
                    self.artifact.general_expert, category, confidence, knob.label, knob.threshold, True,
                    tuple(categories[:3]), f"confidence {confidence:.2f} < threshold {knob.threshold:.2f}: general expert",
                    ((self.artifact.general_expert, float(row[self.best])),) + tuple(s for s in scores if s[0] != self.artifact.general_expert),
                    lam))
                continue
            chosen = experts[order[0]]
            why = (self._why_best_single(chosen, confidence, gate, gated=margin > self.margin) if order[0] == self.best else
                   f"{chosen} predicted {row[order[0]]:.3f} vs {row[self.best]:.3f} for {experts[self.best]}")
            if lam > 0:
                why += f" (cost priced at {lam:.3g} per unit of relative cost)"
            decisions.append(RoutingDecision(chosen, category, confidence, knob.label,
                                             knob.threshold if knob.threshold is not None else 0.0, False,
                                             tuple(categories[:3]), why, scores, lam))
        return decisions

    def decide_ranked(self, ranked: list[tuple[str, float]], knob: RoutingKnob = RoutingKnob()) -> RoutingDecision:
        """The category-map decision (routers without a predictor)."""
        category, confidence = ranked[0]
        threshold = self.artifact.threshold if knob.threshold is None else knob.threshold
        mapping = self.artifact.maps.get(knob.mode) or self.artifact.maps["quality"]
        top = tuple(ranked[:3])
        if confidence < threshold:
            return RoutingDecision(
                self.artifact.general_expert, category, confidence, knob.mode, threshold, True, top,
                f"confidence {confidence:.2f} < threshold {threshold:.2f}: general expert",
            )
        return RoutingDecision(
            mapping[category], category, confidence, knob.mode, threshold, False, top,
            f"category '{category}' -> {mapping[category]} ({knob.mode} map)",
        )
