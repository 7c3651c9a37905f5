"""Remote experts are ready at startup: the app's lifespan starts every client, and LiteLLM's warm-up
(mocked calls) sends nothing upstream. The upstream is a real HTTP server on loopback."""

from __future__ import annotations

from fastapi.testclient import TestClient

from coe.api.app import build_app
from coe.api.state import ApiState
from coe.config import RemoteExpert, ServerConfig
from coe.experts.base import ExpertInfo
from coe.experts.litellm_backend import LiteLLMBackend
from tests.harness.openai_upstream import OpenAIUpstream


def test_startup_warms_the_remote_client_without_calling_upstream() -> None:
    with OpenAIUpstream(answer="warm and ready") as upstream:
        backend = LiteLLMBackend("far", RemoteExpert(model="openai/far-model", api_base=upstream.base_url))
        state = ApiState(server=ServerConfig(), experts={"far": backend}, infos={"far": ExpertInfo("far", "remote")})
        with TestClient(build_app(state)) as client:  # `with` runs the lifespan, as Ray Serve does
            assert backend._started and upstream.log.requests == []
            body = {"model": "far", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
            reply = client.post("/v1/chat/completions", json=body)
            streamed = client.post("/v1/chat/completions", json={**body, "stream": True})
        assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["content"] == "warm and ready"
        assert streamed.status_code == 200 and "warm " in streamed.text
        assert [r["model"] for r in upstream.log.requests] == ["far-model", "far-model"]
