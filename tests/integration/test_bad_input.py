"""Bad requests get an OpenAI-style error body and a 4xx; the service keeps answering afterwards."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.conftest import SMOL

USER = [{"role": "user", "content": "Hi"}]

CASES = {
    "missing messages": ({"model": SMOL}, 400, "messages"),
    "empty messages": ({"model": SMOL, "messages": []}, 400, "messages"),
    "wrong role": ({"model": SMOL, "messages": [{"role": "wizard", "content": "hi"}]}, 400, "messages.0.role"),
    "only a system turn": ({"model": SMOL, "messages": [{"role": "system", "content": "x"}]}, 400, "messages"),
    "content not text": ({"model": SMOL, "messages": [{"role": "user", "content": 42}]}, 400, "messages.0.content"),
    "unknown model": ({"model": "gpt-17", "messages": USER}, 404, "model"),
    "unknown routing knob": ({"model": "coe:fastest", "messages": USER}, 400, "model"),
    "temperature too high": ({"model": SMOL, "messages": USER, "temperature": 5}, 400, "temperature"),
    "temperature not a number": ({"model": SMOL, "messages": USER, "temperature": "hot"}, 400, "temperature"),
    "max_tokens zero": ({"model": SMOL, "messages": USER, "max_tokens": 0}, 400, "max_tokens"),
    "max_tokens beyond context": ({"model": SMOL, "messages": USER, "max_tokens": 100_000}, 400, "max_tokens"),
    "n above one": ({"model": SMOL, "messages": USER, "n": 2}, 400, "n"),
    "oversized prompt": ({"model": SMOL, "messages": [{"role": "user", "content": "word " * 3000}]}, 400, "messages"),
    "oversized prompt streaming": (
        {"model": SMOL, "stream": True, "messages": [{"role": "user", "content": "word " * 3000}]},
        400,
        "messages",
    ),
}


def _post(base_url: str, **kwargs) -> httpx.Response:
    return httpx.post(f"{base_url}/chat/completions", timeout=120, **kwargs)


def _assert_openai_error(resp: httpx.Response, status: int, param: str | None) -> dict:
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert error["message"] and error["type"]
    if param is not None:
        assert error["param"] == param, error
    return error


@pytest.mark.parametrize("case", list(CASES))
def test_bad_request_gets_openai_error(base_url: str, case: str) -> None:
    body, status, param = CASES[case]
    _assert_openai_error(_post(base_url, json=body), status, param)


def test_context_error_is_labelled(base_url: str) -> None:
    body = {"model": SMOL, "messages": [{"role": "user", "content": "word " * 3000}]}
    error = _assert_openai_error(_post(base_url, json=body), 400, "messages")
    assert error["code"] == "context_length_exceeded"
    assert "1024" in error["message"]


def test_malformed_json(base_url: str) -> None:
    resp = _post(base_url, content=b'{"model": "x", "messages": [', headers={"content-type": "application/json"})
    assert _assert_openai_error(resp, 400, None)["code"] == "invalid_json"


def test_body_over_limit_is_refused(base_url: str) -> None:
    body = {"model": SMOL, "messages": [{"role": "user", "content": "x" * 300_000}]}
    _assert_openai_error(_post(base_url, json=body), 413, None)


def test_unknown_route_is_an_openai_404(base_url: str) -> None:
    resp = httpx.get(f"{base_url}/nothing-here", timeout=30)
    _assert_openai_error(resp, 404, None)


def test_service_still_answers_after_bad_input(base_url: str, client) -> None:
    for body, _, _ in CASES.values():
        _post(base_url, json=body)
    health = httpx.get(base_url.removesuffix("/v1") + "/health", timeout=30)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    reply = client.chat.completions.create(model=SMOL, messages=USER, max_tokens=8, temperature=0)
    assert reply.choices[0].message.content
