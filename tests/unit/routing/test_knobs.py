from __future__ import annotations

import pytest

from coe.errors import InvalidRequest
from coe.routing.knobs import RoutingKnob, is_routing_model, parse_knob


def test_model_names_that_route() -> None:
    assert is_routing_model("coe") and is_routing_model("coe:cheap")
    assert not is_routing_model("coex") and not is_routing_model("smollm2")


@pytest.mark.parametrize(
    ("model", "knob"),
    [
        ("coe", RoutingKnob()),
        ("coe:quality", RoutingKnob("quality")),
        ("coe:balanced", RoutingKnob("balanced")),
        ("coe:cheap", RoutingKnob("cheap")),
        ("coe:0.85", RoutingKnob(threshold=0.85)),
        ("coe:0", RoutingKnob(threshold=0.0)),
        ("coe:budget-0.3", RoutingKnob(budget=0.3)),
        ("coe:budget-1", RoutingKnob(budget=1.0)),
    ],
)
def test_knobs_parse(model: str, knob: RoutingKnob) -> None:
    assert parse_knob(model) == knob


@pytest.mark.parametrize("model", ["coe:", "coe:fast", "coe:1.5", "coe:-0.1", "coe:nan"])
def test_bad_knobs_are_400_naming_the_choices(model: str) -> None:
    with pytest.raises(InvalidRequest, match="quality, balanced, cheap"):
        parse_knob(model)


@pytest.mark.parametrize("model", ["coe:budget-", "coe:budget-2", "coe:budget-x", "coe:budget--0.5"])
def test_bad_budgets_are_400_saying_the_range(model: str) -> None:
    with pytest.raises(InvalidRequest, match=r"share in \[0, 1\]"):
        parse_knob(model)
