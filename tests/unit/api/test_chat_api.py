"""HTTP-layer logic (SSE framing, error mapping) with a fake in-process backend.

FakeEchoBackend is a test double of the ExpertBackend interface, used only here; every claim about
vLLM or Ray Serve is tested against the real thing in tests/integration.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from fastapi.testclient import TestClient

from coe.api import server_timing
from coe.api.app import build_app
from coe.api.state import ApiState
from coe.config import ServerConfig
from coe.errors import ContextLengthExceeded, ExpertUnavailable
from coe.experts.base import ExpertBackend, ExpertInfo
from coe.protocol import GenerationDelta, GenerationRequest, GenerationResult, Usage


class FakeEchoBackend(ExpertBackend):
    """Echoes the last user message word by word; 'too long' and 'die midway' trigger errors."""

    async def chat(self, request: GenerationRequest) -> GenerationResult:
        text = "".join([d.text async for d in self.chat_stream(request)])
        return GenerationResult(text, "stop", Usage(3, len(text.split())))

    async def chat_stream(self, request: GenerationRequest) -> AsyncIterator[GenerationDelta]:
        last = request.messages[-1]["content"]
        if last == "too long":
            raise ContextLengthExceeded("prompt too long")
        words = last.split()
        for i, word in enumerate(words):
            if word == "die":
                raise ExpertUnavailable("engine died")
            yield GenerationDelta(word + " ")
        yield GenerationDelta("", "stop", Usage(3, len(words)))


def _client() -> TestClient:
    state = ApiState(
        server=ServerConfig(max_request_bytes=2000),
        experts={"echo": FakeEchoBackend()},
        infos={"echo": ExpertInfo("echo", "local")},
    )
    return TestClient(build_app(state))


def _chat(content: str, **extra) -> dict:
    return {"model": "echo", "messages": [{"role": "user", "content": content}], **extra}


def _events(resp) -> list[str]:
    return [line[6:] for line in resp.text.splitlines() if line.startswith("data: ")]


def test_non_streaming_body_shape() -> None:
    resp = _client().post("/v1/chat/completions", json=_chat("a b"))
    body = resp.json()
    assert resp.status_code == 200 and resp.headers["x-coe-expert"] == "echo"
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "a b "}
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


def test_stream_frames_role_content_finish_usage_done() -> None:
    resp = _client().post("/v1/chat/completions", json=_chat("a b", stream=True, stream_options={"include_usage": True}))
    events = _events(resp)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]) == "a b "
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 5
    assert len({c["id"] for c in chunks}) == 1


def test_refusal_before_first_token_is_a_real_4xx_even_when_streaming() -> None:
    resp = _client().post("/v1/chat/completions", json=_chat("too long", stream=True))
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "context_length_exceeded"


def test_failure_mid_stream_sends_error_event_then_done() -> None:
    events = _events(_client().post("/v1/chat/completions", json=_chat("a die", stream=True)))
    assert json.loads(events[-2])["error"]["message"] == "engine died"
    assert events[-1] == "[DONE]"


def test_expert_failure_is_503_not_a_traceback() -> None:
    resp = _client().post("/v1/chat/completions", json=_chat("die"))
    assert resp.status_code == 503 and resp.json()["error"]["type"] == "service_unavailable"


def test_size_limit_and_unknown_model() -> None:
    client = _client()
    assert client.post("/v1/chat/completions", json=_chat("x" * 5000)).status_code == 413
    resp = client.post("/v1/chat/completions", json={**_chat("a"), "model": "nope"})
    assert resp.status_code == 404 and "echo" in resp.json()["error"]["message"]


def test_models_and_health() -> None:
    client = _client()
    assert [m["id"] for m in client.get("/v1/models").json()["data"]] == ["echo"]
    assert client.get("/v1/models/echo").json()["coe"]["kind"] == "local"
    assert client.get("/v1/models/nope").status_code == 404
    assert client.get("/health").json() == {"status": "ok", "experts": {"echo": "ok"}}


def _timings(resp) -> dict[str, float]:
    return server_timing.parse(resp.headers["server-timing"])


def test_server_timing_names_each_hop_with_the_backends_own_numbers() -> None:
    class TimedEcho(FakeEchoBackend):
        async def chat(self, request: GenerationRequest) -> GenerationResult:
            result = await super().chat(request)
            return GenerationResult(result.text, result.finish_reason, result.usage, timings={"expert": 12.5})

    state = ApiState(server=ServerConfig(), experts={"echo": TimedEcho()}, infos={"echo": ExpertInfo("echo", "local")})
    timings = _timings(TestClient(build_app(state)).post("/v1/chat/completions", json=_chat("a b")))
    assert set(timings) == {"call", "expert", "ingress"}
    assert timings["expert"] == 12.5  # passed through from the backend, not re-measured
    assert 0 <= timings["call"] <= timings["ingress"]


def test_server_timing_of_a_stream_covers_the_wait_for_the_first_piece() -> None:
    timings = _timings(_client().post("/v1/chat/completions", json=_chat("a b", stream=True)))
    assert set(timings) == {"first", "ingress"} and 0 <= timings["first"] <= timings["ingress"]
