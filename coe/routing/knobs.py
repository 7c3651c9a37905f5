"""The per-request cost/quality knob, parsed in one typed place.

Clients choose with the model name (RouteLLM-style, so any OpenAI client can use it):
  coe             the same as coe:quality
  coe:quality     the expert with the best predicted score (best single expert unless a switch
                  beats the calibrated margin)
  coe:balanced    the cheapest operating point that keeps 95% of coe:quality's gain over the
                  cheapest expert (calibrated on held-out prompts at training time)
  coe:cheap       the same with 80%
  coe:budget-0.3  spend at most about 30% of what sending everything to the most expensive expert
                  would cost (calibrated the same way)
  coe:0.85        coe:quality, but prompts whose stage-1 confidence is below 0.85 go to the general
                  (best single) expert
Every knob is one price of cost in score units (`lam`, see coe.routing.predictor); the artifact holds
the calibrated operating points.
"""

from __future__ import annotations

from dataclasses import dataclass

from coe.errors import InvalidRequest

ROUTING_MODEL = "coe"
MODES = ("quality", "balanced", "cheap")
BUDGET_PREFIX = "budget-"


@dataclass(frozen=True)
class RoutingKnob:
    mode: str = "quality"
    threshold: float | None = None  # None: no stage-1 confidence floor
    budget: float | None = None  # share of the all-to-the-most-expensive spend, in [0, 1]

    @property
    def label(self) -> str:
        if self.budget is not None:
            return f"budget-{self.budget:g}"
        return self.mode if self.threshold is None else f"{self.mode}@{self.threshold:g}"


def is_routing_model(model: str) -> bool:
    return model == ROUTING_MODEL or model.startswith(ROUTING_MODEL + ":")


def _unit_number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if 0.0 <= value <= 1.0 else None


def parse_knob(model: str) -> RoutingKnob:
    if model == ROUTING_MODEL:
        return RoutingKnob()
    suffix = model[len(ROUTING_MODEL) + 1 :]
    if suffix in MODES:
        return RoutingKnob(mode=suffix)
    if suffix.startswith(BUDGET_PREFIX):
        budget = _unit_number(suffix[len(BUDGET_PREFIX) :])
        if budget is None:
            raise InvalidRequest(f"model '{model}': the budget after 'coe:budget-' is a share in [0, 1], e.g. coe:budget-0.3",
                                 param="model")
        return RoutingKnob(budget=budget)
    threshold = _unit_number(suffix)
    if threshold is None:
        raise InvalidRequest(
            f"model '{model}': after 'coe:' give one of {', '.join(MODES)}, budget-B (B in [0, 1]) or a confidence "
            "threshold in [0, 1]",
            param="model",
        )
    return RoutingKnob(threshold=threshold)
