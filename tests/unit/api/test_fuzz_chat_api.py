"""Property-based fuzzing of the chat API (hypothesis, 1,000+ cases): whatever a client sends, the
answer is a 2xx or an OpenAI-style 4xx body, never a 5xx or a stack trace."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coe.api.app import build_app
from coe.api.state import ApiState
from coe.config import ServerConfig
from coe.experts.base import ExpertInfo
from tests.unit.api.test_chat_api import FakeEchoBackend

CLIENT = TestClient(build_app(ApiState(server=ServerConfig(max_request_bytes=20_000),
                                       experts={"echo": FakeEchoBackend()}, infos={"echo": ExpertInfo("echo", "local")})))

json_scalars = st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=40)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
                           max_leaves=12)
roles = st.sampled_from(["user", "assistant", "system", "developer", "tool", "", "USER"]) | st.text(max_size=8)
contents = st.text(max_size=200) | json_values | st.lists(st.fixed_dictionaries({"type": st.sampled_from(["text", "image_url", "x"]),
                                                                                 "text": st.text(max_size=50)}), max_size=3)
messages = st.lists(st.fixed_dictionaries({"role": roles, "content": contents}), max_size=4) | json_values
bodies = st.fixed_dictionaries(
    {"model": st.sampled_from(["echo", "coe", "coe:budget-0.3", "nope", ""]) | json_scalars, "messages": messages},
    optional={"stream": json_scalars, "max_tokens": json_scalars, "temperature": json_scalars, "top_p": json_scalars,
              "stop": json_values, "n": json_scalars, "seed": json_scalars, "stream_options": json_values,
              "tools": json_values, "logprobs": json_scalars, "max_completion_tokens": json_scalars},
)


def _check(resp) -> None:
    assert resp.status_code < 500, resp.text[:500]
    if resp.status_code >= 400:
        error = resp.json()["error"]
        assert isinstance(error["message"], str) and "Traceback" not in error["message"]


@settings(max_examples=1000, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies)
def test_any_json_body_gets_a_2xx_or_an_openai_4xx(body: dict) -> None:
    _check(CLIENT.post("/v1/chat/completions", content=json.dumps(body), headers={"content-type": "application/json"}))


@settings(max_examples=300, deadline=None, database=None)
@given(st.binary(max_size=300))
def test_any_bytes_get_a_4xx_not_a_crash(raw: bytes) -> None:
    _check(CLIENT.post("/v1/chat/completions", content=raw, headers={"content-type": "application/json"}))
