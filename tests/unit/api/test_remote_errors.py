"""Errors of a remote expert keep their meaning at CoE's door. The upstream is a real OpenAI-compatible
HTTP server on loopback that answers errors by model name (it stands in for a paid API)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from coe.api.app import build_app
from coe.api.state import ApiState
from coe.config import RemoteExpert, RetryPolicy, ServerConfig
from coe.experts.base import ExpertInfo
from coe.experts.litellm_backend import LiteLLMBackend
from coe.failover.caller import ExpertPolicy, FailoverCaller
from tests.harness.openai_upstream import OpenAIUpstream

FAULTS = {
    "limited": (429, "rate_limit_exceeded", "slow down", {"retry-after": "7"}),
    "limited-plain": (429, "rate_limit_exceeded", "slow down"),
    "filtered": (400, "content_policy_violation", "Your request was rejected as a result of our safety system."),
    "too-long": (400, "context_length_exceeded", "This model's maximum context length is 8 tokens."),
}


@pytest.fixture(scope="module")
def client():
    with OpenAIUpstream(faults=FAULTS) as upstream:
        experts = {name: LiteLLMBackend(name, RemoteExpert(model=f"openai/{name}", api_base=upstream.base_url))
                   for name in FAULTS}
        # No retries of CoE's own here: these tests check what one upstream error becomes (tests/unit/failover
        # checks the retry policy).
        once = {n: ExpertPolicy(retry=RetryPolicy(max_retries=0)) for n in FAULTS}
        state = ApiState(server=ServerConfig(), experts=experts, infos={n: ExpertInfo(n, "remote") for n in FAULTS},
                         failover=FailoverCaller(experts, once))
        with TestClient(build_app(state)) as test_client:
            yield test_client, upstream


def _ask(client, model: str):
    return client.post("/v1/chat/completions", json={"model": model, "messages": [{"role": "user", "content": "hi"}]})


def test_upstream_429_is_429_with_its_retry_after_and_no_hidden_retries(client) -> None:
    test_client, upstream = client
    before = len(upstream.log.requests)
    resp = _ask(test_client, "limited")
    assert resp.status_code == 429 and resp.headers["retry-after"] == "7"
    assert resp.json()["error"]["code"] == "rate_limit_exceeded"
    assert len(upstream.log.requests) == before + 1  # LiteLLM's own retries are off


def test_upstream_429_without_retry_after_is_still_429(client) -> None:
    resp = _ask(client[0], "limited-plain")
    assert resp.status_code == 429 and "retry-after" not in resp.headers


def test_content_filter_keeps_its_code(client) -> None:
    resp = _ask(client[0], "filtered")
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "content_filter"


def test_context_length_is_400_context_length_exceeded(client) -> None:
    resp = _ask(client[0], "too-long")
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "context_length_exceeded"


def test_a_silent_upstream_fails_after_its_timeout_instead_of_holding_the_request() -> None:
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True).start()  # never answers
    base = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    backend = LiteLLMBackend("silent", RemoteExpert(model="openai/silent", api_base=base, timeout_s=1))
    state = ApiState(server=ServerConfig(), experts={"silent": backend}, infos={"silent": ExpertInfo("silent", "remote")})
    try:
        with TestClient(build_app(state)) as test_client:
            resp = _ask(test_client, "silent")
        assert resp.status_code == 503 and "silent" in resp.json()["error"]["message"]
        assert accepted  # the request did reach the upstream, which never answered
    finally:
        listener.close()
