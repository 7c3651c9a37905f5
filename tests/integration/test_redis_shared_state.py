"""Two ingress replicas (two FastAPI apps, each with its own Redis client, as two Serve replicas have)
share one real redis-server: conversation affinity and rate-limit counters are cluster-wide; Redis
stopped mid-run fails no request; restarted, its state is in use again.

Experts are FakeEchoBackend (the HTTP-layer test double of tests/unit/api); the router is real
(TF-IDF + logistic regression trained here in a second). No engine is booted: what is under test is
the shared state. The same ingress code runs in the two-node Ray test (test_cluster_two_nodes.py).
"""

from __future__ import annotations

import asyncio
import re
import time

import httpx
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from coe.api.app import build_app
from coe.api.shared_state import SharedState
from coe.api.state import ApiState
from coe.config import CoEConfig
from coe.experts.base import ExpertInfo
from coe.routing.artifact import LinearClassifier, RouterArtifact
from coe.routing.router import CategoryRouter
from coe.routing.service import RoutingService
from coe.state.redis_server import RedisServer
from tests.unit.api.test_chat_api import FakeEchoBackend

LIMIT = 6
WINDOW_S = 600.0
TRAIN = {
    "writing": ["write a poem about the sea", "write a short story about a dragon", "compose a sonnet on love",
                "write song lyrics about rain", "draft a poem for my mother", "write a story for children"],
    "coding": ["write a python function to sort a list", "fix this javascript bug", "implement a linked list in c",
               "python code to parse json", "refactor this java class", "write a sql query for the table"],
}


class TfidfEmbedder:
    """A real (if small) embedder: TF-IDF fitted on the training prompts."""

    def __init__(self, texts: list[str]) -> None:
        self.vectorizer = TfidfVectorizer().fit(texts)

    def encode(self, texts: list[str]):
        return self.vectorizer.transform(texts).toarray()


def trained_router() -> CategoryRouter:
    texts = [t for items in TRAIN.values() for t in items]
    labels = [c for c, items in TRAIN.items() for _ in items]
    embedder = TfidfEmbedder(texts)
    classifier = LogisticRegression(C=10).fit(embedder.encode(texts), labels)
    artifact = RouterArtifact(
        version="test", embedder={"name": "tfidf"}, classifier="logreg", categories=list(TRAIN), threshold=0.5,
        general_ranking=["coder", "writer"], rankings={"quality": {"writing": ["writer"], "coding": ["coder"]}},
    )
    return CategoryRouter(artifact, LinearClassifier.from_sklearn(classifier), embedder)


def replica(redis_url: str, router: CategoryRouter) -> tuple[httpx.AsyncClient, SharedState]:
    """One ingress replica as the Ingress deployment builds it: its own store client, limiter, routing."""
    config = CoEConfig.model_validate({
        "experts": [{"id": "writer", "weights": "/unused"}, {"id": "coder", "weights": "/unused"}],
        "server": {"rate_limit_requests": LIMIT, "rate_limit_window_s": WINDOW_S},
        "state": {"redis_url": redis_url, "retry_interval_s": 0.2},
    })
    shared = SharedState.for_config(config)
    state = ApiState(
        server=config.server,
        experts={"writer": FakeEchoBackend(), "coder": FakeEchoBackend()},
        infos={"writer": ExpertInfo("writer", "local"), "coder": ExpertInfo("coder", "local")},
        router=RoutingService(router, 0.8, store=shared.store),
    )
    app = build_app(state)
    shared.install(app, list(state.infos))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://replica"), shared


def chat(messages: list[dict], model: str = "coe:0.0") -> dict:
    return {"model": model, "messages": messages, "max_tokens": 8}


OPENING = [{"role": "user", "content": "write a poem about the sea"}]
FOLLOW_UP = [*OPENING, {"role": "assistant", "content": "waves"}, {"role": "user", "content": "now make it rhyme"}]


async def post(client: httpx.AsyncClient, body: dict, key: str) -> httpx.Response:
    return await client.post("/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"})


async def redis_up(client: httpx.AsyncClient) -> int:
    text = (await client.get("/metrics")).text
    return int(re.search(r"^coe_state_redis_up (\d)", text, re.MULTILINE).group(1))


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


async def test_two_replicas_share_state_and_survive_a_redis_restart(redis_server: RedisServer) -> None:
    if WINDOW_S - time.time() % WINDOW_S < 30:  # keep every counter of this test in one fixed window
        await asyncio.sleep(WINDOW_S - time.time() % WINDOW_S + 0.5)
    router = trained_router()
    (a, shared_a), (b, shared_b) = replica(redis_server.url, router), replica(redis_server.url, router)

    # Affinity: the conversation opens on A (writing -> writer). Its follow-up on B asks with a threshold
    # nothing meets, so B's own decision is the fallback expert (coder); the shared record keeps it on writer.
    first = await post(a, chat(OPENING), "k-affinity")
    assert first.status_code == 200 and first.headers["x-coe-expert"] == "writer"
    assert first.headers["x-coe-state"] == "redis"
    fresh = await post(b, chat([{"role": "user", "content": "now make it rhyme"}], "coe:0.999"), "k-affinity")
    assert fresh.headers["x-coe-expert"] == "coder"  # what B decides for a conversation it has not seen
    follow = await post(b, chat(FOLLOW_UP, "coe:0.999"), "k-affinity")
    assert follow.headers["x-coe-expert"] == "writer", "B must see the affinity A recorded"
    assert "conversation affinity" in follow.json()["coe"]["reason"]

    # Rate limit: one budget across both replicas.
    codes = [(await post(c, chat(OPENING), "k-limit")).status_code for c in (a, b) * LIMIT]
    assert codes == [200] * LIMIT + [429] * LIMIT
    refused = await post(b, chat(OPENING), "k-limit")
    assert refused.json()["error"]["code"] == "rate_limit_exceeded" and int(refused.headers["retry-after"]) >= 1

    # Redis goes away mid-run: nothing fails, replicas continue on local state and say so.
    redis_server.stop()
    during = [await post(c, chat(m), "k-outage") for c in (a, b) for m in (OPENING, FOLLOW_UP)]
    assert [r.status_code for r in during] == [200] * 4
    assert {r.headers["x-coe-state"] for r in during} == {"local-fallback"}
    assert await redis_up(a) == 0 and await redis_up(b) == 0
    opened_on_a = [{"role": "user", "content": "write a story for children"}]
    assert (await post(a, chat(opened_on_a), "k-outage")).headers["x-coe-expert"] == "writer"

    # Redis is back (empty: it was shut down without saving). Each replica probes, resyncs, uses it again.
    redis_server.start()
    await asyncio.sleep(0.3)
    assert await redis_up(a) == 1 and await redis_up(b) == 1
    assert shared_a.store.resyncs == 1 and shared_b.store.resyncs == 1
    assert redis_server.keys("coe:affinity:*"), "the affinity records were written back"
    # The conversation that A opened during the outage is now known to B through Redis.
    later = [*opened_on_a, {"role": "assistant", "content": "once"}, {"role": "user", "content": "go on"}]
    resumed = await post(b, chat(later, "coe:0.999"), "k-after")
    assert resumed.status_code == 200 and resumed.headers["x-coe-state"] == "redis"
    assert resumed.headers["x-coe-expert"] == "writer"
    # The exhausted budget came back with the resync, and new budgets are shared again.
    assert (await post(a, chat(OPENING), "k-limit")).status_code == 429
    codes = [(await post(c, chat(OPENING), "k-new")).status_code for c in (b, a) * LIMIT]
    assert codes == [200] * LIMIT + [429] * LIMIT

    # Per-expert stats are cluster-wide: both replicas report the same totals from Redis.
    await asyncio.gather(*shared_a._pending, *shared_b._pending)  # stats are written after the response
    metrics_a, metrics_b = (await a.get("/metrics")).text, (await b.get("/metrics")).text
    total = re.search(r'^coe_expert_requests_total\{expert="writer"\} (\d+)', metrics_a, re.MULTILINE)
    assert total and int(total.group(1)) > 0
    assert total.group(0) in metrics_b
    for client, shared in ((a, shared_a), (b, shared_b)):
        await client.aclose()
        await shared.store.close()
