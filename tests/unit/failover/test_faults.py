"""Every fault of issue 15 against a real misbehaving OpenAI-compatible server on loopback (it stands
in for a paid remote API), through CoE's real HTTP app, LiteLLM client and failover chain."""

from __future__ import annotations

import json
import time

import pytest
from fastapi.testclient import TestClient

from coe.api.app import build_app
from coe.api.state import ApiState
from coe.config import BreakerPolicy, RemoteExpert, RetryPolicy, ServerConfig, StreamTimeouts
from coe.experts.base import ExpertInfo
from coe.experts.litellm_backend import LiteLLMBackend
from coe.failover.caller import ExpertPolicy, FailoverCaller
from tests.harness.openai_upstream import OpenAIUpstream

ANSWER = "one two three four five six seven eight"
FAULTS = {
    "limited": (429, "rate_limit_exceeded", "slow down", {"retry-after": "1"}),
    "limited-long": (429, "rate_limit_exceeded", "slow down", {"retry-after": "120"}),
    "limited-plain": (429, "rate_limit_exceeded", "slow down"),
    "down": (503, None, "maintenance"),
    "filtered": (400, "content_policy_violation", "Your request was rejected as a result of our safety system."),
    "too-long": (400, "context_length_exceeded", "This model's maximum context length is 8 tokens."),
}
BEHAVIOURS = {
    "once-500": "fail-once:500", "reset": "reset", "silent": "silent:20", "slow": "slow-first:3",
    "cut": "cut-after:3", "stall": "stall-after:3", "malformed": "malformed:2", "no-done": "no-done",
    "flappy": "flap:1/2",
}
FAST = RetryPolicy(max_retries=2, backoff_s=0.01, backoff_max_s=0.05, retry_after_cap_s=2, deadline_s=10)
TIMEOUTS = StreamTimeouts(first_token_s=1.0, stall_s=1.0)
FALLBACKS = {"down": ("good",), "reset": ("good",), "too-long": ("good",), "filtered": ("good",), "cut": ("good",),
             "stall": ("good",), "malformed": ("good",), "no-done": ("good",), "silent": ("good",),
             "limited-long": ("good",), "slow": ("good",), "flappy": ("good",)}
NAMES = [*FAULTS, *BEHAVIOURS, "good", "good-2"]


@pytest.fixture(scope="module")
def served():
    with OpenAIUpstream(answer=ANSWER, faults=FAULTS, behaviours=BEHAVIOURS) as upstream:
        experts = {n: LiteLLMBackend(n, RemoteExpert(model=f"openai/{n}", api_base=upstream.base_url, timeout_s=2))
                   for n in NAMES}
        policies = {n: ExpertPolicy(FAST, BreakerPolicy(failures=3, window_s=30, open_s=1.5), TIMEOUTS,
                                    FALLBACKS.get(n, ())) for n in NAMES}
        state = ApiState(server=ServerConfig(), experts=experts, infos={n: ExpertInfo(n, "remote") for n in NAMES},
                         failover=FailoverCaller(experts, policies, seed=0))
        with TestClient(build_app(state)) as client:
            yield client, upstream


def ask(client, model: str, stream: bool = False):
    return client.post("/v1/chat/completions",
                       json={"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]})


def events(resp) -> list:
    return [json.loads(line[6:]) if line[6:] != "[DONE]" else "[DONE]" for line in resp.text.splitlines()
            if line.startswith("data: ")]


def streamed_text(resp) -> str:
    return "".join(e["choices"][0]["delta"].get("content", "") for e in events(resp)
                   if isinstance(e, dict) and e.get("choices"))


def test_429_with_retry_after_is_retried_after_it_then_kept_as_429(served) -> None:
    client, upstream = served
    before = upstream.log.requests.__len__()
    started = time.monotonic()
    resp = ask(client, "limited")
    assert resp.status_code == 429 and resp.headers["retry-after"] == "1"
    assert len(upstream.log.requests) - before == 3 and time.monotonic() - started >= 2  # two waits of 1 s


def test_a_retry_after_past_the_cap_goes_to_the_fallback_at_once(served) -> None:
    started = time.monotonic()
    resp = ask(served[0], "limited-long")
    assert resp.status_code == 200 and resp.json()["model"] == "good" and time.monotonic() - started < 5


def test_429_without_retry_after_stays_429(served) -> None:
    resp = ask(served[0], "limited-plain")
    assert resp.status_code == 429 and "retry-after" not in resp.headers


def test_500_once_is_retried_and_answered(served) -> None:
    resp = ask(served[0], "once-500")
    assert resp.status_code == 200 and resp.json()["choices"][0]["message"]["content"] == ANSWER
    assert resp.json()["coe"]["failed_attempts"][0]["status"] == 502


def test_persistent_503_goes_to_the_fallback_and_says_so(served) -> None:
    resp = ask(served[0], "down")
    body = resp.json()
    assert resp.status_code == 200 and body["model"] == "good" and resp.headers["x-coe-expert"] == "good"
    assert {a["expert"] for a in body["coe"]["failed_attempts"]} == {"down"}


def test_tcp_reset_goes_to_the_fallback(served) -> None:
    assert ask(served[0], "reset").json()["model"] == "good"


def test_silent_upstream_is_bounded_and_goes_to_the_fallback(served) -> None:
    started = time.monotonic()
    resp = ask(served[0], "silent", stream=True)
    assert resp.status_code == 200 and streamed_text(resp).strip() == ANSWER
    assert time.monotonic() - started < 8  # first_token_s 1 per attempt, not the upstream's 20 s


def test_slow_first_token_past_its_bound_goes_to_the_fallback(served) -> None:
    resp = ask(served[0], "slow", stream=True)
    assert resp.headers["x-coe-expert"] == "good" and streamed_text(resp).strip() == ANSWER


@pytest.mark.parametrize("model", ["cut", "stall"])
def test_a_stream_broken_mid_answer_is_completed_on_the_fallback_without_duplicates(served, model: str) -> None:
    resp = ask(served[0], model, stream=True)
    assert resp.status_code == 200 and resp.headers["x-coe-expert"] == model
    assert streamed_text(resp).strip() == ANSWER  # no duplicated and no missing words
    final = [e for e in events(resp) if isinstance(e, dict) and e.get("choices") and e["choices"][0]["finish_reason"]]
    assert final[-1]["choices"][0]["finish_reason"] == "stop"
    assert final[-1]["coe"]["served_by"] == [model, "good"]


def test_a_stream_without_done_but_with_its_finish_reason_is_complete(served) -> None:
    resp = ask(served[0], "no-done", stream=True)
    assert resp.headers["x-coe-expert"] == "no-done" and streamed_text(resp).strip() == ANSWER
    assert events(resp)[-1] == "[DONE]"  # CoE's own stream is always framed


def test_a_malformed_chunk_does_not_become_a_500(served) -> None:
    resp = ask(served[0], "malformed", stream=True)
    assert resp.status_code == 200 and streamed_text(resp).strip() == ANSWER


def test_request_errors_are_not_retried_and_keep_their_code(served) -> None:
    client, upstream = served
    before = len(upstream.log.requests)
    resp = ask(client, "filtered")
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "content_filter"
    assert len(upstream.log.requests) == before + 1  # no retry, no fallback: a policy refusal is everywhere


def test_context_length_goes_to_an_expert_that_may_have_a_longer_window(served) -> None:
    assert ask(served[0], "too-long").json()["model"] == "good"


def test_a_flapping_primary_fails_no_request(served) -> None:
    answers = [ask(served[0], "flappy") for _ in range(8)]
    assert [a.status_code for a in answers] == [200] * 8
    by = [a.json()["model"] for a in answers]
    assert by[0] == "flappy" and "good" in by  # retried while it flaps, skipped once its breaker opens


def test_a_stream_nothing_can_continue_ends_incomplete_not_complete() -> None:
    with OpenAIUpstream(answer=ANSWER, behaviours={"cut": "cut-after:3"}) as upstream:
        experts = {"cut": LiteLLMBackend("cut", RemoteExpert(model="openai/cut", api_base=upstream.base_url))}
        state = ApiState(server=ServerConfig(), experts=experts, infos={"cut": ExpertInfo("cut", "remote")})
        with TestClient(build_app(state)) as client:
            resp = ask(client, "cut", stream=True)
    got = events(resp)
    finishes = [e["choices"][0]["finish_reason"] for e in got if isinstance(e, dict) and e.get("choices")]
    assert "incomplete" in finishes and "stop" not in finishes
    assert "error" in got[-2] and got[-1] == "[DONE]"


def test_the_breaker_opens_after_failures_and_half_opens_after_its_time() -> None:
    with OpenAIUpstream(answer=ANSWER, behaviours={"sick": "fail-first:503/6"}) as upstream:
        experts = {"sick": LiteLLMBackend("sick", RemoteExpert(model="openai/sick", api_base=upstream.base_url))}
        policy = ExpertPolicy(RetryPolicy(max_retries=0), BreakerPolicy(failures=3, window_s=30, open_s=1.0))
        state = ApiState(server=ServerConfig(), experts=experts, infos={"sick": ExpertInfo("sick", "remote")},
                         failover=FailoverCaller(experts, {"sick": policy}))
        with TestClient(build_app(state)) as client:
            assert [ask(client, "sick").status_code for _ in range(3)] == [503, 503, 503]
            sent = len(upstream.log.requests)
            refused = ask(client, "sick")  # open: refused without touching the upstream
            assert refused.status_code == 503 and refused.json()["error"]["code"] == "circuit_open"
            assert "retry-after" in refused.headers and len(upstream.log.requests) == sent
            time.sleep(1.1)
            assert ask(client, "sick").status_code == 503  # the half-open probe fails: open again
            assert ask(client, "sick").json()["error"]["code"] == "circuit_open"
            time.sleep(1.1)
            for _ in range(3):  # the upstream recovers after its 6th request
                ask(client, "sick")
                time.sleep(1.1)
            assert ask(client, "sick").status_code == 200
