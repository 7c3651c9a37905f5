"""An upcycled MoE as a CoE expert: served by the endpoint, a target of the router's map, and swapped
in place with another MoE of its layout through the tier manager (the session service's `moe` pool)."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.conftest import MOE, MOE_SWAPPED
from tests.integration.test_routing_endpoint import WRITING
from tests.integration.test_swap_endpoint import ask, tiers

pytestmark = pytest.mark.integration


def test_moe_card_shows_its_in_model_routing(base_url: str) -> None:
    cards = {c["id"]: c["coe"] for c in httpx.get(f"{base_url}/models", timeout=30).json()["data"]}
    assert cards[MOE]["moe_routing"] == cards[MOE_SWAPPED]["moe_routing"] == "2 experts, top-1"
    assert "moe_routing" not in cards["smollm2-135m-instruct"]


def test_two_moe_experts_swap_on_one_slot_and_answer_as_themselves(client, base_url: str) -> None:
    expert, first = ask(client, MOE)
    assert expert == MOE and tiers(base_url)[MOE] == "hot"
    expert, other = ask(client, MOE_SWAPPED)
    assert expert == MOE_SWAPPED and other != first
    shown = tiers(base_url)
    assert shown[MOE_SWAPPED] == "hot" and shown[MOE] in {"warm", "cold"}
    assert ask(client, MOE) == (MOE, first)  # swapped back from its image: the same text
    assert ask(client, MOE_SWAPPED) == (MOE_SWAPPED, other)
    metrics = httpx.get(base_url.removesuffix("/v1") + "/metrics", timeout=30).text
    assert 'coe_swaps_total{slot="slot-moe-0"' in metrics


def test_router_map_sends_writing_to_the_moe_expert(client) -> None:
    messages = [{"role": "user", "content": WRITING}]
    routed = client.chat.completions.with_raw_response.create(model="coe:0", messages=messages, max_tokens=12, temperature=0)
    assert routed.headers["x-coe-expert"] == MOE and routed.headers["x-coe-category"] == "writing"
    direct = client.chat.completions.create(model=MOE, messages=messages, max_tokens=12, temperature=0)
    assert routed.parse().choices[0].message.content == direct.choices[0].message.content
