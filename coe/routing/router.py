"""The two-stage router: stage 1 classifies the conversation into a category, stage 2 looks the
category up in a K-shot-selected map. Below the confidence threshold the general expert answers:
a wrong specialist costs more than a generalist.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coe.routing.artifact import RouterArtifact
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
    def __init__(self, artifact: RouterArtifact, classifier: Any, embedder: Any) -> None:
        self.artifact = artifact
        self.classifier = classifier
        self.embedder = embedder
        self.classes = [str(c) for c in classifier.classes_]

    @classmethod
    def load(cls, folder: Path) -> "CategoryRouter":
        from router_training.embedders import get_embedder

        artifact, classifier = RouterArtifact.load(folder)
        return cls(artifact, classifier, get_embedder(artifact.embedder, **artifact.embedder_options))

    def probabilities(self, messages: Sequence[Mapping[str, str]]) -> list[tuple[str, float]]:
        vector = self.embedder.encode([conversation_text(messages)])
        probs = self.classifier.predict_proba(vector)[0]
        return sorted(zip(self.classes, (float(p) for p in probs)), key=lambda cp: -cp[1])

    def decide(self, messages: Sequence[Mapping[str, str]], knob: RoutingKnob = RoutingKnob()) -> RoutingDecision:
        ranked = self.probabilities(messages)
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
