"""Per-API-key token budgets (`server.rate_limit_tokens`) through the real app: the answers' own
`usage` is what is charged, each key has its own budget, a spent budget gets OpenAI's 429 with
`Retry-After`, and streams are charged too (also when cut short).

Experts are FakeEchoBackend (the HTTP-layer test double of test_chat_api.py: 3 prompt tokens, one
completion token per word); the app, middleware, limiter and store are the real ones.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator

import httpx

from coe.api.app import build_app
from coe.api.ratelimit import key_id
from coe.api.shared_state import SharedState
from coe.api.state import ApiState
from coe.config import CoEConfig
from coe.experts.base import ExpertInfo
from coe.protocol import GenerationDelta, GenerationRequest
from tests.unit.api.test_chat_api import FakeEchoBackend

BUDGET = 10
WINDOW_S = 3600.0


def replica(budget: int = BUDGET, **state: object) -> tuple[httpx.AsyncClient, SharedState]:
    """One ingress as the deployment builds it: SharedState.for_config from a coe.yaml's sections."""
    config = CoEConfig.model_validate({
        "experts": [{"id": "echo", "weights": "/unused"}],
        "server": {"rate_limit_tokens": budget, "rate_limit_window_s": WINDOW_S},
        "state": state,
    })
    shared = SharedState.for_config(config)
    api = ApiState(server=config.server, experts={"echo": FakeEchoBackend()}, infos={"echo": ExpertInfo("echo", "local")})
    app = build_app(api)
    shared.install(app, ["echo"])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://replica"), shared


async def one_window() -> int:
    """The current window number, after waiting out a boundary that is too close for one test."""
    if WINDOW_S - time.time() % WINDOW_S < 15:
        await asyncio.sleep(WINDOW_S - time.time() % WINDOW_S + 0.5)
    return int(time.time() // WINDOW_S)


async def chat(client: httpx.AsyncClient, key: str, content: str, **extra: object) -> httpx.Response:
    return await client.post("/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                             json={"model": "echo", "messages": [{"role": "user", "content": content}], **extra})


def stream_usage(resp: httpx.Response) -> dict:
    events = [line[6:] for line in resp.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    last = json.loads(events[-2])  # stream_options.include_usage: a last chunk with usage and no choices
    assert last["choices"] == []
    return last["usage"]


async def used(shared: SharedState, key: str, window: int) -> int:
    await shared.settled()  # charges are written off the response path
    return int(await shared.store.get(f"ratelimit-tokens:{key_id(key)}:{window}") or 0)


def assert_refused(resp: httpx.Response) -> None:
    assert resp.status_code == 429
    error = resp.json()["error"]
    assert error["type"] == "tokens" and error["code"] == "rate_limit_exceeded"
    retry_after = int(resp.headers["retry-after"])
    to_window_end = WINDOW_S - time.time() % WINDOW_S  # fixed windows: the refusal lasts until this one ends
    assert to_window_end - 2 <= retry_after <= to_window_end + 1, (retry_after, to_window_end)
    assert f"{BUDGET} tokens per {WINDOW_S:g}s" in error["message"]
    assert re.search(rf"retry in {retry_after}s", error["message"])


async def test_a_key_past_its_token_budget_gets_429_and_other_keys_are_served() -> None:
    client, shared = replica()
    window = await one_window()
    totals = []
    for _ in range(2):  # 6 tokens each: the second starts under the budget (6 < 10) and runs to the end
        resp = await chat(client, "sk-a", "a b c")
        assert resp.status_code == 200
        totals.append(resp.json()["usage"]["total_tokens"])
        await shared.settled()
    assert totals == [6, 6]

    assert_refused(await chat(client, "sk-a", "a b c"))
    assert (await chat(client, "sk-b", "a b c")).status_code == 200  # another key, its own budget
    assert (await chat(client, "sk-b", "too long")).status_code == 400  # refused answers cost nothing
    assert (await chat(client, "sk-b", "too long", stream=True)).status_code == 400
    assert await used(shared, "sk-a", window) == sum(totals)  # exactly the reported usage, once each
    assert await used(shared, "sk-b", window) == 6
    assert "coe_ratelimit_rejected_total 1" in (await client.get("/metrics")).text


async def test_streams_are_charged_their_usage_and_a_cut_stream_what_it_generated() -> None:
    client, shared = replica()
    window = await one_window()
    resp = await chat(client, "sk-s", "a b c d", stream=True, stream_options={"include_usage": True})
    assert resp.status_code == 200 and stream_usage(resp)["total_tokens"] == 7
    assert await used(shared, "sk-s", window) == 7

    resp = await chat(client, "sk-s", "a die", stream=True)  # the expert fails after one piece
    assert resp.status_code == 200 and "engine died" in resp.text
    assert await used(shared, "sk-s", window) == 8  # no usage came: one piece, about one token

    resp = await chat(client, "sk-s", "a b", stream=True, stream_options={"include_usage": True})
    assert resp.status_code == 200 and stream_usage(resp)["total_tokens"] == 5  # admitted at 8 of 10
    assert await used(shared, "sk-s", window) == 7 + 1 + 5
    assert_refused(await chat(client, "sk-s", "a", stream=True))
    resp = await chat(client, "sk-t", "a", stream=True)
    assert resp.status_code == 200 and "[DONE]" in resp.text


class SlowEchoBackend(FakeEchoBackend):
    """FakeEchoBackend at 20 pieces a second, so a client can leave while the answer is generated."""

    async def chat_stream(self, request: GenerationRequest) -> AsyncIterator[GenerationDelta]:
        async for delta in super().chat_stream(request):
            await asyncio.sleep(0.05)
            yield delta


async def test_a_stream_the_client_leaves_is_charged_the_pieces_it_generated() -> None:
    """Driven at the ASGI level, as a server does: the client disconnects after two pieces of text."""
    config = CoEConfig.model_validate({"experts": [{"id": "echo", "weights": "/unused"}],
                                       "server": {"rate_limit_tokens": BUDGET, "rate_limit_window_s": WINDOW_S}})
    shared = SharedState.for_config(config)
    app = build_app(ApiState(server=config.server, experts={"echo": SlowEchoBackend()},
                             infos={"echo": ExpertInfo("echo", "local")}))
    shared.install(app, ["echo"])
    window = await one_window()
    body = json.dumps({"model": "echo", "messages": [{"role": "user", "content": "a b c d e f g h"}],
                       "stream": True}).encode()
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions", "query_string": b"", "root_path": "",
             "headers": [(b"content-type", b"application/json"), (b"authorization", b"Bearer sk-gone")],
             "client": ("127.0.0.1", 1234), "server": ("replica", 80)}
    requested, left = False, asyncio.Event()
    pieces: list[str] = []

    async def receive() -> dict:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": body, "more_body": False}
        await left.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        for line in message.get("body", b"").decode().splitlines():
            if line.startswith("data: {"):
                pieces.extend(c["delta"]["content"] for c in json.loads(line[6:])["choices"] if c["delta"].get("content"))
        if len(pieces) == 2:
            left.set()

    await asyncio.wait_for(app(scope, receive, send), 10)
    assert pieces == ["a ", "b "]  # the answer was cut short
    assert await used(shared, "sk-gone", window) == 2
