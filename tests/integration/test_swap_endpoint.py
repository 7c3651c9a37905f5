"""Swapping through the served endpoint: SmolLM2 and a synthetic variant share one engine slot.

The variant's weights differ (seeded noise), so a wrong-expert answer shows up as wrong text.
"""

from __future__ import annotations

import httpx
import pytest

from tests.integration.conftest import SMOL, VARIANT

pytestmark = pytest.mark.integration

PROMPT = [{"role": "user", "content": "Name a large animal that lives in the ocean."}]


def ask(client, model: str) -> tuple[str, str]:
    raw = client.chat.completions.with_raw_response.create(model=model, messages=PROMPT, temperature=0, max_tokens=16)
    return raw.headers["x-coe-expert"], raw.parse().choices[0].message.content


def tiers(base_url: str) -> dict[str, str]:
    cards = httpx.get(f"{base_url}/models", timeout=30).json()["data"]
    return {c["id"]: c["coe"].get("tier") for c in cards if c["id"] != "coe"}


def test_two_experts_on_one_slot_each_answer_as_themselves(client, base_url: str) -> None:
    expert, smol_first = ask(client, SMOL)
    assert expert == SMOL
    assert tiers(base_url)[SMOL] == "hot"
    expert, variant_text = ask(client, VARIANT)
    assert expert == VARIANT and variant_text != smol_first
    shown = tiers(base_url)
    assert shown[VARIANT] == "hot" and shown[SMOL] in {"warm", "cold"}
    assert shown["gemma3-270m"] == "hot" and shown["remote-smollm2"] == "remote"
    # swapped back from its image: exactly the text it gave before
    assert ask(client, SMOL) == (SMOL, smol_first)
    assert ask(client, VARIANT) == (VARIANT, variant_text)


def test_variant_streams_through_its_slot(client) -> None:
    text = "".join(
        chunk.choices[0].delta.content or ""
        for chunk in client.chat.completions.create(model=VARIANT, messages=PROMPT, temperature=0, max_tokens=16, stream=True)
        if chunk.choices
    )
    assert text == ask(client, VARIANT)[1]


def test_swap_metrics_are_exported(client, base_url: str) -> None:
    ask(client, VARIANT)
    ask(client, SMOL)
    text = httpx.get(base_url.removesuffix("/v1") + "/metrics", timeout=30).text
    assert 'coe_swaps_total{slot="slot-smollm2-0"' in text
    assert "coe_slot_hits_total" in text
