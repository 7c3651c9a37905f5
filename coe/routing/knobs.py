"""The per-request cost/quality knob, parsed in one typed place.

Clients choose with the model name (RouteLLM-style, so any OpenAI client can use it):
  coe           the artifact's default map and its tuned fallback threshold
  coe:quality   the best expert per category, whatever its size
  coe:balanced  the smallest expert within a small loss of the best (artifact's `balanced` map)
  coe:cheap     the smallest expert within a larger loss (artifact's `cheap` map)
  coe:0.85      default map, but fall back to the general expert below 0.85 confidence
"""

from __future__ import annotations

from dataclasses import dataclass

from coe.errors import InvalidRequest

ROUTING_MODEL = "coe"
MODES = ("quality", "balanced", "cheap")


@dataclass(frozen=True)
class RoutingKnob:
    mode: str = "quality"
    threshold: float | None = None  # None: the artifact's tuned threshold


def is_routing_model(model: str) -> bool:
    return model == ROUTING_MODEL or model.startswith(ROUTING_MODEL + ":")


def parse_knob(model: str) -> RoutingKnob:
    if model == ROUTING_MODEL:
        return RoutingKnob()
    suffix = model[len(ROUTING_MODEL) + 1 :]
    if suffix in MODES:
        return RoutingKnob(mode=suffix)
    try:
        threshold = float(suffix)
    except ValueError:
        threshold = -1.0
    if not 0.0 <= threshold <= 1.0:
        raise InvalidRequest(
            f"model '{model}': after 'coe:' give one of {', '.join(MODES)} or a confidence threshold in [0, 1]",
            param="model",
        )
    return RoutingKnob(threshold=threshold)
