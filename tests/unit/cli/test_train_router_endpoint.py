"""`coe train-router --endpoint`: a failed request is never scored as an empty answer. The endpoint is a
real HTTP server on loopback that answers OpenAI-style errors by model name."""

from __future__ import annotations

import pytest

from coe.cli.errors import UsageError
from coe.errors import ExpertUnavailable
from router_training.train_router_cli import endpoint_answerer
from tests.harness.openai_upstream import OpenAIUpstream

FAULTS = {"broken": (500, None, "engine crashed"), "small": (400, "context_length_exceeded", "prompt too long")}


def test_answers_leave_out_context_overflows_and_stop_on_failures() -> None:
    with OpenAIUpstream(answer="fine", models=["good", "broken", "small"], faults=FAULTS) as up:
        answer = endpoint_answerer(up.base_url, ["good", "broken", "small"])
        assert answer("good", "hi") == "fine"
        assert answer("small", "a long prompt") is None  # left out and counted, not scored 0
        with pytest.raises(ExpertUnavailable, match="expert 'broken' answered HTTP 500: engine crashed"):
            answer("broken", "hi")


def test_an_expert_the_endpoint_does_not_serve_is_refused_before_any_answer() -> None:
    with OpenAIUpstream(models=["good"]) as up:
        with pytest.raises(UsageError, match="does not serve ghost"):
            endpoint_answerer(up.base_url, ["good", "ghost"])
        assert up.log.requests == []


def test_an_unreachable_endpoint_says_so() -> None:
    with OpenAIUpstream(models=["good"]) as up:
        url = up.base_url
    with pytest.raises(ExpertUnavailable, match="is `coe serve` running"):
        endpoint_answerer(url, ["good"])


def test_a_general_expert_outside_the_candidates_is_a_usage_error() -> None:
    import subprocess
    import sys
    from pathlib import Path

    scores = Path(__file__).resolve().parents[3] / "router_training" / "datasets" / "local_experts" / "scores.jsonl"
    proc = subprocess.run([sys.executable, "-m", "coe.cli.main", "train-router", "--scores", str(scores),
                           "--general-expert", "nope"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--general-expert nope" in proc.stderr and "Traceback" not in proc.stderr
