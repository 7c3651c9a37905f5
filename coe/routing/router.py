"""The two-stage router: stage 1 classifies the conversation into a category, stage 2 looks the
category up in a K-shot-selected map. Below the confidence threshold the general expert answers:
a wrong specialist costs more than a generalist.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coe.routing.artifact import EMBEDDER_DIR, LinearClassifier, RouterArtifact
from coe.routing.knobs import RoutingKnob
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

    def to_metadata(self) -> dict[str, Any]:
        return {
            "expert": self.expert,
            "category": self.category,
            "confidence": round(self.confidence, 4),
            "mode": self.mode,
            "threshold": round(self.threshold, 4),
            "fallback": self.fallback,
            "top_categories": [{"category": c, "probability": round(p, 4)} for c, p in self.top],
            "reason": self.reason,
        }


class CategoryRouter:
    def __init__(self, artifact: RouterArtifact, classifier: LinearClassifier, embedder: Any) -> None:
        self.artifact = artifact
        self.classifier = classifier
        self.embedder = embedder
        self.classes = list(classifier.classes)

    @classmethod
    def load(cls, folder: Path, served: set[str] | None = None) -> "CategoryRouter":
        """Reads arrays and JSON only (see coe.routing.artifact); `served` restricts the rankings to
        the experts this server has."""
        from coe.routing.embedders import load_served_embedder

        artifact, classifier = RouterArtifact.load(folder)
        if served is not None:
            artifact = artifact.restricted_to(served)
        return cls(artifact, classifier, load_served_embedder(artifact.embedder, Path(folder) / EMBEDDER_DIR))

    def probabilities(self, messages: Sequence[Mapping[str, str]]) -> list[tuple[str, float]]:
        return self.probabilities_of(self.embedder.encode([conversation_text(messages)]))[0]

    def probabilities_of(self, vectors: Any) -> list[list[tuple[str, float]]]:
        """Per embedded conversation, (category, probability) best first (batch form for `coe route --input`)."""
        return [sorted(zip(self.classes, (float(p) for p in row)), key=lambda cp: -cp[1])
                for row in self.classifier.predict_proba(vectors)]

    def decide(self, messages: Sequence[Mapping[str, str]], knob: RoutingKnob = RoutingKnob()) -> RoutingDecision:
        return self.decide_ranked(self.probabilities(messages), knob)

    def decide_ranked(self, ranked: list[tuple[str, float]], knob: RoutingKnob = RoutingKnob()) -> RoutingDecision:
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
