"""`model="coe"`: the endpoint sends each request where the trained router says, and says so."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import GEMMA, MOE, SMOL

CODING = "Write a Python function that returns the n-th Fibonacci number using memoisation."
WRITING = "Write a short poem about autumn leaves falling in a quiet park."


def cli_route(router: Path, prompt: str, model: str = "coe") -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "coe.cli.main", "route", prompt, "--router", str(router), "--model", model, "--json"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def router_map(router: Path) -> dict[str, str]:
    rankings = json.loads((router / "router.json").read_text())["rankings"]["quality"]
    return {category: ranking[0] for category, ranking in rankings.items()}


def test_map_follows_kshot_evidence(router_artifact: Path) -> None:
    assert router_map(router_artifact) == {"coding": SMOL, "general": SMOL, "math": GEMMA, "writing": MOE}


def test_coe_is_listed_as_a_model(client) -> None:
    card = next(m for m in client.models.list().data if m.id == "coe")
    assert set(card.model_extra["coe"]["categories"]) == {"coding", "general", "math", "writing"}


@pytest.mark.parametrize("prompt", [CODING, WRITING])
def test_endpoint_routes_as_coe_route_decides(client, router_artifact: Path, prompt: str) -> None:
    # Threshold 0: no fallback, so the map itself is exercised.
    decided = cli_route(router_artifact, prompt, "coe:0")
    raw = client.chat.completions.with_raw_response.create(
        model="coe:0", messages=[{"role": "user", "content": prompt}], max_tokens=8, temperature=0
    )
    reply = raw.parse()
    assert raw.headers["x-coe-category"] == decided["category"]
    assert raw.headers["x-coe-expert"] == decided["expert"] == router_map(router_artifact)[decided["category"]]
    assert abs(float(raw.headers["x-coe-confidence"]) - decided["confidence"]) < 1e-3
    assert reply.model == decided["expert"]
    assert reply.model_extra["coe"]["category"] == decided["category"]


def test_classifier_gets_the_obvious_categories_right(router_artifact: Path) -> None:
    assert cli_route(router_artifact, CODING, "coe:0")["category"] == "coding"
    assert cli_route(router_artifact, WRITING, "coe:0")["category"] == "writing"


def test_low_confidence_goes_to_general_expert(client, router_artifact: Path) -> None:
    # A threshold above any probability makes every prompt low-confidence.
    raw = client.chat.completions.with_raw_response.create(
        model="coe:1", messages=[{"role": "user", "content": WRITING}], max_tokens=8, temperature=0
    )
    assert raw.headers["x-coe-expert"] == SMOL and raw.headers["x-coe-fallback"] == "true"
    assert cli_route(router_artifact, WRITING, "coe:1")["fallback"] is True


def test_default_threshold_agrees_with_coe_route(client, router_artifact: Path) -> None:
    decided = cli_route(router_artifact, WRITING)
    raw = client.chat.completions.with_raw_response.create(
        model="coe", messages=[{"role": "user", "content": WRITING}], max_tokens=8, temperature=0
    )
    assert raw.headers["x-coe-expert"] == decided["expert"]
    assert raw.headers["x-coe-fallback"] == str(decided["fallback"]).lower()


def test_streaming_is_routed_too(base_url: str, router_artifact: Path) -> None:
    decided = cli_route(router_artifact, CODING, "coe:0")
    body = {"model": "coe:0", "stream": True, "max_tokens": 8, "temperature": 0,
            "messages": [{"role": "user", "content": CODING}]}
    with httpx.stream("POST", f"{base_url}/chat/completions", json=body, timeout=120) as resp:
        assert resp.status_code == 200 and resp.headers["x-coe-expert"] == decided["expert"]
        events = [line[6:] for line in resp.iter_lines() if line.startswith("data: ")]
    first = json.loads(events[0])
    assert first["coe"]["category"] == decided["category"] and first["model"] == decided["expert"]
    assert events[-1] == "[DONE]"


def test_conversation_stays_on_its_expert(client) -> None:
    # Start on the writing expert, then ask a weakly-coding follow-up: affinity keeps the expert.
    first = [{"role": "user", "content": WRITING}]
    opened = client.chat.completions.with_raw_response.create(model="coe:0", messages=first, max_tokens=8, temperature=0)
    follow = [*first, {"role": "assistant", "content": opened.parse().choices[0].message.content},
              {"role": "user", "content": "Make it shorter."}]
    again = client.chat.completions.with_raw_response.create(model="coe:0", messages=follow, max_tokens=8, temperature=0)
    assert again.headers["x-coe-expert"] == opened.headers["x-coe-expert"]
